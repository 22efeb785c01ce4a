//! A postcard `Flavor` over a [`rsm::ReleasingCursor`]: the snapshot body is decoded
//! straight from its (mapped) file, and the pages behind the decoder are released as
//! it goes, so decoding a snapshot never makes all of it resident.
//!
//! Nothing decoded borrows the input past the decode: the store and the sessions copy
//! every key, value and response into their own allocations (and a released page read
//! again is the same bytes anyway: releasing is about memory, never content).

use postcard::de_flavors::Flavor;

struct Releasing<'de>(rsm::ReleasingCursor<'de>);

impl<'de> Flavor<'de> for Releasing<'de> {
    /// The bytes after the value (postcard's `take_from_bytes` gives the same).
    type Remainder = &'de [u8];
    type Source = &'de [u8];

    fn pop(&mut self) -> postcard::Result<u8> {
        self.try_take_n(1).map(|b| b[0])
    }

    /// What is left (as postcard's own slice flavor: a sequence that claims more
    /// elements than bytes remain gets no size hint).
    fn size_hint(&self) -> Option<usize> {
        Some(self.0.rest().len())
    }

    fn try_take_n(&mut self, ct: usize) -> postcard::Result<&'de [u8]> {
        self.0
            .take(ct)
            .ok_or(postcard::Error::DeserializeUnexpectedEnd)
    }

    fn finalize(mut self) -> postcard::Result<&'de [u8]> {
        self.0.release_read();
        Ok(self.0.rest())
    }
}

/// Decodes a `T` (postcard) from the front of `input`, releasing the bytes read as it
/// goes; returns it and the bytes after it. (Also `shardkv`'s snapshot decoder: its
/// shards hold kv stores.)
pub fn take_from_input<'de, T: serde::Deserialize<'de>>(
    input: rsm::SnapshotInput<'de>,
) -> postcard::Result<(T, &'de [u8])> {
    let mut de = postcard::Deserializer::from_flavor(Releasing(input.cursor()));
    let value = T::deserialize(&mut de)?;
    Ok((value, de.finalize()?))
}

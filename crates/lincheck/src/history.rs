//! The history model: one [`Operation`] per client request, with its call
//! time, and its return time and output when the client saw one.
//!
//! Times are plain `u64` in any unit (virtual ticks in the simulator,
//! nanoseconds in real-process tests); only their order matters. An operation
//! whose outcome is unknown (the client timed out or crashed) has no
//! [`Return`]: the checker treats it as possibly applied at any instant after
//! its call, or never, and its output as unconstrained.

/// What a client saw when its operation returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Return<O> {
    /// When the client received the reply.
    pub time: u64,
    /// The reply.
    pub output: O,
}

/// One client operation in a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// Which client issued it (informational: the checker orders operations
    /// by their real-time intervals only).
    pub client: u64,
    /// What was asked.
    pub input: I,
    /// When the client issued it.
    pub call: u64,
    /// `None`: the outcome is unknown (return time is infinity).
    pub ret: Option<Return<O>>,
}

impl<I, O> Operation<I, O> {
    /// An operation that returned `output` at `ret`.
    ///
    /// Panics if `ret < call`: a history with time running backwards is a bug
    /// in the recorder, not a property of the system under test.
    pub fn returned(client: u64, input: I, call: u64, ret: u64, output: O) -> Self {
        assert!(
            ret >= call,
            "operation returns at {ret}, before its call at {call}"
        );
        Self {
            client,
            input,
            call,
            ret: Some(Return { time: ret, output }),
        }
    }

    /// An operation whose outcome is unknown: it may have taken effect at any
    /// time after `call`, or never.
    pub fn unknown(client: u64, input: I, call: u64) -> Self {
        Self {
            client,
            input,
            call,
            ret: None,
        }
    }

    /// The output, if the client saw one.
    pub fn output(&self) -> Option<&O> {
        self.ret.as_ref().map(|r| &r.output)
    }

    /// The return time, if the client saw one.
    pub fn return_time(&self) -> Option<u64> {
        self.ret.as_ref().map(|r| r.time)
    }

    /// Whether the outcome is unknown.
    pub fn is_unknown(&self) -> bool {
        self.ret.is_none()
    }
}

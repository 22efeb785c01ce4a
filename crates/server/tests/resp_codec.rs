//! The RESP decoder against an independent model: frames encoded by a naive
//! encoder written here decode back to themselves, split anywhere (a prefix
//! is always "incomplete", never an error), pipelined back to back; and no
//! byte string makes the decoder panic.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use server::resp::{parse_command, parse_frame, Command, Decoder, Frame, Limits};

/// Naive reference encoder (string formatting, not the crate's encoder).
fn naive(f: &Frame) -> Vec<u8> {
    match f {
        Frame::Simple(s) => format!("+{s}\r\n").into_bytes(),
        Frame::Error(s) => format!("-{s}\r\n").into_bytes(),
        Frame::Integer(n) => format!(":{n}\r\n").into_bytes(),
        Frame::Null => b"$-1\r\n".to_vec(),
        Frame::NullArray => b"*-1\r\n".to_vec(),
        Frame::Bulk(b) => [
            format!("${}\r\n", b.len()).into_bytes(),
            b.to_vec(),
            b"\r\n".to_vec(),
        ]
        .concat(),
        Frame::Array(items) => {
            let mut out = format!("*{}\r\n", items.len()).into_bytes();
            items.iter().for_each(|i| out.extend(naive(i)));
            out
        }
        Frame::Map(_) | Frame::Set(_) | Frame::Verbatim(_) => {
            unreachable!("clients never send RESP3 types; the strategy makes none")
        }
    }
}

fn frame() -> impl Strategy<Value = Frame> {
    let leaf = prop_oneof![
        "[a-zA-Z0-9 ]{0,20}".prop_map(Frame::Simple),
        "[a-zA-Z0-9 ]{0,20}".prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        Just(Frame::Null),
        Just(Frame::NullArray),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|v| Frame::Bulk(Bytes::from(v))),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        proptest::collection::vec(inner, 0..6).prop_map(Frame::Array)
    })
}

proptest! {
    #[test]
    fn roundtrip_against_naive_encoder(f in frame()) {
        let bytes = naive(&f);
        let mut ours = BytesMut::new();
        f.encode(&mut ours);
        prop_assert_eq!(&ours[..], &bytes[..]);
        prop_assert_eq!(parse_frame(&bytes, &Limits::default()), Ok(Some((f, bytes.len()))));
    }

    #[test]
    fn every_prefix_is_incomplete(f in frame()) {
        let bytes = naive(&f);
        for cut in 0..bytes.len() {
            prop_assert_eq!(parse_frame(&bytes[..cut], &Limits::default()), Ok(None), "cut at {}", cut);
        }
    }

    #[test]
    fn pipelined_frames_decode_in_order(fs in proptest::collection::vec(frame(), 1..5)) {
        let bytes: Vec<u8> = fs.iter().flat_map(naive).collect();
        let mut pos = 0;
        for f in &fs {
            let (got, used) = parse_frame(&bytes[pos..], &Limits::default()).unwrap().unwrap();
            prop_assert_eq!(&got, f);
            pos += used;
        }
        prop_assert_eq!(pos, bytes.len());
    }

    /// The server's incremental decoder agrees with `parse_frame` on
    /// pipelined frames however the bytes are split across reads.
    #[test]
    fn decoder_agrees_across_any_split(
        fs in proptest::collection::vec(frame(), 1..5),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let bytes: Vec<u8> = fs.iter().flat_map(naive).collect();
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        cuts.push(bytes.len());
        cuts.sort();
        let mut dec = Decoder::new(Limits::default(), usize::MAX);
        let (mut buf, mut got, mut from) = (BytesMut::new(), Vec::new(), 0);
        for cut in cuts {
            buf.extend_from_slice(&bytes[from..cut]);
            from = cut;
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        prop_assert_eq!(got, fs);
        prop_assert!(buf.is_empty());
    }

    /// On any bytes, the decoder (fed in two pieces) yields the frames
    /// `parse_frame` yields, and fails where it fails.
    #[test]
    fn decoder_agrees_on_garbage(
        bytes in proptest::collection::vec(prop_oneof![Just(b'*'), Just(b'$'), Just(b'\r'), Just(b'\n'), Just(b'-'), Just(b'1'), Just(b'2'), any::<u8>()], 0..64),
        cut in any::<prop::sample::Index>(),
    ) {
        let cut = cut.index(bytes.len() + 1);
        let mut want = Vec::new();
        let mut pos = 0;
        let want_err = loop {
            match parse_frame(&bytes[pos..], &Limits::default()) {
                Ok(Some((f, used))) => { want.push(f); pos += used; }
                Ok(None) => break false,
                Err(_) => break true,
            }
        };
        let mut dec = Decoder::new(Limits::default(), usize::MAX);
        let mut buf = BytesMut::from(&bytes[..cut]);
        let mut got = Vec::new();
        let mut got_err = false;
        for rest in [&bytes[cut..], &[][..]] {
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(f)) => got.push(f),
                    Ok(None) => break,
                    Err(_) => { got_err = true; break; }
                }
            }
            if got_err { break; }
            buf.extend_from_slice(rest);
        }
        prop_assert_eq!(got_err, want_err);
        if !want_err {
            prop_assert_eq!(got, want);
        } else {
            prop_assert!(want.starts_with(&got) || got.starts_with(&want));
        }
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(Some((f, _))) = parse_frame(&bytes, &Limits::default()) {
            let _ = parse_command(f);
        }
    }

    #[test]
    fn typed_garbage_never_panics(bytes in proptest::collection::vec(prop_oneof![Just(b'*'), Just(b'$'), Just(b'\r'), Just(b'\n'), Just(b'-'), Just(b'1'), Just(b'9'), any::<u8>()], 0..64)) {
        let _ = parse_frame(&bytes, &Limits::default());
    }
}

#[test]
fn huge_bulk_length_is_refused_before_buffering() {
    let r = parse_frame(b"*2\r\n$3\r\nGET\r\n$536870912\r\n", &Limits::default());
    assert!(r.is_err(), "{r:?}");
    assert!(parse_frame(b"*99999999999\r\n", &Limits::default()).is_err());
    assert!(parse_frame(b"$-2\r\n", &Limits::default()).is_err());
    assert!(parse_frame(b"*1\r\n$3\r\nabcX\r\n", &Limits::default()).is_err());
}

#[test]
fn deep_nesting_is_refused() {
    let deep = "*1\r\n".repeat(100);
    assert!(parse_frame(deep.as_bytes(), &Limits::default()).is_err());
}

#[test]
fn inline_commands_parse() {
    let (f, used) = parse_frame(b"SET a  b\r\nGET a\r\n", &Limits::default())
        .unwrap()
        .unwrap();
    assert_eq!(used, 10);
    assert_eq!(
        parse_command(f),
        Ok(Command::Data(kv::Op::Put {
            key: Bytes::from("a"),
            value: Bytes::from("b")
        }))
    );
}

#[test]
fn command_errors_use_redis_wording() {
    let cmd = |args: &[&str]| {
        parse_command(Frame::command(
            args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())),
        ))
    };
    assert_eq!(
        cmd(&["get"]).unwrap_err().0,
        "ERR wrong number of arguments for 'get' command"
    );
    assert_eq!(
        cmd(&["del"]).unwrap_err().0,
        "ERR wrong number of arguments for 'del' command"
    );
    assert_eq!(
        cmd(&["foo", "a"]).unwrap_err().0,
        "ERR unknown command 'foo', with args beginning with: 'a' "
    );
    assert_eq!(
        cmd(&["set", "k", "v", "EX", "1", "PX", "5"]).unwrap_err().0,
        "ERR syntax error"
    );
    assert_eq!(
        cmd(&["Exists", "a", "b"]),
        Ok(Command::Data(kv::Op::Exists {
            keys: vec![Bytes::from("a"), Bytes::from("b")]
        }))
    );
    assert_eq!(
        cmd(&["ping", "hi"]),
        Ok(Command::Ping(Some(Bytes::from("hi"))))
    );
}

/// RESP3 (after `HELLO 3`): null is `_`, a map is `%`; RESP2 flattens the map.
#[test]
fn resp3_encodes_null_and_maps_resp2_flattens_them() {
    use server::resp::Protocol;
    let f = Frame::Array(vec![
        Frame::Null,
        Frame::Map(vec![(
            Frame::Bulk(Bytes::from_static(b"k")),
            Frame::Integer(1),
        )]),
    ]);
    let mut out = BytesMut::new();
    f.encode_as(Protocol::Resp3, &mut out);
    assert_eq!(&out[..], b"*2\r\n_\r\n%1\r\n$1\r\nk\r\n:1\r\n");
    out.clear();
    f.encode(&mut out);
    assert_eq!(&out[..], b"*2\r\n$-1\r\n*2\r\n$1\r\nk\r\n:1\r\n");
}

#[test]
fn connection_setup_commands_of_client_libraries_parse() {
    let cmd = |args: &[&str]| {
        parse_command(Frame::command(
            args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())),
        ))
    };
    assert_eq!(
        cmd(&["HELLO"]),
        Ok(Command::Hello {
            version: None,
            auth: None,
            setname: None
        })
    );
    assert_eq!(
        cmd(&["hello", "3"]),
        Ok(Command::Hello {
            version: Some(3),
            auth: None,
            setname: None
        })
    );
    assert_eq!(
        cmd(&["HELLO", "3", "AUTH", "default", "pw", "SETNAME", "app"]),
        Ok(Command::Hello {
            version: Some(3),
            auth: Some((Bytes::from("default"), Bytes::from("pw"))),
            setname: Some(Bytes::from("app"))
        })
    );
    assert!(cmd(&["HELLO", "x"])
        .unwrap_err()
        .0
        .starts_with("ERR Protocol version"));
    assert!(cmd(&["HELLO", "3", "AUTH", "onlyuser"]).is_err());
    assert!(cmd(&["HELLO", "3", "SETNAME", "a b"]).is_err());
    for setup in [
        &["CLIENT", "SETINFO", "LIB-NAME", "redis-py"][..],
        &["CLIENT", "SETINFO", "LIB-VER", "5.0.1"],
        &["CLIENT", "SETNAME", "app"],
        &["CLIENT", "GETNAME"],
        &["CLIENT", "ID"],
        &["SELECT", "0"],
        &["CONFIG", "GET", "databases"],
    ] {
        assert!(
            matches!(cmd(setup), Ok(Command::Server(_))),
            "{setup:?} does not parse"
        );
    }
    assert!(cmd(&["CLIENT", "PAUSE", "x"])
        .unwrap_err()
        .0
        .contains("Try CLIENT HELP"));
    assert_eq!(
        cmd(&["SELECT", "1"]).unwrap_err().0,
        "ERR DB index is out of range"
    );
    assert_eq!(
        cmd(&["AUTH", "pw"]),
        Ok(Command::Auth {
            user: None,
            password: Bytes::from("pw")
        })
    );
    assert_eq!(
        cmd(&["AUTH", "default", "pw"]),
        Ok(Command::Auth {
            user: Some(Bytes::from("default")),
            password: Bytes::from("pw")
        })
    );
    assert_eq!(
        cmd(&["AUTH", "a", "b", "c"]).unwrap_err().0,
        "ERR syntax error"
    );
    assert!(cmd(&["AUTH"])
        .unwrap_err()
        .0
        .contains("wrong number of arguments"));
}

/// Issue 10's trickle: an array of 200,000 empty bulks arriving one byte
/// per read. The decoder keeps its progress, so this is 1.2 MB of work; the
/// old whole-buffer re-parse did ~10^11 byte visits here (it pegged a core
/// for as long as the trickle lasted).
#[test]
fn a_request_trickled_one_byte_at_a_time_decodes_in_linear_time() {
    let n = 200_000;
    let mut bytes = format!("*{n}\r\n").into_bytes();
    for _ in 0..n {
        bytes.extend_from_slice(b"$0\r\n\r\n");
    }
    let mut dec = Decoder::new(Limits::default(), usize::MAX);
    let mut buf = BytesMut::new();
    let mut done = None;
    for (i, b) in bytes.iter().enumerate() {
        buf.extend_from_slice(&[*b]);
        if let Some(f) = dec.decode(&mut buf).unwrap() {
            done = Some((i, f));
        }
    }
    let (at, frame) = done.expect("the request completes");
    assert_eq!(at, bytes.len() - 1);
    assert!(matches!(frame, Frame::Array(items) if items.len() == n));
}

/// The query buffer limit counts what a request holds, including each
/// element's frame, and refuses a bulk whose header alone would pass it.
#[test]
fn decoder_refuses_requests_over_the_query_buffer_limit() {
    let limits = Limits::default();
    let mut dec = Decoder::new(limits, 1 << 20);
    let mut buf = BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n"[..]);
    assert!(matches!(
        dec.decode(&mut buf),
        Err(server::resp::ParseError::TooBig(_))
    ));
    // Many tiny elements are charged their frames too.
    let mut dec = Decoder::new(limits, 1 << 20);
    let mut buf = BytesMut::from(&b"*1000000\r\n"[..]);
    let mut err = None;
    for _ in 0..100_000 {
        buf.extend_from_slice(b"$0\r\n\r\n");
        if let Err(e) = dec.decode(&mut buf) {
            err = Some(e);
            break;
        }
    }
    assert!(
        matches!(err, Some(server::resp::ParseError::TooBig(_))),
        "{err:?}"
    );
    // Within the limit a request decodes, and the next one starts afresh.
    let mut dec = Decoder::new(limits, 1 << 20);
    let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n"[..]);
    assert!(dec.decode(&mut buf).unwrap().is_some());
    assert!(dec.decode(&mut buf).unwrap().is_some());
    assert!(dec.decode(&mut buf).unwrap().is_none());
}

//! Numbers the way Redis reads and writes them, for stored values (INCR on
//! a string) and for command arguments (the RESP parser uses these too, so
//! "is this an integer" has one answer).
//!
//! - integers: Redis's `string2ll` — optional `-`, no `+`, no leading zeros,
//!   no spaces, within `i64`;
//! - floats: Redis's `string2ld` — what `strtod` reads entirely, with no
//!   leading space, not NaN and not out of range (`inf` itself is accepted);
//! - a float result is written in the shortest form that reads back to the
//!   same `f64` (Redis computes in `long double` and prints with `%.17Lf`
//!   trimmed; for the decimal inputs clients use the text is the same, e.g.
//!   `10.5 + 0.1 = 10.6`, `5.0e3 + 2.0e2 = 5200`).

/// Parses a decimal `i64` exactly as Redis's `string2ll` does.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    match digits {
        [] => return None,
        [b'0'] if !negative => return Some(0),
        [b'1'..=b'9', ..] => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    if negative {
        match v {
            v if v <= i64::MAX as u64 => Some(-(v as i64)),
            v if v == i64::MAX as u64 + 1 => Some(i64::MIN),
            _ => None,
        }
    } else {
        i64::try_from(v).ok()
    }
}

/// Parses a float as Redis's `string2ld` accepts it; `None` otherwise.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(s).ok()?;
    if text.is_empty() || text.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let v: f64 = text.parse().ok()?;
    let lower = text.trim_start_matches(['+', '-']).to_ascii_lowercase();
    let inf_literal = lower == "inf" || lower == "infinity";
    match v {
        v if v.is_nan() => None,
        v if v.is_infinite() && !inf_literal => None, // ERANGE in strtod
        v => Some(v),
    }
}

/// The text of a float result (`INCRBYFLOAT`): shortest round-trip form,
/// never an exponent.
pub fn format_f64(v: f64) -> String {
    format!("{v}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_as_redis_reads_them() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b"01",
            b"-0",
            b" 1",
            b"1 ",
            b"1.0",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"99999999999999999999999",
            b"abc",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn floats_as_redis_reads_them() {
        assert_eq!(parse_f64(b"10.5"), Some(10.5));
        assert_eq!(parse_f64(b"5.0e3"), Some(5000.0));
        assert_eq!(parse_f64(b"-.5"), Some(-0.5));
        assert_eq!(parse_f64(b"inf"), Some(f64::INFINITY));
        for bad in [&b""[..], b" 1", b"1 ", b"nan", b"abc", b"1e999", b"1.2.3"] {
            assert_eq!(parse_f64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn float_results_print_as_redis_prints_them() {
        assert_eq!(format_f64(10.5 + 0.1), "10.6");
        assert_eq!(format_f64(5000.0 + 200.0), "5200");
        assert_eq!(format_f64(3.0e3 + 1.5), "3001.5");
    }
}

//! Redis's glob patterns (`KEYS`, `SCAN ... MATCH`, `HSCAN ... MATCH`,
//! `CONFIG GET`, `COMMAND LIST FILTERBY PATTERN`), as its `stringmatchlen`
//! reads them: `*` any run, `?` any one byte, `[abc]`, `[^abc]`, `[a-z]`
//! (either order), and `\x` for a literal `x`. Binary-safe; bytes are
//! compared exactly (callers wanting `nocase` lower-case both sides).
//!
//! Invariant: time is O(pattern x subject). A `*` only ever backtracks to
//! the most recent `*` (the classic two-pointer match: once a later `*`
//! matched, an earlier one never needs to take more), so a client's
//! `KEYS *a*a*a*a*a*b` cannot stall the node that runs it — a recursive
//! matcher takes time exponential in the number of stars there. Checked
//! against the plain recursive reading of the rules in the tests.

/// Whether `s` matches `pattern`.
pub fn matches(pattern: &[u8], s: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last star: (pattern after it, subject position).
    let mut star: Option<(usize, usize)> = None;
    while t < s.len() {
        let step = match pattern.get(p) {
            Some(b'*') => {
                star = Some((p + 1, t));
                p += 1;
                continue;
            }
            Some(b'?') => Some(p + 1),
            Some(b'[') => class(&pattern[p + 1..], s[t]).map(|used| p + 1 + used),
            Some(b'\\') if p + 1 < pattern.len() => (pattern[p + 1] == s[t]).then_some(p + 2),
            Some(&c) => (c == s[t]).then_some(p + 1),
            None => None,
        };
        match (step, star) {
            (Some(next), _) => {
                p = next;
                t += 1;
            }
            (None, Some((sp, st))) => {
                star = Some((sp, st + 1));
                p = sp;
                t = st + 1;
            }
            (None, None) => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `b` against the class whose body starts at `p` (just after
/// `[`); how many pattern bytes the class took (its `]` included) when it
/// matched. An unclosed class runs to the end of the pattern (as in Redis).
fn class(p: &[u8], b: u8) -> Option<usize> {
    let negate = p.first() == Some(&b'^');
    let mut i = usize::from(negate);
    let mut hit = false;
    loop {
        match &p[i..] {
            [] => break,
            [b']', ..] => {
                i += 1;
                break;
            }
            [b'\\', x, ..] => {
                hit |= *x == b;
                i += 2;
            }
            [lo, b'-', hi, ..] if *hi != b']' => {
                let (lo, hi) = if lo <= hi { (*lo, *hi) } else { (*hi, *lo) };
                hit |= (lo..=hi).contains(&b);
                i += 3;
            }
            [x, ..] => {
                hit |= *x == b;
                i += 1;
            }
        }
    }
    (hit != negate).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::matches;
    use proptest::prelude::*;

    #[test]
    fn redis_docs_examples() {
        let m = |p: &str, s: &str| matches(p.as_bytes(), s.as_bytes());
        assert!(m("h?llo", "hello") && m("h?llo", "hallo") && !m("h?llo", "hllo"));
        assert!(m("h*llo", "hllo") && m("h*llo", "heeeello"));
        assert!(m("h[ae]llo", "hello") && m("h[ae]llo", "hallo") && !m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo") && !m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hallo") && m("h[a-b]llo", "hbllo") && !m("h[a-b]llo", "hcllo"));
        assert!(m("h[b-a]llo", "hallo"), "a reversed range");
        assert!(m("*", "") && m("*", "anything") && m("**a", "ba"));
        assert!(m("a\\*b", "a*b") && !m("a\\*b", "axb"));
        assert!(m("user:*", "user:1") && !m("user:*", "usr:1"));
        assert!(!m("a", "ab") && !m("ab", "a"));
    }

    // The model: the rules read literally, recursively (exponential in the
    // number of stars; fine for the small cases below).
    /// Redis bounds the recursion of `*`; a pattern nesting deeper fails.
    const MAX_NESTING: usize = 1000;

    fn match_from(mut p: &[u8], mut s: &[u8], depth: usize) -> bool {
        if depth > MAX_NESTING {
            return false;
        }
        while let Some(&c) = p.first() {
            match c {
                b'*' => {
                    while p.len() > 1 && p[1] == b'*' {
                        p = &p[1..];
                    }
                    if p.len() == 1 {
                        return true;
                    }
                    return (0..=s.len()).any(|i| match_from(&p[1..], &s[i..], depth + 1));
                }
                b'?' => {
                    if s.is_empty() {
                        return false;
                    }
                    s = &s[1..];
                    p = &p[1..];
                }
                b'[' => {
                    let Some((&b, rest)) = s.split_first() else {
                        return false;
                    };
                    let (hit, after) = class(&p[1..], b);
                    if !hit {
                        return false;
                    }
                    p = after;
                    s = rest;
                }
                _ => {
                    let (lit, after) = match (c, p.get(1)) {
                        (b'\\', Some(&next)) => (next, &p[2..]),
                        _ => (c, &p[1..]),
                    };
                    if s.first() != Some(&lit) {
                        return false;
                    }
                    s = &s[1..];
                    p = after;
                }
            }
        }
        s.is_empty()
    }

    /// Matches `b` against the class starting after `[`; returns whether it
    /// matched and the pattern after the closing `]` (an unclosed class runs to
    /// the end, as in Redis).
    fn class(mut p: &[u8], b: u8) -> (bool, &[u8]) {
        let negate = p.first() == Some(&b'^');
        if negate {
            p = &p[1..];
        }
        let mut hit = false;
        loop {
            match p {
                [] => break,
                [b']', rest @ ..] => {
                    p = rest;
                    break;
                }
                [b'\\', x, rest @ ..] => {
                    hit |= *x == b;
                    p = rest;
                }
                [lo, b'-', hi, rest @ ..] if *hi != b']' => {
                    let (lo, hi) = if lo <= hi { (*lo, *hi) } else { (*hi, *lo) };
                    hit |= (lo..=hi).contains(&b);
                    p = rest;
                }
                [x, rest @ ..] => {
                    hit |= *x == b;
                    p = rest;
                }
            }
        }
        (hit != negate, p)
    }

    fn model(pattern: &[u8], s: &[u8]) -> bool {
        match_from(pattern, s, 0)
    }

    #[test]
    fn many_stars_take_linear_time() {
        let subject = vec![b'a'; 10_000];
        let pattern = [&b"*a".repeat(40)[..], b"*b"].concat();
        assert!(!matches(&pattern, &subject));
        assert!(matches(&b"*a".repeat(40), &subject));
    }

    proptest! {
        /// Agrees with the literal reading on patterns and subjects over a
        /// small alphabet (so that stars, classes and escapes interact).
        #[test]
        fn agrees_with_the_recursive_model(
            pattern in proptest::collection::vec(prop_oneof![
                Just(b'*'), Just(b'?'), Just(b'['), Just(b']'), Just(b'^'),
                Just(b'-'), Just(b'\\'), Just(b'a'), Just(b'b'), Just(b'c'),
            ], 0..12),
            s in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'c'), Just(b'*'), Just(b'-')], 0..12),
        ) {
            prop_assert_eq!(matches(&pattern, &s), model(&pattern, &s));
        }
    }
}

//! Redis's glob patterns (`KEYS`, `SCAN ... MATCH`, `HSCAN ... MATCH`), as
//! its `stringmatchlen` reads them: `*` any run, `?` any one byte, `[abc]`,
//! `[^abc]`, `[a-z]` (either order), and `\x` for a literal `x`. Binary-safe;
//! bytes are compared exactly (no `nocase`).

/// Whether `s` matches `pattern`.
pub fn matches(pattern: &[u8], s: &[u8]) -> bool {
    match_from(pattern, s, 0)
}

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

#[cfg(test)]
mod tests {
    use super::matches;

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
}

//! Redis's glob-style patterns (`CONFIG GET`, `COMMAND LIST FILTERBY
//! PATTERN`): `*` any run, `?` one byte, `[abc]`, `[^abc]`, `[a-z]`, and
//! `\x` for a literal `x`. Bytes, not characters, as Redis matches.
//!
//! Invariant: time is O(pattern x text) — a star backtracks only to the
//! most recent star (the classic two-pointer match), so a hostile pattern
//! such as `*a*a*a*b` cannot take exponential time.

/// Whether `text` matches `pattern` (ASCII case-insensitive with `nocase`).
pub fn matches(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if nocase {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last star: (pattern after it, text position).
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        let step = match pattern.get(p) {
            Some(b'*') => {
                star = Some((p + 1, t));
                p += 1;
                continue;
            }
            Some(b'?') => Some(p + 1),
            Some(b'[') => class(pattern, p, text[t], nocase),
            Some(b'\\') if p + 1 < pattern.len() => eq(pattern[p + 1], text[t]).then_some(p + 2),
            Some(&c) => eq(c, text[t]).then_some(p + 1),
            None => None,
        };
        match (step, star) {
            (Some(next), _) => {
                p = next;
                t += 1;
            }
            (None, Some((sp, st))) => {
                p = sp;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            (None, None) => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `pattern[open] == b'['`; the
/// pattern position after the class when it matches. An unclosed class
/// runs to the end of the pattern (as in Redis).
fn class(pattern: &[u8], open: usize, c: u8, nocase: bool) -> Option<usize> {
    let fold = |b: u8| if nocase { b.to_ascii_lowercase() } else { b };
    let c = fold(c);
    let mut i = open + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut hit = false;
    while i < pattern.len() && pattern[i] != b']' {
        if pattern[i] == b'\\' && i + 1 < pattern.len() {
            hit |= fold(pattern[i + 1]) == c;
            i += 2;
        } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
            let (a, b) = (fold(pattern[i]), fold(pattern[i + 2]));
            hit |= (a.min(b)..=a.max(b)).contains(&c);
            i += 3;
        } else {
            hit |= fold(pattern[i]) == c;
            i += 1;
        }
    }
    let end = (i + 1).min(pattern.len());
    (hit != negate).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::matches;

    fn m(p: &str, t: &str) -> bool {
        matches(p.as_bytes(), t.as_bytes(), false)
    }

    #[test]
    fn redis_glob_forms() {
        assert!(m("*", ""));
        assert!(m("*", "maxclients"));
        assert!(m("max*", "maxclients"));
        assert!(m("*clients", "maxclients"));
        assert!(!m("max*", "timeout"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(!m("h[a-b]llo", "hcllo"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("*a*b", "xxaxxb"));
        assert!(!m("*a*b", "xxaxxc"));
        assert!(m("a*", "a"));
        assert!(!m("", "a"));
        assert!(matches(b"MAX*", b"maxclients", true));
        assert!(!matches(b"MAX*", b"maxclients", false));
    }

    #[test]
    fn hostile_patterns_stay_linear() {
        let text = "a".repeat(5000);
        let pattern = format!("{}b", "*a".repeat(50));
        assert!(!m(&pattern, &text));
    }
}

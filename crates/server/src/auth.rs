//! Client authentication on the RESP port: Redis's `requirepass` for the
//! `default` user, the password read from a file (`--requirepass-file`) so
//! it never shows in `ps`.
//!
//! Only a SHA-256 digest of the password is kept; a candidate is hashed and
//! the digests are compared in constant time (`subtle`), so neither the
//! password's bytes nor its length shape the time an `AUTH` takes (Redis
//! compares SHA-256 digests of ACL passwords the same way).
//!
//! Scope: client connections only. Requests a follower forwards to the
//! leader over the peer transport are not client-authenticated again (the
//! follower authenticated the client); the peer port has its own
//! authentication (`peer::handshake`).

use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Redis's reply to a command before `AUTH` succeeded.
pub const NOAUTH: &str = "NOAUTH Authentication required.";
/// Redis's reply to `HELLO` without `AUTH` before authenticating.
pub const NOAUTH_HELLO: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";
/// Redis's reply to a wrong user name or password.
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
/// Redis's reply to `AUTH <password>` when no password is configured.
pub const NO_PASSWORD_SET: &str = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";

/// The `default` user's password. `Debug` never shows it.
#[derive(Clone)]
pub struct Password {
    digest: [u8; 32],
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    pub fn new(password: &[u8]) -> Self {
        Password {
            digest: sha256(password),
        }
    }

    /// Reads the password from `path`: the file's bytes without one trailing
    /// newline (`\n` or `\r\n`), so `echo secret > FILE` works. An empty
    /// password is refused (Redis treats an empty `requirepass` as none).
    pub fn load(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read --requirepass-file {}: {e}", path.display()))?;
        let pw = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        let pw = pw.strip_suffix(b"\r").unwrap_or(pw);
        if pw.is_empty() {
            return Err(format!(
                "--requirepass-file {} holds an empty password",
                path.display()
            ));
        }
        warn_if_others_can_read(path, "--requirepass-file");
        Ok(Password::new(pw))
    }

    /// Whether `AUTH [user] password` names the `default` user (the only
    /// one) with this password. Constant time in the password's bytes.
    pub fn matches(&self, user: Option<&[u8]>, candidate: &[u8]) -> bool {
        let digest_ok: bool = sha256(candidate).ct_eq(&self.digest).into();
        let user_ok = user.is_none_or(|u| u == b"default");
        digest_ok & user_ok
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&Sha256::digest(bytes));
    out
}

/// Warns when `path` (a secret named by `flag`) is readable by group or others.
pub(crate) fn warn_if_others_can_read(path: &Path, flag: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                "{flag} is readable by other users; chmod 600 it"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_default_user_and_the_exact_password() {
        let pw = Password::new(b"s3cret");
        assert!(pw.matches(None, b"s3cret"));
        assert!(pw.matches(Some(b"default"), b"s3cret"));
        assert!(!pw.matches(Some(b"bob"), b"s3cret"));
        assert!(!pw.matches(None, b"s3cre"));
        assert!(!pw.matches(None, b"s3cret "));
        assert!(!pw.matches(None, b""));
        assert_eq!(format!("{pw:?}"), "Password(<redacted>)");
    }

    #[test]
    fn load_strips_one_newline_and_refuses_empty() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "hunter2\r\n").unwrap();
        assert!(Password::load(&f).unwrap().matches(None, b"hunter2"));
        std::fs::write(&f, "two words\n\n").unwrap();
        assert!(Password::load(&f).unwrap().matches(None, b"two words\n"));
        std::fs::write(&f, "\n").unwrap();
        assert!(Password::load(&f).is_err());
        assert!(Password::load(&dir.path().join("missing")).is_err());
    }
}

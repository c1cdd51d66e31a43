//! Secrets that never show in logs or `Debug` output.

use std::fmt;

/// A secret value: `Debug` prints `** redacted **`, there is no `Display`, and reading it takes
/// an explicit [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret.
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself; call it only where the value is needed, never to log it.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the secret.
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// Whether `a` and `b` are equal, in a time that depends on their lengths only: for secrets
/// and bearer tokens, whose common prefix must not show in how long a comparison takes.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("** redacted **")
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_comparison_is_equality() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"token", b"token"));
        assert!(!constant_time_eq(b"token", b"tokeN"));
        assert!(!constant_time_eq(b"Token", b"token"));
        assert!(!constant_time_eq(b"token", b"token-longer"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = Secret::new("wJalrXUtnFEMI/K7MDENG".to_owned());
        assert_eq!(format!("{secret:?}"), "** redacted **");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(** redacted **)");
        assert_eq!(secret.expose(), "wJalrXUtnFEMI/K7MDENG");
    }
}

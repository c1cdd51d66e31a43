//! AWS account ids.

use std::fmt;
use std::str::FromStr;

/// A 12-digit AWS account id, such as `111122223333`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId([u8; 12]);

impl AccountId {
    /// The account id as text.
    pub fn as_str(&self) -> &str {
        // The bytes are ASCII digits by construction.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl FromStr for AccountId {
    type Err = InvalidAccountId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes: [u8; 12] = s
            .as_bytes()
            .try_into()
            .map_err(|_| InvalidAccountId(s.to_owned()))?;
        if bytes.iter().all(u8::is_ascii_digit) {
            Ok(Self(bytes))
        } else {
            Err(InvalidAccountId(s.to_owned()))
        }
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Text that is not a 12-digit account id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an account id: an account id is exactly 12 digits")]
pub struct InvalidAccountId(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_twelve_digits_only() {
        assert_eq!(
            "111122223333".parse::<AccountId>().unwrap().to_string(),
            "111122223333"
        );
        for bad in [
            "",
            "11112222333",
            "1111222233334",
            "11112222333a",
            "١١١١٢٢٢٢٣٣٣٣",
        ] {
            assert!(bad.parse::<AccountId>().is_err(), "{bad}");
        }
    }
}

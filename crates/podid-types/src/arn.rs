//! Amazon Resource Names.

use std::fmt;
use std::str::FromStr;

/// A parsed ARN: `arn:partition:service:region:account:resource`.
///
/// The resource part keeps everything after the fifth colon, colons included.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Arn {
    text: String,
    // Byte offsets of the five colons that end `arn`, partition, service, region and account.
    colons: [usize; 5],
}

impl Arn {
    /// The partition, e.g. `aws`.
    pub fn partition(&self) -> &str {
        self.between(0, 1)
    }

    /// The service, e.g. `iam`.
    pub fn service(&self) -> &str {
        self.between(1, 2)
    }

    /// The region; empty for global services such as IAM.
    pub fn region(&self) -> &str {
        self.between(2, 3)
    }

    /// The account field; empty for some services, such as S3.
    pub fn account(&self) -> &str {
        self.between(3, 4)
    }

    /// Everything after the fifth colon, e.g. `role/path/name`.
    pub fn resource(&self) -> &str {
        let start = self.colons.get(4).map_or(0, |c| c + 1);
        self.text.get(start..).unwrap_or_default()
    }

    /// The whole ARN as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn between(&self, from: usize, to: usize) -> &str {
        match (self.colons.get(from), self.colons.get(to)) {
            (Some(start), Some(end)) => self.text.get(start + 1..*end).unwrap_or_default(),
            _ => "",
        }
    }
}

impl FromStr for Arn {
    type Err = InvalidArn;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut colons = [0usize; 5];
        let mut positions = s.match_indices(':').map(|(i, _)| i);
        for slot in &mut colons {
            *slot = positions.next().ok_or_else(|| InvalidArn(s.to_owned()))?;
        }
        let arn = Self {
            text: s.to_owned(),
            colons,
        };
        if !s.starts_with("arn:") || arn.partition().is_empty() || arn.service().is_empty() {
            return Err(InvalidArn(s.to_owned()));
        }
        Ok(arn)
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Text that is not an ARN.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an ARN: expected `arn:partition:service:region:account:resource`")]
pub struct InvalidArn(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_six_parts() {
        let arn: Arn = "arn:aws:sts::111122223333:assumed-role/r/s:x"
            .parse()
            .unwrap();
        assert_eq!(arn.partition(), "aws");
        assert_eq!(arn.service(), "sts");
        assert_eq!(arn.region(), "");
        assert_eq!(arn.account(), "111122223333");
        assert_eq!(arn.resource(), "assumed-role/r/s:x");
    }

    #[test]
    fn rejects_what_is_not_an_arn() {
        for bad in [
            "",
            "*",
            "arn:aws:s3",
            "arn::s3:::b",
            "arn:aws::::x",
            "urn:aws:s3:::b",
        ] {
            assert!(bad.parse::<Arn>().is_err(), "{bad}");
        }
    }
}

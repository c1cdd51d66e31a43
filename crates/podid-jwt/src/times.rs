//! The time claims `exp`, `nbf` and `iat`, read as RFC 7519 NumericDates.

use podid_types::Timestamp;
use serde_json::{Map, Value};

use crate::JwtError;

/// A token's validity window, from its claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenTimes {
    /// `exp`, to the millisecond (rounded down).
    pub expires: Timestamp,
    /// `nbf`, if the token has one.
    pub not_before: Option<Timestamp>,
    /// `iat`, if the token has one.
    pub issued_at: Option<Timestamp>,
}

/// Reads and checks the time claims against `now`, allowing `leeway_secs` of clock skew.
///
/// RFC 7519 §2: a NumericDate is a JSON number of seconds since 1970-01-01T00:00:00Z, which may
/// be fractional; it is compared with its fraction. `exp` is required: a token that never
/// expires is refused. `nbf` and `iat` are optional, but when present must be numbers too, and
/// must not be in the future. Any other shape (a string, `null`, a boolean, an object) is
/// refused with an error that names the claim: a claim that cannot be read is never skipped.
pub fn check_times(
    claims: &Map<String, Value>,
    now: Timestamp,
    leeway_secs: i64,
) -> Result<TokenTimes, JwtError> {
    let expires = numeric_date(claims, "exp")?.ok_or(JwtError::MissingClaim("exp"))?;
    let not_before = numeric_date(claims, "nbf")?;
    let issued_at = numeric_date(claims, "iat")?;
    #[expect(
        clippy::cast_precision_loss,
        reason = "milliseconds since 1970 are exact in an f64 until the year 287,396"
    )]
    let now_ms = now.as_millis() as f64;
    #[expect(clippy::cast_precision_loss, reason = "a leeway of seconds")]
    let leeway_ms = leeway_secs.saturating_mul(1000) as f64;
    let at = |secs: f64| secs * 1000.0;
    if now_ms > at(expires) + leeway_ms {
        return Err(JwtError::Expired(timestamp(expires)));
    }
    for (name, value) in [("nbf", not_before), ("iat", issued_at)] {
        if let Some(value) = value
            && at(value) > now_ms + leeway_ms
        {
            return Err(JwtError::NotYetValid {
                claim: name,
                at: timestamp(value),
            });
        }
    }
    Ok(TokenTimes {
        expires: timestamp(expires),
        not_before: not_before.map(timestamp),
        issued_at: issued_at.map(timestamp),
    })
}

/// `exp` of a token whose claims have been read, if it is a NumericDate: for callers that
/// look at a token again later (an agent deciding whether a pod's newest token is still alive).
pub fn expiry(claims: &Map<String, Value>) -> Option<Timestamp> {
    numeric_date(claims, "exp").ok().flatten().map(timestamp)
}

/// Claim `name` as seconds since the epoch; `Ok(None)` when absent.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<f64>, JwtError> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    let found = match value {
        Value::Number(n) => match n.as_f64() {
            Some(secs) if secs.is_finite() => return Ok(Some(secs)),
            _ => "a number out of range",
        },
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    Err(JwtError::ClaimNotNumber { claim: name, found })
}

/// Seconds since the epoch as a timestamp, to the millisecond, saturating far outside
/// podid's range.
fn timestamp(secs: f64) -> Timestamp {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "saturating float-to-int conversion is the intent"
    )]
    Timestamp::from_millis((secs * 1000.0).floor() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap_or_default()
    }

    const NOW: i64 = 1_800_000_000;

    fn check(json: &str) -> Result<TokenTimes, JwtError> {
        check_times(&claims(json), Timestamp::from_secs(NOW), 60)
    }

    #[test]
    fn every_shape_of_a_time_claim() {
        // Integers and fractions inside the window are accepted.
        assert!(check(r#"{"exp": 1800003600, "nbf": 1800000000, "iat": 1800000000}"#).is_ok());
        let times = check(r#"{"exp": 1800003600.25, "iat": 1799999999.5}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(times.expires, Timestamp::from_millis(1_800_003_600_250));
        assert_eq!(
            times.issued_at,
            Some(Timestamp::from_millis(1_799_999_999_500))
        );
        assert_eq!(times.not_before, None);
        assert!(check(r#"{"exp": 1.9e9}"#).is_ok());
        // `exp` is required.
        assert_eq!(
            check(r#"{"iat": 1800000000}"#),
            Err(JwtError::MissingClaim("exp"))
        );
        for (json, claim, found) in [
            (r#"{"exp": null}"#, "exp", "null"),
            (r#"{"exp": "1900000000"}"#, "exp", "a string"),
            (r#"{"exp": true}"#, "exp", "a boolean"),
            (r#"{"exp": [1900000000]}"#, "exp", "an array"),
            (r#"{"exp": {"s": 1}}"#, "exp", "an object"),
            (r#"{"exp": 1900000000, "nbf": "0"}"#, "nbf", "a string"),
            (r#"{"exp": 1900000000, "iat": null}"#, "iat", "null"),
            (r#"{"exp": 1900000000, "iat": false}"#, "iat", "a boolean"),
        ] {
            let err = check(json).unwrap_err();
            assert_eq!(err, JwtError::ClaimNotNumber { claim, found }, "{json}");
            assert!(err.to_string().contains(&format!("`{claim}`")), "{err}");
        }
        // Past expiry, with a fraction, just beyond the leeway; `1e9` is 2001.
        assert_eq!(
            check(r#"{"exp": 1799999939.5}"#),
            Err(JwtError::Expired(Timestamp::from_millis(1_799_999_939_500)))
        );
        assert!(check(r#"{"exp": 1799999940.5}"#).is_ok());
        assert!(matches!(
            check(r#"{"exp": 1e9}"#),
            Err(JwtError::Expired(_))
        ));
        // Future `nbf` and `iat`, fractional, just beyond the leeway.
        assert_eq!(
            check(r#"{"exp": 1900000000, "nbf": 1800000060.5}"#),
            Err(JwtError::NotYetValid {
                claim: "nbf",
                at: Timestamp::from_millis(1_800_000_060_500)
            })
        );
        assert!(matches!(
            check(r#"{"exp": 1900000000, "iat": 1800000060.001}"#),
            Err(JwtError::NotYetValid { claim: "iat", .. })
        ));
        assert!(check(r#"{"exp": 1900000000, "iat": 1800000059.999}"#).is_ok());
        // Extremes get an answer, not a panic.
        assert!(check(r#"{"exp": 1e300}"#).is_ok());
        assert!(matches!(
            check(r#"{"exp": -1e300}"#),
            Err(JwtError::Expired(_))
        ));
        assert!(check(r#"{"exp": 9223372036854775807}"#).is_ok());
        assert!(matches!(
            check(r#"{"exp": 1900000000, "nbf": 1e300}"#),
            Err(JwtError::NotYetValid { claim: "nbf", .. })
        ));
    }
}

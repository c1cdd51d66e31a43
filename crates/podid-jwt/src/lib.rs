#![doc = include_str!("../README.md")]

mod keys;
mod times;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use podid_types::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use keys::SigningKey;
pub use times::{TokenTimes, check_times, expiry};

/// The longest token accepted (kube-apiserver's are about 1 KB; EKS Auth's limit is 20,000).
pub const MAX_TOKEN_CHARS: usize = 20_000;

/// Why a token was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts of JSON.
    #[error("the token is not a JWT (three base64url parts: header, claims, signature)")]
    Malformed,
    /// The header names an algorithm outside the allow-list.
    #[error(
        "the token is signed with `{0}`, which is not accepted (accepted: RS256, RS384, RS512, ES256)"
    )]
    Algorithm(String),
    /// No key of the JWKS has the token's `kid` (or, without a `kid`, none verifies it).
    #[error("no key of the issuer's key set verifies the token (kid `{0}`)")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("the token's signature does not verify")]
    Signature,
    /// `exp` is in the past (beyond the leeway).
    #[error("the token expired at {}", .0.to_iso8601())]
    Expired(Timestamp),
    /// `nbf` or `iat` is in the future (beyond the leeway).
    #[error("the token's `{claim}` claim says it is not valid before {}", .at.to_iso8601())]
    NotYetValid {
        /// `nbf` or `iat`.
        claim: &'static str,
        /// When it becomes valid.
        at: Timestamp,
    },
    /// A required claim is absent (`exp`: every token must expire).
    #[error("the token has no `{0}` claim: a service account token must say when it expires")]
    MissingClaim(&'static str),
    /// A time claim that is not a JSON number.
    #[error(
        "the token's `{claim}` claim is {found}, not a number of seconds since 1970-01-01T00:00:00Z (RFC 7519's NumericDate)"
    )]
    ClaimNotNumber {
        /// `exp`, `nbf` or `iat`.
        claim: &'static str,
        /// What it is instead: `a string`, `null`, `a boolean`, ...
        found: &'static str,
    },
    /// A key could not be read or made.
    #[error("the signing key is unusable: {0}")]
    Key(String),
}

/// An algorithm podid accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// ECDSA on P-256 with SHA-256.
    Es256,
}

impl Algorithm {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(Self::Rs256),
            "RS384" => Some(Self::Rs384),
            "RS512" => Some(Self::Rs512),
            "ES256" => Some(Self::Es256),
            _ => None,
        }
    }

    /// The JWS name: `RS256`, ...
    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Es256 => "ES256",
        }
    }
}

/// A JSON Web Key (an RSA or a P-256 public key), as a JWKS lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `RSA`.
    pub kty: String,
    /// Use: `sig`.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// The key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The algorithm: `RS256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// RSA: the modulus, base64url.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub n: String,
    /// RSA: the exponent, base64url.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub e: String,
    /// EC: the curve (`P-256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC: the x coordinate, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC: the y coordinate, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

/// A JSON Web Key Set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// Reads a JWKS document.
    pub fn parse(text: &str) -> Result<Self, JwtError> {
        serde_json::from_str(text).map_err(|e| JwtError::Key(format!("not a JWKS document: {e}")))
    }
}

impl SigningKey {
    /// Signs `claims`: `header.claims.signature`, the header naming the key's algorithm and id.
    pub fn sign(&self, claims: &Map<String, Value>) -> Result<String, JwtError> {
        let header = serde_json::json!({"alg": self.algorithm().name(), "kid": self.kid()});
        let mut out = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string())
        );
        let signature = self.signature(out.as_bytes())?;
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(out)
    }
}

/// A token's parts, before any check.
#[derive(Clone, Debug)]
pub struct Unverified {
    /// The header.
    pub header: Map<String, Value>,
    /// The claims.
    pub claims: Map<String, Value>,
    signed: String,
    signature: Vec<u8>,
}

/// Splits a token and decodes its header and claims, without checking anything else: for
/// reading `iss` to find the key set.
pub fn decode_unverified(token: &str) -> Result<Unverified, JwtError> {
    if token.len() > MAX_TOKEN_CHARS {
        return Err(JwtError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let object = |part: &str| -> Result<Map<String, Value>, JwtError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| JwtError::Malformed)?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(JwtError::Malformed),
        }
    };
    Ok(Unverified {
        header: object(header)?,
        claims: object(claims)?,
        signed: format!("{header}.{claims}"),
        signature: URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| JwtError::Malformed)?,
    })
}

/// Verifies `token`'s signature with a key of `jwks` and its times against `now` (with
/// `leeway_secs` of clock skew, see [`check_times`]); returns the claims. Only RS256/384/512
/// (2048 to 8192-bit keys) and ES256 are accepted.
pub fn verify(
    token: &str,
    jwks: &Jwks,
    now: Timestamp,
    leeway_secs: i64,
) -> Result<Map<String, Value>, JwtError> {
    decode_unverified(token)?.verify(jwks, now, leeway_secs)
}

impl Unverified {
    /// [`verify`] for a token already decoded (which saves decoding it twice).
    pub fn verify(
        self,
        jwks: &Jwks,
        now: Timestamp,
        leeway_secs: i64,
    ) -> Result<Map<String, Value>, JwtError> {
        let alg_name = self
            .header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let alg = Algorithm::parse(alg_name).ok_or_else(|| JwtError::Algorithm(alg_name.into()))?;
        let kid = self.header.get("kid").and_then(Value::as_str);
        let candidates: Vec<&Jwk> = jwks
            .keys
            .iter()
            .filter(|k| {
                let family = match alg {
                    Algorithm::Es256 => "EC",
                    _ => "RSA",
                };
                k.kty == family && (kid.is_none() || k.kid.as_deref() == kid)
            })
            .collect();
        if candidates.is_empty() {
            return Err(JwtError::UnknownKey(kid.unwrap_or_default().into()));
        }
        let verified = candidates
            .iter()
            .any(|jwk| keys::verify_with(jwk, alg, self.signed.as_bytes(), &self.signature));
        if !verified {
            return Err(JwtError::Signature);
        }
        check_times(&self.claims, now, leeway_secs)?;
        Ok(self.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Map<String, Value> {
        let mut c = Map::new();
        c.insert("iss".into(), "https://issuer".into());
        c.insert("exp".into(), exp.into());
        c.insert("iat".into(), 1000.into());
        c
    }

    fn sign(key: &SigningKey, claims: &Map<String, Value>) -> String {
        key.sign(claims).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn signs_and_verifies_and_refuses_tampering_other_keys_and_algorithms() {
        let key = SigningKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let other = SigningKey::generate().unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(key.kid(), other.kid());
        let jwks = Jwks {
            keys: vec![key.jwk()],
        };
        let token = sign(&key, &claims(5000));
        let now = Timestamp::from_secs(2000);
        let got = verify(&token, &jwks, now, 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.get("iss"), Some(&Value::from("https://issuer")));
        // Expired, not yet valid.
        assert_eq!(
            verify(&token, &jwks, Timestamp::from_secs(6000), 0),
            Err(JwtError::Expired(Timestamp::from_secs(5000)))
        );
        assert_eq!(
            verify(&token, &jwks, Timestamp::from_secs(10), 0),
            Err(JwtError::NotYetValid {
                claim: "iat",
                at: Timestamp::from_secs(1000)
            })
        );
        // Another key's token: its kid is unknown here.
        let foreign = sign(&other, &claims(5000));
        assert!(matches!(
            verify(&foreign, &jwks, now, 0),
            Err(JwtError::UnknownKey(_))
        ));
        // Tampered claims.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(r#"{"iss":"https://issuer","exp":99999}"#);
        if let Some(p) = parts.get_mut(1) {
            *p = &forged;
        }
        assert_eq!(
            verify(&parts.join("."), &jwks, now, 0),
            Err(JwtError::Signature)
        );
        // A well-signed token without `exp` is refused after its signature is checked.
        let mut no_exp = claims(5000);
        no_exp.remove("exp");
        assert_eq!(
            verify(&sign(&key, &no_exp), &jwks, now, 0),
            Err(JwtError::MissingClaim("exp"))
        );
        // `none` and HMAC are refused whatever the signature.
        for alg in ["none", "HS256"] {
            let header =
                URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","kid":"{}"}}"#, key.kid()));
            let body = URL_SAFE_NO_PAD.encode(r#"{"iss":"https://issuer"}"#);
            assert_eq!(
                verify(&format!("{header}.{body}."), &jwks, now, 0),
                Err(JwtError::Algorithm(alg.into()))
            );
        }
        for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert_eq!(verify(bad, &jwks, now, 0), Err(JwtError::Malformed));
        }
    }

    #[test]
    fn a_parsed_key_is_reused_only_for_its_own_modulus_exponent_and_algorithm() {
        let key = SigningKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let jwks = Jwks {
            keys: vec![key.jwk()],
        };
        let now = Timestamp::from_secs(2000);
        let token = sign(&key, &claims(5000));
        // Twice: the second check finds the key parsed by the first, and still checks the
        // signature of every token.
        for _ in 0..2 {
            assert!(verify(&token, &jwks, now, 0).is_ok());
            // A character in the middle of the signature changed.
            let middle = token.len() - 100;
            let mut tampered = token.clone();
            let replacement = if token.get(middle..=middle) == Some("A") {
                "B"
            } else {
                "A"
            };
            tampered.replace_range(middle..=middle, replacement);
            assert_eq!(verify(&tampered, &jwks, now, 0), Err(JwtError::Signature));
        }
        // The same modulus with another exponent is another key: no signature of this one
        // verifies under it.
        let mut other_e = key.jwk();
        other_e.e = URL_SAFE_NO_PAD.encode([1u8, 0, 3]);
        let other = Jwks {
            keys: vec![other_e],
        };
        assert_eq!(verify(&token, &other, now, 0), Err(JwtError::Signature));
        // The same key under RS384: the RS256 signature does not verify.
        let (header, rest) = token.split_once('.').unwrap_or_default();
        let rs384 = URL_SAFE_NO_PAD.encode(
            String::from_utf8(URL_SAFE_NO_PAD.decode(header).unwrap_or_default())
                .unwrap_or_default()
                .replace("RS256", "RS384"),
        );
        assert_eq!(
            verify(&format!("{rs384}.{rest}"), &jwks, now, 0),
            Err(JwtError::Signature)
        );
        // And the RS256 token still verifies after both.
        assert!(verify(&token, &jwks, now, 0).is_ok());
    }

    #[test]
    fn es256_keys_sign_and_verify() {
        let key = SigningKey::generate_es256().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(key.algorithm(), Algorithm::Es256);
        let jwk = key.jwk();
        assert_eq!(
            (jwk.kty.as_str(), jwk.crv.as_deref()),
            ("EC", Some("P-256"))
        );
        let jwks = Jwks { keys: vec![jwk] };
        let token = sign(&key, &claims(5000));
        assert!(token.starts_with(
            &URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"ES256","kid":"{}"}}"#, key.kid()))
        ));
        let now = Timestamp::from_secs(2000);
        assert!(verify(&token, &jwks, now, 0).is_ok());
        let (signed, _) = token.rsplit_once('.').unwrap_or_default();
        let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode([1u8; 64]));
        assert_eq!(verify(&forged, &jwks, now, 0), Err(JwtError::Signature));
        // Through PKCS#8 and back, with the same kid.
        let der = key.to_pkcs8_der().unwrap_or_else(|e| panic!("{e}"));
        let again = SigningKey::from_pkcs8_der(der.expose()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.kid(), key.kid());
        assert_eq!(again.jwk(), key.jwk());
        // The JWKS document form reads back.
        let text = serde_json::to_string(&jwks).unwrap_or_default();
        assert_eq!(Jwks::parse(&text), Ok(jwks));
    }

    #[test]
    fn keys_round_trip_through_pkcs8_with_the_same_kid() {
        let key = SigningKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let der = key.to_pkcs8_der().unwrap_or_else(|e| panic!("{e}"));
        let again = SigningKey::from_pkcs8_der(der.expose()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.kid(), key.kid());
        assert_eq!(again.jwk(), key.jwk());
        assert_eq!(key.kid().len(), 43);
        assert!(matches!(
            SigningKey::from_pkcs8_der(b"not a key"),
            Err(JwtError::Key(_))
        ));
    }

    /// `tests/data/` holds a key, its JWKS and kid, and RS256 and ES256 tokens, all written by
    /// podid before it moved from the `rsa` and `p256` crates to aws-lc-rs.
    mod before_aws_lc {
        use super::*;

        const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

        fn read(name: &str) -> String {
            std::fs::read_to_string(format!("{DATA}/{name}"))
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        }

        fn now() -> Timestamp {
            Timestamp::from_secs(1_800_000_000)
        }

        #[test]
        fn stored_keys_and_issued_tokens_still_work() {
            let der = std::fs::read(format!("{DATA}/rsa-2048.pk8")).unwrap_or_default();
            let key = SigningKey::from_pkcs8_der(&der).unwrap_or_else(|e| panic!("{e}"));
            // The same kid and the same public JWK: key sets already published stay valid.
            assert_eq!(key.kid(), read("rsa-2048.kid"));
            let jwks = Jwks::parse(&read("rsa-2048.jwks.json")).unwrap_or_default();
            assert_eq!(jwks.keys, vec![key.jwk()]);
            // A token issued before verifies now...
            let old = read("rs256-token.jwt");
            let claims = verify(&old, &jwks, now(), 60).unwrap_or_else(|e| panic!("{e}"));
            // ...and signing the same claims again gives the very same token (PKCS#1 v1.5 is
            // deterministic): the format, header and kid are unchanged.
            assert_eq!(sign(&key, &claims), old);
            // ES256 tokens signed by the p256 crate verify with aws-lc-rs.
            let ec = Jwks::parse(&read("p256.jwks.json")).unwrap_or_default();
            assert!(verify(&read("es256-token.jwt"), &ec, now(), 60).is_ok());
        }
    }
}

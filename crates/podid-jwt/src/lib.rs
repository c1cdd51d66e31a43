#![doc = include_str!("../README.md")]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use podid_types::{Secret, Timestamp};
use rsa::pkcs1v15::{Signature, SigningKey as RsaSigner, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha384, Sha512};

/// The longest token accepted (kube-apiserver's are about 1 KB; EKS Auth's limit is 20,000).
pub const MAX_TOKEN_CHARS: usize = 20_000;

/// RSA key size for new signing keys.
const RSA_BITS: usize = 2048;

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
    /// `exp` is in the past.
    #[error("the token expired at {0}")]
    Expired(i64),
    /// `nbf` or `iat` is in the future.
    #[error("the token is not valid before {0}")]
    NotYetValid(i64),
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

/// An RSA signing key with its key id.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    key: RsaPrivateKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Randomness for key generation: the caller's source of random bytes.
struct Random<'a>(&'a mut dyn FnMut(&mut [u8]));

impl rand_core::RngCore for Random<'_> {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        (self.0)(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        (self.0)(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        (self.0)(dest);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        (self.0)(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for Random<'_> {}

impl SigningKey {
    /// A new 2048-bit RSA key from `random` (which must be a cryptographic source).
    pub fn generate(random: &mut dyn FnMut(&mut [u8])) -> Result<Self, JwtError> {
        let key = RsaPrivateKey::new(&mut Random(random), RSA_BITS)
            .map_err(|e| JwtError::Key(e.to_string()))?;
        Self::from_key(key)
    }

    /// Reads a key written by [`SigningKey::to_pkcs8_der`].
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, JwtError> {
        let key = RsaPrivateKey::from_pkcs8_der(der).map_err(|e| JwtError::Key(e.to_string()))?;
        Self::from_key(key)
    }

    fn from_key(key: RsaPrivateKey) -> Result<Self, JwtError> {
        let der = key
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| JwtError::Key(e.to_string()))?;
        // kube-apiserver's key id: base64url(SHA-256(DER of the public key)).
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(der.as_bytes()));
        Ok(Self { kid, key })
    }

    /// The key as PKCS#8 DER, for sealing into storage.
    pub fn to_pkcs8_der(&self) -> Result<Secret<Vec<u8>>, JwtError> {
        self.key
            .to_pkcs8_der()
            .map(|d| Secret::new(d.as_bytes().to_vec()))
            .map_err(|e| JwtError::Key(e.to_string()))
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Jwk {
        let public = self.key.to_public_key();
        Jwk {
            kty: "RSA".into(),
            use_: Some("sig".into()),
            kid: Some(self.kid.clone()),
            alg: Some("RS256".into()),
            n: URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            e: URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
            crv: None,
            x: None,
            y: None,
        }
    }

    /// Signs `claims` with RS256: `header.claims.signature`.
    pub fn sign(&self, claims: &Map<String, Value>) -> String {
        let header = serde_json::json!({"alg": "RS256", "kid": self.kid});
        let mut out = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string())
        );
        let signer = RsaSigner::<Sha256>::new(self.key.clone());
        let signature: Signature = signer.sign(out.as_bytes());
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(signature.to_bytes()));
        out
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
/// `leeway_secs` of clock skew); returns the claims. Only RS256/384/512 and ES256 are accepted.
pub fn verify(
    token: &str,
    jwks: &Jwks,
    now: Timestamp,
    leeway_secs: i64,
) -> Result<Map<String, Value>, JwtError> {
    let parsed = decode_unverified(token)?;
    let alg_name = parsed
        .header
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let alg = Algorithm::parse(alg_name).ok_or_else(|| JwtError::Algorithm(alg_name.into()))?;
    let kid = parsed.header.get("kid").and_then(Value::as_str);
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
        .any(|jwk| verify_with(jwk, alg, &parsed.signed, &parsed.signature));
    if !verified {
        return Err(JwtError::Signature);
    }
    let now = now.as_secs();
    let number = |name: &str| parsed.claims.get(name).and_then(Value::as_i64);
    if let Some(exp) = number("exp") {
        if now > exp.saturating_add(leeway_secs) {
            return Err(JwtError::Expired(exp));
        }
    }
    for name in ["nbf", "iat"] {
        if let Some(at) = number(name) {
            if at > now.saturating_add(leeway_secs) {
                return Err(JwtError::NotYetValid(at));
            }
        }
    }
    Ok(parsed.claims)
}

fn verify_with(jwk: &Jwk, alg: Algorithm, signed: &str, signature: &[u8]) -> bool {
    if alg == Algorithm::Es256 {
        return verify_es256(jwk, signed, signature);
    }
    let (Ok(n), Ok(e)) = (
        URL_SAFE_NO_PAD.decode(&jwk.n),
        URL_SAFE_NO_PAD.decode(&jwk.e),
    ) else {
        return false;
    };
    let Ok(public) = RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e))
    else {
        return false;
    };
    let Ok(signature) = Signature::try_from(signature) else {
        return false;
    };
    match alg {
        Algorithm::Rs256 => VerifyingKey::<Sha256>::new(public)
            .verify(signed.as_bytes(), &signature)
            .is_ok(),
        Algorithm::Rs384 => VerifyingKey::<Sha384>::new(public)
            .verify(signed.as_bytes(), &signature)
            .is_ok(),
        Algorithm::Rs512 => VerifyingKey::<Sha512>::new(public)
            .verify(signed.as_bytes(), &signature)
            .is_ok(),
        Algorithm::Es256 => false,
    }
}

/// ES256: the JWS signature is `r ‖ s` (64 bytes) over the signing input, with SHA-256.
fn verify_es256(jwk: &Jwk, signed: &str, signature: &[u8]) -> bool {
    use p256::ecdsa::signature::Verifier as _;
    if jwk.crv.as_deref() != Some("P-256") {
        return false;
    }
    let coordinate = |c: &Option<String>| {
        c.as_deref()
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .filter(|b| b.len() == 32)
    };
    let (Some(x), Some(y)) = (coordinate(&jwk.x), coordinate(&jwk.y)) else {
        return false;
    };
    let point = p256::EncodedPoint::from_affine_coordinates(
        p256::FieldBytes::from_slice(&x),
        p256::FieldBytes::from_slice(&y),
        false,
    );
    let Ok(key) = p256::ecdsa::VerifyingKey::from_encoded_point(&point) else {
        return false;
    };
    let Ok(signature) = p256::ecdsa::Signature::from_slice(signature) else {
        return false;
    };
    key.verify(signed.as_bytes(), &signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> impl FnMut(&mut [u8]) {
        let mut state: u64 = 0x1234_5678_9abc_def0;
        move |buf: &mut [u8]| {
            for b in buf.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = state.to_le_bytes().first().copied().unwrap_or(0);
            }
        }
    }

    fn claims(exp: i64) -> Map<String, Value> {
        let mut c = Map::new();
        c.insert("iss".into(), "https://issuer".into());
        c.insert("exp".into(), exp.into());
        c.insert("iat".into(), 1000.into());
        c
    }

    #[test]
    fn signs_and_verifies_and_refuses_tampering_other_keys_and_algorithms() {
        let mut random = counter();
        let key = SigningKey::generate(&mut random).unwrap_or_else(|e| panic!("{e}"));
        let other = SigningKey::generate(&mut random).unwrap_or_else(|e| panic!("{e}"));
        let jwks = Jwks {
            keys: vec![key.jwk()],
        };
        let token = key.sign(&claims(5000));
        let now = Timestamp::from_secs(2000);
        let got = verify(&token, &jwks, now, 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.get("iss"), Some(&Value::from("https://issuer")));
        // Expired, not yet valid.
        assert_eq!(
            verify(&token, &jwks, Timestamp::from_secs(6000), 0),
            Err(JwtError::Expired(5000))
        );
        assert_eq!(
            verify(&token, &jwks, Timestamp::from_secs(10), 0),
            Err(JwtError::NotYetValid(1000))
        );
        // Another key's token: its kid is unknown here.
        let foreign = other.sign(&claims(5000));
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
    fn es256_tokens_verify_with_ec_keys() {
        use p256::ecdsa::signature::Signer as _;
        let secret =
            p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap_or_else(|e| panic!("{e}"));
        let point = secret.verifying_key().to_encoded_point(false);
        let jwk = Jwk {
            kty: "EC".into(),
            use_: Some("sig".into()),
            kid: Some("ec-1".into()),
            alg: Some("ES256".into()),
            n: String::new(),
            e: String::new(),
            crv: Some("P-256".into()),
            x: point.x().map(|x| URL_SAFE_NO_PAD.encode(x)),
            y: point.y().map(|y| URL_SAFE_NO_PAD.encode(y)),
        };
        let jwks = Jwks { keys: vec![jwk] };
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","kid":"ec-1"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"iss":"https://issuer","exp":5000}"#)
        );
        let signature: p256::ecdsa::Signature = secret.sign(signing_input.as_bytes());
        let token = format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        );
        let claims =
            verify(&token, &jwks, Timestamp::from_secs(1000), 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(claims.get("iss"), Some(&Value::from("https://issuer")));
        let forged = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode([1u8; 64]));
        assert_eq!(
            verify(&forged, &jwks, Timestamp::from_secs(1000), 0),
            Err(JwtError::Signature)
        );
        // The JWKS document form reads back.
        let text = serde_json::to_string(&jwks).unwrap_or_default();
        assert_eq!(Jwks::parse(&text), Ok(jwks));
    }

    #[test]
    fn keys_round_trip_through_pkcs8_with_the_same_kid() {
        let mut random = counter();
        let key = SigningKey::generate(&mut random).unwrap_or_else(|e| panic!("{e}"));
        let der = key.to_pkcs8_der().unwrap_or_else(|e| panic!("{e}"));
        let again = SigningKey::from_pkcs8_der(der.expose()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.kid(), key.kid());
        assert_eq!(again.jwk(), key.jwk());
        assert_eq!(key.kid().len(), 43);
    }
}

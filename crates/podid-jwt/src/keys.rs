//! Signing keys and public-key checks, on aws-lc-rs (constant-time RSA and ECDSA, the crypto
//! provider rustls uses by default and the only one in the podid binary).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

use aws_lc_rs::encoding::{AsBigEndian, AsDer, EcPublicKeyUncompressedBin};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA384,
    RSA_PKCS1_2048_8192_SHA512, RSA_PKCS1_SHA256, RsaKeyPair, UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use podid_types::Secret;
use sha2::{Digest, Sha256};

use crate::{Algorithm, Jwk, JwtError};

/// A key that signs service-account tokens, with its key id: RSA 2048 (RS256, what
/// kube-apiserver and EKS use) or P-256 (ES256).
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    key: Arc<Private>,
}

enum Private {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.algorithm())
            .finish_non_exhaustive()
    }
}

/// The RSA keys being made ahead by [`SigningKey::make_ahead`]: the first one made is taken.
static AHEAD: std::sync::Mutex<Option<std::sync::mpsc::Receiver<Result<SigningKey, JwtError>>>> =
    std::sync::Mutex::new(None);

impl SigningKey {
    /// A new 2048-bit RSA key (RS256). Its randomness is aws-lc's generator, seeded by the
    /// operating system: key material never comes from an injected source.
    ///
    /// After [`SigningKey::make_ahead`], the first key made ahead is taken (waiting for it if
    /// none is ready yet).
    pub fn generate() -> Result<Self, JwtError> {
        let ahead = AHEAD.lock().ok().and_then(|mut ahead| ahead.take());
        match ahead.and_then(|keys| keys.recv().ok()) {
            Some(key) => key,
            None => Self::generate_now(),
        }
    }

    /// Starts making an RSA key in the background for the next [`SigningKey::generate`],
    /// unless that is under way already. Finding a 2048-bit key's primes is a random search
    /// (50 ms here, sometimes 400): two searches run, one per core, and the first key found is
    /// used, which cuts the long waits `podid up` would otherwise make when it creates its
    /// cluster.
    pub fn make_ahead() {
        let Ok(mut ahead) = AHEAD.lock() else {
            return;
        };
        if ahead.is_some() {
            return;
        }
        let (found, keys) = std::sync::mpsc::channel();
        for _ in 0..2 {
            let found = found.clone();
            let _ = std::thread::Builder::new()
                .name("podid-key-ahead".into())
                .spawn(move || {
                    // The slower search finds no one waiting: its key is dropped.
                    let _ = found.send(Self::generate_now());
                });
        }
        *ahead = Some(keys);
    }

    fn generate_now() -> Result<Self, JwtError> {
        let key = RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| JwtError::Key("cannot generate an RSA key".into()))?;
        Self::from_private(Private::Rsa(key))
    }

    /// A new P-256 key (ES256), from aws-lc's generator.
    pub fn generate_es256() -> Result<Self, JwtError> {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| JwtError::Key("cannot generate a P-256 key".into()))?;
        Self::from_private(Private::Ec(key))
    }

    /// Reads a PKCS#8 key (RSA or P-256), as written by [`SigningKey::to_pkcs8_der`] (or by
    /// podid before it moved to aws-lc-rs: the format is the same).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, JwtError> {
        if let Ok(key) = RsaKeyPair::from_pkcs8(der) {
            return Self::from_private(Private::Rsa(key));
        }
        match EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
            Ok(key) => Self::from_private(Private::Ec(key)),
            Err(e) => Err(JwtError::Key(format!(
                "not a PKCS#8 RSA or P-256 private key ({e})"
            ))),
        }
    }

    fn from_private(key: Private) -> Result<Self, JwtError> {
        let spki = match &key {
            Private::Rsa(k) => k.public_key().as_der().map(|d| d.as_ref().to_vec()),
            Private::Ec(k) => k.public_key().as_der().map(|d| d.as_ref().to_vec()),
        }
        .map_err(|_| JwtError::Key("cannot encode the public key".into()))?;
        // kube-apiserver's key id: base64url(SHA-256(DER SubjectPublicKeyInfo)).
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(&spki));
        Ok(Self {
            kid,
            key: Arc::new(key),
        })
    }

    /// The key as PKCS#8 DER, for sealing into storage.
    pub fn to_pkcs8_der(&self) -> Result<Secret<Vec<u8>>, JwtError> {
        let der = match &*self.key {
            Private::Rsa(k) => k.as_der().map(|d| d.as_ref().to_vec()),
            Private::Ec(k) => k.to_pkcs8v1().map(|d| d.as_ref().to_vec()),
        };
        der.map(Secret::new)
            .map_err(|_| JwtError::Key("cannot encode the private key".into()))
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// `RS256` or `ES256`.
    pub fn algorithm(&self) -> Algorithm {
        match &*self.key {
            Private::Rsa(_) => Algorithm::Rs256,
            Private::Ec(_) => Algorithm::Es256,
        }
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Jwk {
        let mut jwk = Jwk {
            kty: String::new(),
            use_: Some("sig".into()),
            kid: Some(self.kid.clone()),
            alg: Some(self.algorithm().name().into()),
            n: String::new(),
            e: String::new(),
            crv: None,
            x: None,
            y: None,
        };
        match &*self.key {
            Private::Rsa(k) => {
                let public = k.public_key();
                jwk.kty = "RSA".into();
                jwk.n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
                jwk.e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
            }
            Private::Ec(k) => {
                jwk.kty = "EC".into();
                jwk.crv = Some("P-256".into());
                let point: Option<EcPublicKeyUncompressedBin<'_>> =
                    k.public_key().as_be_bytes().ok();
                // 0x04 ‖ x (32 bytes) ‖ y (32 bytes).
                if let Some(point) = point {
                    let bytes = point.as_ref();
                    jwk.x = bytes.get(1..33).map(|x| URL_SAFE_NO_PAD.encode(x));
                    jwk.y = bytes.get(33..65).map(|y| URL_SAFE_NO_PAD.encode(y));
                }
            }
        }
        jwk
    }

    /// The JWS signature of `signing_input`: RSASSA-PKCS1-v1_5 with SHA-256, or ECDSA P-256 with
    /// SHA-256 as `r ‖ s`.
    pub(crate) fn signature(&self, signing_input: &[u8]) -> Result<Vec<u8>, JwtError> {
        let random = SystemRandom::new();
        match &*self.key {
            Private::Rsa(k) => {
                let mut out = vec![0u8; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &random, signing_input, &mut out)
                    .map_err(|_| JwtError::Key("RSA signing failed".into()))?;
                Ok(out)
            }
            Private::Ec(k) => k
                .sign(&random, signing_input)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| JwtError::Key("ECDSA signing failed".into())),
        }
    }
}

/// The most RSA keys kept parsed; the cache is emptied when it is full.
const PARSED_RSA_KEYS: usize = 256;

/// RSA public keys parsed before: by modulus (its JWK text), then algorithm and exponent. A
/// parsed key keeps aws-lc's Montgomery context of the modulus, whose set-up costs about as
/// much as a verification; a cluster's few keys check every token it signs.
type ParsedRsaKeys = HashMap<String, Vec<(Algorithm, String, Arc<ParsedPublicKey>)>>;

static PARSED_RSA: LazyLock<RwLock<ParsedRsaKeys>> = LazyLock::new(RwLock::default);

/// `jwk` as a parsed RSA key for `alg`: from the cache, or parsed now (`None`: not a usable RSA
/// key of 2048 to 8192 bits).
fn rsa_key(jwk: &Jwk, alg: Algorithm) -> Option<Arc<ParsedPublicKey>> {
    let cached = PARSED_RSA.read().ok().and_then(|cache| {
        cache.get(jwk.n.as_str()).and_then(|keys| {
            keys.iter()
                .find(|(a, e, _)| *a == alg && *e == jwk.e)
                .map(|(_, _, key)| key.clone())
        })
    });
    if cached.is_some() {
        return cached;
    }
    let decode = |v: &str| URL_SAFE_NO_PAD.decode(v).ok();
    let parameters = match alg {
        Algorithm::Rs384 => &RSA_PKCS1_2048_8192_SHA384,
        Algorithm::Rs512 => &RSA_PKCS1_2048_8192_SHA512,
        _ => &RSA_PKCS1_2048_8192_SHA256,
    };
    let key = PublicKeyComponents {
        n: decode(&jwk.n)?,
        e: decode(&jwk.e)?,
    }
    .to_parsed_public_key(parameters)
    .ok()?;
    let key = Arc::new(key);
    if let Ok(mut cache) = PARSED_RSA.write() {
        if cache.values().map(Vec::len).sum::<usize>() >= PARSED_RSA_KEYS {
            cache.clear();
        }
        let keys = cache.entry(jwk.n.clone()).or_default();
        // Another thread may have parsed the same key meanwhile.
        if !keys.iter().any(|(a, e, _)| *a == alg && *e == jwk.e) {
            keys.push((alg, jwk.e.clone(), key.clone()));
        }
    }
    Some(key)
}

/// Whether `signature` is `jwk`'s signature of `signed` under `alg`. RSA keys must have
/// 2048 to 8192 bits; EC keys must be on P-256.
pub(crate) fn verify_with(jwk: &Jwk, alg: Algorithm, signed: &[u8], signature: &[u8]) -> bool {
    let decode = |v: &str| URL_SAFE_NO_PAD.decode(v).ok();
    match alg {
        Algorithm::Rs256 | Algorithm::Rs384 | Algorithm::Rs512 => {
            rsa_key(jwk, alg).is_some_and(|key| key.verify_sig(signed, signature).is_ok())
        }
        Algorithm::Es256 => {
            if jwk.crv.as_deref() != Some("P-256") {
                return false;
            }
            let coordinate = |c: &Option<String>| {
                c.as_deref()
                    .and_then(decode)
                    .filter(|bytes| bytes.len() == 32)
            };
            let (Some(x), Some(y)) = (coordinate(&jwk.x), coordinate(&jwk.y)) else {
                return false;
            };
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(signed, signature)
                .is_ok()
        }
    }
}

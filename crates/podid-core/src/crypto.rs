//! Secrets at rest, sealed with the server's master key (AES-256-GCM).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use podid_types::Secret;

use crate::ids::Ids;

/// The server's master key: 32 bytes that seal every secret the store keeps.
#[derive(Clone)]
pub struct MasterKey(Secret<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(** redacted **)")
    }
}

/// A master key that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is not 32 bytes in hex or base64.
    #[error("a master key is 32 bytes written as 64 hex digits or in base64; this is neither")]
    Malformed,
    /// A sealed value does not open with this key.
    #[error(
        "a stored secret does not open with the master key: the master key is not the one the data was written with"
    )]
    WrongKey,
}

impl MasterKey {
    /// A new random key.
    pub fn generate(ids: &dyn Ids) -> Self {
        let mut key = [0u8; 32];
        ids.fill(&mut key);
        Self(Secret::new(key))
    }

    /// Reads a key written as 64 hex digits or as base64 (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(text.get(i * 2..i * 2 + 2).unwrap_or_default(), 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| KeyError::Malformed)?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| KeyError::Malformed)?
        };
        let key: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Malformed)?;
        Ok(Self(Secret::new(key)))
    }

    /// The key as 64 hex digits, for writing the key file.
    pub fn to_hex(&self) -> Secret<String> {
        Secret::new(self.0.expose().iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Seals `plaintext`: `v1:` + base64(nonce ‖ ciphertext ‖ tag).
    pub fn seal(&self, ids: &dyn Ids, plaintext: &[u8]) -> String {
        let cipher = Aes256Gcm::new(self.0.expose().into());
        let mut nonce = [0u8; 12];
        ids.fill(&mut nonce);
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend(sealed);
        format!(
            "v1:{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        )
    }

    /// Opens what [`MasterKey::seal`] sealed.
    pub fn open(&self, sealed: &str) -> Result<Secret<Vec<u8>>, KeyError> {
        let body = sealed.strip_prefix("v1:").ok_or(KeyError::WrongKey)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| KeyError::WrongKey)?;
        if bytes.len() < 12 + 16 {
            return Err(KeyError::WrongKey);
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let cipher = Aes256Gcm::new(self.0.expose().into());
        cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map(Secret::new)
            .map_err(|_| KeyError::WrongKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SeqIds;

    #[test]
    fn seals_and_opens_and_refuses_other_keys() {
        let ids = SeqIds::new(7);
        let key = MasterKey::generate(&ids);
        let sealed = key.seal(&ids, b"wJalrXUtnFEMI/K7MDENG");
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("wJalr"));
        assert_eq!(
            key.open(&sealed).unwrap().expose(),
            b"wJalrXUtnFEMI/K7MDENG"
        );
        let other = MasterKey::generate(&ids);
        assert_eq!(other.open(&sealed).unwrap_err(), KeyError::WrongKey);
        assert_eq!(key.open("v1:bm9wZQ==").unwrap_err(), KeyError::WrongKey);
        assert_eq!(format!("{key:?}"), "MasterKey(** redacted **)");
    }

    #[test]
    fn parses_hex_and_base64() {
        let key = MasterKey::parse(&"ab".repeat(32)).unwrap();
        assert_eq!(key.to_hex().expose(), &"ab".repeat(32));
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert!(MasterKey::parse(&format!(" {b64}\n")).is_ok());
        assert_eq!(MasterKey::parse("short").unwrap_err(), KeyError::Malformed);
    }
}

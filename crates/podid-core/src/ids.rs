//! Identifiers and secrets, drawn from an injected source of randomness.

use std::sync::atomic::{AtomicU64, Ordering};

use podid_types::Secret;

/// The characters of IAM unique ids and access key ids (base32, as AWS uses).
const ID_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The characters of secret access keys.
const SECRET_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The source of identifiers and secrets.
pub trait Ids: Send + Sync {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]);

    /// A unique id: `prefix` (such as `AROA`) and 17 base32 characters, 21 in all.
    fn unique_id(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.base32(17))
    }

    /// An access key id: `prefix` (`AKIA`, or `ASIA` for temporary credentials) and 16 base32
    /// characters.
    fn access_key_id(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.base32(16))
    }

    /// A 40-character secret access key.
    fn secret_access_key(&self) -> Secret<String> {
        let mut bytes = [0u8; 40];
        self.fill(&mut bytes);
        Secret::new(
            bytes
                .iter()
                .map(|b| {
                    char::from(
                        SECRET_ALPHABET
                            .get(usize::from(b % 64))
                            .copied()
                            .unwrap_or(b'A'),
                    )
                })
                .collect(),
        )
    }

    /// A request id in AWS's form (a UUID).
    fn request_id(&self) -> String {
        let mut b = [0u8; 16];
        self.fill(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        uuid_text(&b)
    }

    /// `len` random lower-case letters and digits (EKS association ids).
    fn lower_alphanumeric(&self, len: usize) -> String {
        const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut bytes = vec![0u8; len];
        self.fill(&mut bytes);
        bytes
            .iter()
            .map(|b| char::from(ALPHABET.get(usize::from(b % 36)).copied().unwrap_or(b'a')))
            .collect()
    }

    /// `len` random upper-case hex digits (EKS cluster ids in issuer URLs).
    fn upper_hex(&self, len: usize) -> String {
        let mut bytes = vec![0u8; len.div_ceil(2)];
        self.fill(&mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
        hex.get(..len).unwrap_or_default().to_owned()
    }

    /// `len` random base32 characters.
    fn base32(&self, len: usize) -> String {
        let mut bytes = vec![0u8; len];
        self.fill(&mut bytes);
        bytes
            .iter()
            .map(|b| {
                char::from(
                    ID_ALPHABET
                        .get(usize::from(b % 32))
                        .copied()
                        .unwrap_or(b'A'),
                )
            })
            .collect()
    }
}

/// 16 bytes written as a UUID: `8-4-4-4-12` lower-case hex digits.
pub(crate) fn uuid_text(bytes: &[u8; 16]) -> String {
    let mut text = String::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        for nibble in [byte >> 4, byte & 0x0f] {
            text.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
        }
    }
    text
}

/// Randomness from the operating system.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsIds;

impl Ids for OsIds {
    fn fill(&self, buf: &mut [u8]) {
        // Secret keys, the master key and AES-GCM nonces come from here. The OS source fails
        // only on a broken system, and then nothing made up here would be safe: predictable
        // secrets, or nonces repeated after a restart under the same master key. Stop instead.
        if let Err(e) = getrandom::getrandom(buf) {
            tracing::error!(error = %e, "the operating system's random source failed: stopping");
            std::process::abort();
        }
    }
}

/// Deterministic "randomness" for tests: a counter run through a mixing function.
#[derive(Debug, Default)]
pub struct SeqIds(AtomicU64);

impl SeqIds {
    /// A sequence starting at `seed`.
    pub fn new(seed: u64) -> Self {
        Self(AtomicU64::new(seed))
    }
}

impl Ids for SeqIds {
    fn fill(&self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let mut x = self
                .0
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
            x ^= x >> 31;
            for (b, byte) in chunk.iter_mut().zip(x.to_le_bytes()) {
                *b = byte;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let ids = SeqIds::new(1);
        let role = ids.unique_id("AROA");
        assert_eq!(role.len(), 21);
        assert!(role.starts_with("AROA"));
        assert!(
            role.chars()
                .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))
        );
        let key = ids.access_key_id("AKIA");
        assert_eq!(key.len(), 20);
        assert_eq!(ids.secret_access_key().expose().len(), 40);
        let rid = ids.request_id();
        assert_eq!(rid.len(), 36);
        assert_eq!(rid.get(14..15), Some("4"));
        assert_ne!(ids.unique_id("AIDA"), ids.unique_id("AIDA"));
    }

    #[test]
    fn uuids_are_lower_case_hex_in_groups_of_8_4_4_4_12() {
        let bytes: [u8; 16] = [
            0x00, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76,
            0x54, 0x3f,
        ];
        assert_eq!(uuid_text(&bytes), "00012345-6789-abcd-effe-dcba9876543f");
    }
}

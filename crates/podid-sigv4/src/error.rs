//! Why a request's signature is not accepted, with AWS's codes and texts.

use std::fmt;

/// A request that fails authentication.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SigV4Error {
    kind: SigV4ErrorKind,
    message: String,
}

/// The kinds of authentication failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SigV4ErrorKind {
    /// The signature is not what the secret gives, or the request's time is too far from now.
    Mismatch,
    /// No `Authorization` header and no presigned query.
    Missing,
    /// An `Authorization` header or presigned query that lacks a part or has a malformed one.
    Incomplete,
    /// The access key is unknown (decided by the caller, who looks the key up).
    UnknownKey,
    /// An `x-amz-content-sha256` header that is not the SHA-256 of the body received.
    ContentHash,
}

impl SigV4Error {
    pub(crate) fn new(kind: SigV4ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The error for an access key that the caller does not know.
    pub fn unknown_key() -> Self {
        Self::new(
            SigV4ErrorKind::UnknownKey,
            "The security token included in the request is invalid.",
        )
    }

    /// The error for a request signed for another service than the one that received it.
    pub fn wrong_service(expected: &str) -> Self {
        Self::new(
            SigV4ErrorKind::Mismatch,
            format!("Credential should be scoped to correct service: '{expected}'. "),
        )
    }

    /// What kind of failure it is.
    pub fn kind(&self) -> SigV4ErrorKind {
        self.kind
    }

    /// AWS's message, which is also `Display`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// AWS's error code.
    pub fn code(&self) -> &'static str {
        match self.kind {
            SigV4ErrorKind::Mismatch => "SignatureDoesNotMatch",
            SigV4ErrorKind::Missing => "MissingAuthenticationToken",
            SigV4ErrorKind::Incomplete => "IncompleteSignature",
            SigV4ErrorKind::UnknownKey => "InvalidClientTokenId",
            SigV4ErrorKind::ContentHash => "XAmzContentSHA256Mismatch",
        }
    }

    /// The HTTP status AWS answers with.
    pub fn status(&self) -> u16 {
        match self.kind {
            SigV4ErrorKind::Incomplete | SigV4ErrorKind::ContentHash => 400,
            SigV4ErrorKind::Mismatch | SigV4ErrorKind::Missing | SigV4ErrorKind::UnknownKey => 403,
        }
    }
}

impl fmt::Display for SigV4ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Mismatch => "signature mismatch",
            Self::Missing => "missing authentication",
            Self::Incomplete => "incomplete signature",
            Self::UnknownKey => "unknown access key",
            Self::ContentHash => "payload hash mismatch",
        })
    }
}

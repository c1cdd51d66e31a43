//! Errors on the wire: every domain and protocol error mapped to AWS's code, HTTP status and
//! fault type, in one place.

use podid_core::Error;
use podid_sigv4::SigV4Error;

/// An error as the API returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// AWS error code.
    pub code: String,
    /// AWS message.
    pub message: String,
    /// `Sender` (the caller's fault) or `Receiver`.
    pub sender_fault: bool,
    /// podid's own explanation, for the server's log line of the request (never on the wire,
    /// which carries AWS's exact message): for a refused policy document, what is wrong and
    /// where, as `podid policy validate` says it.
    pub reason: Option<String>,
}

impl ApiError {
    /// An error of the caller's making.
    pub fn sender(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            sender_fault: true,
            reason: None,
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        // Exhaustive: a new variant does not compile until it is mapped here.
        let (status, code) = match &e {
            Error::AccessDenied(_) => (403, "AccessDenied"),
            Error::ConcurrentModification(_) => (409, "ConcurrentModification"),
            Error::DeleteConflict(_) => (409, "DeleteConflict"),
            Error::EntityAlreadyExists(_) => (409, "EntityAlreadyExists"),
            Error::ExpiredToken(_) => (403, "ExpiredToken"),
            Error::InvalidClientTokenId(_) => (403, "InvalidClientTokenId"),
            Error::InvalidParameterValue(_) => (400, "InvalidParameterValue"),
            Error::PackedPolicyTooLarge(_) => (400, "PackedPolicyTooLarge"),
            Error::InvalidInput(_) => (400, "InvalidInput"),
            Error::LimitExceeded(_) => (409, "LimitExceeded"),
            Error::MalformedPolicy { code, .. } => {
                (if *code == "LimitExceeded" { 409 } else { 400 }, *code)
            }
            Error::NoSuchEntity(_) => (404, "NoSuchEntity"),
            Error::PolicyNotAttachable(_) => (400, "PolicyNotAttachable"),
            Error::ResourceNotFound(_) => (404, "ResourceNotFoundException"),
            Error::ResourceInUse(_) => (409, "ResourceInUseException"),
            Error::InvalidParameter(_) => (400, "InvalidParameterException"),
            Error::InvalidRequest(_) => (400, "InvalidRequestException"),
            Error::InvalidToken(_) => (400, "InvalidTokenException"),
            Error::ExpiredIdentityToken(_) => (400, "ExpiredTokenException"),
            Error::InvalidIdentityToken(_) => (400, "InvalidIdentityToken"),
            Error::IdpRejectedClaim(_) => (403, "IDPRejectedClaim"),
            Error::IdpCommunicationError(_) => (400, "IDPCommunicationError"),
            Error::ResourceLimitExceeded(_) => (400, "ResourceLimitExceededException"),
            Error::Throttling(_) => (429, "ThrottlingException"),
            Error::ServiceUnavailable(_) => (503, "ServiceUnavailableException"),
            Error::ServiceFailure(_) => (500, "ServiceFailure"),
            Error::Validation(_) => (400, "ValidationError"),
        };
        let reason = match &e {
            Error::MalformedPolicy { detail, .. } => Some(detail.clone()),
            _ => None,
        };
        Self {
            status,
            code: code.to_owned(),
            message: e.to_string(),
            sender_fault: status < 500,
            reason,
        }
    }
}

impl ApiError {
    /// The same error as a rest-json service (EKS, EKS Auth) names it: `AccessDeniedException`
    /// for `AccessDenied`, the JSON protocols' authentication codes, `ServerException`.
    #[must_use]
    pub fn for_rest_json(mut self) -> Self {
        let (status, code) = match self.code.as_str() {
            "AccessDenied" => (403, "AccessDeniedException"),
            "MissingAuthenticationToken" => (403, "MissingAuthenticationTokenException"),
            "IncompleteSignature" => (403, "IncompleteSignatureException"),
            "InvalidClientTokenId" => (403, "UnrecognizedClientException"),
            "SignatureDoesNotMatch" => (403, "InvalidSignatureException"),
            "ExpiredToken" => (403, "ExpiredTokenException"),
            "ServiceFailure" => (500, "ServerException"),
            "NoSuchEntity" => (404, "ResourceNotFoundException"),
            "EntityAlreadyExists" | "DeleteConflict" | "ConcurrentModification" => {
                (409, "ResourceInUseException")
            }
            "LimitExceeded" => (400, "ResourceLimitExceededException"),
            "ValidationError"
            | "InvalidInput"
            | "MalformedPolicyDocument"
            | "InvalidParameterValue"
            | "PackedPolicyTooLarge"
            | "PolicyNotAttachable" => (400, "InvalidParameterException"),
            _ => return self,
        };
        self.status = status;
        code.clone_into(&mut self.code);
        self
    }
}

impl From<SigV4Error> for ApiError {
    fn from(e: SigV4Error) -> Self {
        Self::sender(e.status(), e.code(), e.message())
    }
}

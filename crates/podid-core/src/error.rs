//! The domain's one error, for every service; the server maps each variant to its AWS code and
//! status.

/// Why an operation of IAM, STS, EKS or EKS Auth failed. Each variant is one AWS error code of
/// one or more of those services; messages are AWS's own texts (`docs/iam-api.md`,
/// `docs/sts-api.md`, `docs/eks-api.md`, `docs/eks-auth.md`).
/// Not `#[non_exhaustive]`: the server maps every variant to its AWS code in one exhaustive
/// `match`, which must fail to compile when a variant is added.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `AccessDenied` (403).
    #[error("{0}")]
    AccessDenied(String),
    /// `ConcurrentModification` (409): concurrent updates kept conflicting.
    #[error("{0}")]
    ConcurrentModification(String),
    /// `DeleteConflict` (409).
    #[error("{0}")]
    DeleteConflict(String),
    /// `ExpiredToken` (403): the session of the request's credentials has expired.
    #[error("{0}")]
    ExpiredToken(String),
    /// `EntityAlreadyExists` (409).
    #[error("{0}")]
    EntityAlreadyExists(String),
    /// `InvalidClientTokenId` (403): the request's session token is not valid.
    #[error("{0}")]
    InvalidClientTokenId(String),
    /// `InvalidInput` (400).
    #[error("{0}")]
    InvalidInput(String),
    /// `LimitExceeded` (409).
    #[error("{0}")]
    LimitExceeded(String),
    /// `MalformedPolicyDocument` (400), or the code the policy error carries.
    #[error("{message}")]
    MalformedPolicy {
        /// AWS's code: `MalformedPolicyDocument`, `LimitExceeded` or `ValidationError`.
        code: &'static str,
        /// AWS's message.
        message: String,
        /// podid's own explanation: what is wrong and where.
        detail: String,
    },
    /// `NoSuchEntity` (404).
    #[error("{0}")]
    NoSuchEntity(String),
    /// `InvalidParameterValue` (400), STS's code for bad session tags.
    #[error("{0}")]
    InvalidParameterValue(String),
    /// `PackedPolicyTooLarge` (400): session policies and tags do not fit in a session.
    #[error("{0}")]
    PackedPolicyTooLarge(String),
    /// `PolicyNotAttachable` (400).
    #[error("{0}")]
    PolicyNotAttachable(String),
    /// EKS's `ResourceNotFoundException` (404).
    #[error("{0}")]
    ResourceNotFound(String),
    /// EKS's `ResourceInUseException` (409).
    #[error("{0}")]
    ResourceInUse(String),
    /// EKS's `InvalidParameterException` (400).
    #[error("{0}")]
    InvalidParameter(String),
    /// EKS Auth's `InvalidTokenException` (400): the service-account token is not valid.
    #[error("{0}")]
    InvalidToken(String),
    /// EKS Auth's and STS's `ExpiredTokenException` (400): the service-account or web identity
    /// token has expired.
    #[error("{0}")]
    ExpiredIdentityToken(String),
    /// STS's `InvalidIdentityToken` (400): the web identity token is not valid, or no OIDC
    /// provider of the role's account vouches for it.
    #[error("{0}")]
    InvalidIdentityToken(String),
    /// STS's `IDPRejectedClaim` (403): the identity provider rejected the token's claims.
    #[error("{0}")]
    IdpRejectedClaim(String),
    /// STS's `IDPCommunicationError` (400): the identity provider's key set could not be fetched.
    #[error("{0}")]
    IdpCommunicationError(String),
    /// EKS's `InvalidRequestException` (400).
    #[error("{0}")]
    InvalidRequest(String),
    /// EKS's `ResourceLimitExceededException` (400).
    #[error("{0}")]
    ResourceLimitExceeded(String),
    /// EKS Auth's `ThrottlingException` (429): an upstream STS throttled the request.
    #[error("{0}")]
    Throttling(String),
    /// EKS Auth's `ServiceUnavailableException` (503): an upstream STS could not be reached.
    #[error("{0}")]
    ServiceUnavailable(String),
    /// `ServiceFailure` (500): the store failed.
    #[error("{0}")]
    ServiceFailure(String),
    /// `ValidationError` (400).
    #[error("{0}")]
    Validation(String),
}

impl Error {
    pub(crate) fn policy(errors: &podid_policy::PolicyErrors) -> Self {
        let first = errors.first();
        Self::MalformedPolicy {
            code: first.aws_code(),
            message: first.aws_message(),
            detail: first.to_string(),
        }
    }
}

impl From<podid_store::StoreError> for Error {
    fn from(e: podid_store::StoreError) -> Self {
        tracing::error!(error = %e, "storage failed");
        Self::ServiceFailure(
            "The request processing has failed because of an unknown error, exception or failure."
                .into(),
        )
    }
}

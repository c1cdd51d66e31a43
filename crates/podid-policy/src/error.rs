//! Why a policy document is not accepted: what is wrong, where, and what AWS says about it.

use std::fmt;

use crate::PolicyKind;
use crate::json::{JsonErrorKind, Position};

/// A problem with a policy document.
///
/// `Display` gives podid's own message: what is wrong and where (JSON path, statement, line and
/// column). [`PolicyError::aws_message`] and [`PolicyError::aws_code`] give what AWS returns for
/// the same document, which is often less specific (`Syntax errors in policy.`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    pub(crate) kind: ErrorKind,
    pub(crate) policy_kind: PolicyKind,
    pub(crate) path: String,
    pub(crate) position: Option<Position>,
    pub(crate) statement: Option<(usize, Option<String>)>,
}

/// What is wrong with a policy document.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An action with more than one colon.
    ActionColons(String),
    /// An action without a `vendor:` prefix.
    ActionWithoutVendor(String),
    /// Two elements that exclude each other, such as `Action` and `NotAction`.
    ConflictingFields(&'static str, &'static str),
    /// The same non-empty `Sid` twice.
    DuplicateSid(String),
    /// `Effect` written with the wrong case, such as `allow`.
    EffectCase(String),
    /// A statement with an empty `Statement` list.
    EmptyStatement,
    /// A resource ARN whose service is IAM and that has a region.
    IamRegion(String),
    /// An IAM resource whose resource part is not one IAM has.
    IamResourcePath(String),
    /// A character that IAM does not allow in policy documents.
    InvalidCharacter(char),
    /// A date condition value that is not a date.
    InvalidDate(String),
    /// An `Effect` that is neither `Allow` nor `Deny`.
    InvalidEffect(String),
    /// A partition that does not exist.
    InvalidPartition {
        /// The partition as written.
        partition: String,
        /// The resource, as AWS prints it in its message.
        rendered: String,
    },
    /// A principal that is not well-formed.
    InvalidPrincipal {
        /// The principal type, in upper case (`AWS`, `SERVICE`, `FEDERATED`, `CANONICALUSER`).
        key: String,
        /// The principal as written.
        value: String,
    },
    /// A `Sid` in an IAM policy that is not alphanumeric.
    InvalidSid(String),
    /// Text that is not JSON.
    Json(JsonErrorKind),
    /// An action vendor with characters that vendors do not have.
    InvalidVendor(String),
    /// An ARN that AWS's legacy parser rejects, such as `arn:aws:s3::bucket`.
    LegacyArn(String),
    /// A statement without `Action` or `NotAction`.
    MissingAction,
    /// A statement without `Effect`.
    MissingEffect,
    /// A resource-based statement without `Principal` or `NotPrincipal`.
    MissingPrincipal,
    /// An identity statement without `Resource` or `NotResource`.
    MissingResource,
    /// A document without `Statement`.
    MissingStatement,
    /// A role trust policy with an action that is not an STS AssumeRole action.
    NotAssumeRoleAction(String),
    /// A document that is not a JSON object.
    NotAnObject,
    /// An identity policy without `Version: 2012-10-17`.
    OldVersion,
    /// A trust policy with `NotPrincipal`.
    ProhibitedNotPrincipal,
    /// A policy kind that cannot name principals, naming one.
    ProhibitedPrincipal,
    /// A trust policy with `Resource` or `NotResource`.
    ProhibitedResource(&'static str),
    /// A resource that is neither `*` nor an ARN.
    ResourceNotArn(String),
    /// A resource whose service is missing or has wildcards.
    ResourceVendor(String),
    /// An S3 resource ARN with a region.
    S3Region(String),
    /// A single-object `Statement` written before `Version`, which IAM's legacy parser rejects.
    StatementBeforeVersion,
    /// A document larger than its kind allows.
    TooLarge {
        /// The size, in characters other than whitespace.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A field that policies do not have.
    UnknownField(String),
    /// A condition operator that does not exist.
    UnknownOperator {
        /// The operator as written.
        operator: String,
        /// The operator that was probably meant.
        suggestion: Option<&'static str>,
    },
    /// A principal type other than `AWS`, `Service`, `Federated` and `CanonicalUser`.
    UnknownPrincipalType(String),
    /// A `Version` other than `2012-10-17` and `2008-10-17`.
    UnknownVersion(String),
    /// A value of the wrong JSON type.
    WrongType {
        /// What was expected, in words.
        expected: &'static str,
        /// What was found, in words.
        found: &'static str,
    },
}

impl PolicyError {
    /// What is wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The JSON path of the offending value, such as `$.Statement[1].Resource[0]`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The line and column of the offending value, when known.
    pub fn position(&self) -> Option<Position> {
        self.position
    }

    /// The statement's index and `Sid`, when the problem is inside a statement.
    pub fn statement(&self) -> Option<(usize, Option<&str>)> {
        self.statement.as_ref().map(|(i, sid)| (*i, sid.as_deref()))
    }

    /// The AWS error code for this problem: `MalformedPolicyDocument`, `LimitExceeded` (size
    /// quotas) or `ValidationError` (characters outside the API's pattern).
    pub fn aws_code(&self) -> &'static str {
        match (&self.kind, self.policy_kind) {
            (ErrorKind::InvalidCharacter(_), _) => "ValidationError",
            (ErrorKind::TooLarge { .. }, PolicyKind::Session) => "ValidationError",
            (ErrorKind::TooLarge { .. }, _) => "LimitExceeded",
            _ => "MalformedPolicyDocument",
        }
    }

    /// The message AWS returns for this problem, byte for byte where it is known (sources:
    /// `docs/policy-errors.md`).
    pub fn aws_message(&self) -> String {
        let trust = self.policy_kind == PolicyKind::Trust;
        match (self.stage(), &self.kind) {
            (_, ErrorKind::UnknownField(field)) if trust => format!("Unknown field {field}"),
            (Stage::Syntax, _) => SYNTAX.into(),
            (Stage::Legacy, _) => "The policy failed legacy parsing".into(),
            (_, kind) => specific_message(kind, self.policy_kind),
        }
    }

    /// The order in which AWS reports problems: the lowest stage wins, then document order.
    pub(crate) fn stage(&self) -> Stage {
        match self.kind {
            ErrorKind::InvalidCharacter(_) => Stage::Characters,
            ErrorKind::Json(_) => Stage::Json,
            ErrorKind::NotAnObject
            | ErrorKind::UnknownField(_)
            | ErrorKind::WrongType { .. }
            | ErrorKind::UnknownVersion(_)
            | ErrorKind::MissingStatement
            | ErrorKind::EmptyStatement
            | ErrorKind::MissingEffect
            | ErrorKind::InvalidEffect(_)
            | ErrorKind::ConflictingFields(..)
            | ErrorKind::UnknownOperator { .. }
            | ErrorKind::UnknownPrincipalType(_) => Stage::Syntax,
            ErrorKind::OldVersion => Stage::Version,
            ErrorKind::EffectCase(_)
            | ErrorKind::StatementBeforeVersion
            | ErrorKind::InvalidDate(_)
            | ErrorKind::LegacyArn(_) => Stage::Legacy,
            ErrorKind::DuplicateSid(_) | ErrorKind::InvalidSid(_) => Stage::Sid,
            ErrorKind::ProhibitedPrincipal
            | ErrorKind::ProhibitedResource(_)
            | ErrorKind::ProhibitedNotPrincipal
            | ErrorKind::MissingPrincipal => Stage::Elements,
            ErrorKind::MissingAction => Stage::Actions,
            ErrorKind::MissingResource => Stage::Resources,
            ErrorKind::ResourceNotArn(_)
            | ErrorKind::InvalidPartition { .. }
            | ErrorKind::ResourceVendor(_)
            | ErrorKind::IamRegion(_)
            | ErrorKind::S3Region(_)
            | ErrorKind::IamResourcePath(_) => Stage::ResourceFormat,
            ErrorKind::ActionWithoutVendor(_)
            | ErrorKind::ActionColons(_)
            | ErrorKind::InvalidVendor(_)
            | ErrorKind::NotAssumeRoleAction(_) => Stage::ActionFormat,
            ErrorKind::InvalidPrincipal { .. } => Stage::Principals,
            ErrorKind::TooLarge { .. } => Stage::Size,
        }
    }
}

const SYNTAX: &str = "Syntax errors in policy.";

/// The stages of AWS's validation, in the order it was observed to report problems
/// (`docs/policy-errors.md`); problems of the syntax and legacy stages share one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stage {
    Characters,
    Json,
    Syntax,
    Version,
    Legacy,
    Sid,
    Elements,
    Actions,
    Resources,
    ResourceFormat,
    ActionFormat,
    Principals,
    Size,
}

/// AWS's message for the problems with a message of their own.
fn specific_message(kind: &ErrorKind, policy_kind: PolicyKind) -> String {
    match kind {
        ErrorKind::Json(_) => match policy_kind {
            PolicyKind::Trust => "This policy contains invalid Json".into(),
            PolicyKind::Session => "The policy is not in the valid JSON format.".into(),
            _ => SYNTAX.into(),
        },
        ErrorKind::OldVersion => "Policy document must be version 2012-10-17 or greater.".into(),
        ErrorKind::DuplicateSid(_) => "Statement IDs (SID) in a single policy must be unique.".into(),
        ErrorKind::InvalidSid(_) => "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular expression [0-9A-Za-z]*".into(),
        ErrorKind::MissingAction => "Policy statement must contain actions.".into(),
        ErrorKind::MissingResource => "Policy statement must contain resources.".into(),
        ErrorKind::MissingPrincipal if policy_kind == PolicyKind::Trust => {
            "The passed in policy has a statement with no principals!".into()
        }
        ErrorKind::MissingPrincipal => "Missing required field Principal".into(),
        ErrorKind::ProhibitedPrincipal => "Policy document should not specify a principal.".into(),
        ErrorKind::ProhibitedResource(field) => format!("Has prohibited field {field}"),
        ErrorKind::ProhibitedNotPrincipal => "AssumeRole policy must not contain NotPrincipal field.".into(),
        ErrorKind::NotAssumeRoleAction(_) => "AssumeRole policy may only specify STS AssumeRole actions.".into(),
        ErrorKind::ActionWithoutVendor(_) => {
            "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.".into()
        }
        ErrorKind::ActionColons(_) => "Actions/Condition can contain only one colon.".into(),
        ErrorKind::InvalidVendor(vendor) => format!("Vendor {vendor} is not valid"),
        ErrorKind::ResourceNotArn(resource) => format!("Resource {resource} must be in ARN format or \"*\"."),
        ErrorKind::InvalidPartition { partition, rendered } => {
            format!("Partition \"{partition}\" is not valid for resource \"{rendered}\".")
        }
        ErrorKind::ResourceVendor(_) => "Resource vendor must be fully qualified and cannot contain regexes.".into(),
        ErrorKind::IamRegion(resource) => format!("IAM resource {resource} cannot contain region information."),
        ErrorKind::S3Region(resource) => format!("Resource {resource} can not contain region information."),
        ErrorKind::IamResourcePath(_) => "IAM resource path must either be \"*\", root, or start with user/, federated-user/, role/, group/, instance-profile/, mfa/, server-certificate/, policy/, sms-mfa/, saml-provider/, oidc-provider/, report/, access-report/.".into(),
        ErrorKind::InvalidPrincipal { key, value } => {
            format!("Invalid principal in policy: \"{key}\":\"{value}\"")
        }
        ErrorKind::InvalidCharacter(_) => "1 validation error detected: Value at 'policyDocument' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\u0009\\u000A\\u000D\\u0020-\\u00FF]+".into(),
        ErrorKind::TooLarge { limit, .. } => match policy_kind {
            PolicyKind::Trust => format!("Cannot exceed quota for ACLSizePerRole: {limit}"),
            PolicyKind::Session => format!(
                "1 validation error detected: Value at 'policy' failed to satisfy constraint: Member must have length less than or equal to {limit}"
            ),
            PolicyKind::Resource => format!("Policies must be smaller than {limit} characters"),
            PolicyKind::Identity | PolicyKind::Boundary => format!("Cannot exceed quota for PolicySize: {limit}"),
        },
        // The syntax and legacy stages have their messages in `aws_message`; anything else
        // unclassified gets AWS's generic answer.
        _ => SYNTAX.into(),
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((index, sid)) = &self.statement {
            match sid {
                Some(sid) if !sid.is_empty() => write!(f, "statement {index} (`{sid}`): ")?,
                _ => write!(f, "statement {index}: ")?,
            }
        }
        f.write_str(&self.kind.to_string())?;
        write!(f, " (at `{}`", self.path)?;
        if let Some(position) = self.position {
            write!(f, ", {position}")?;
        }
        f.write_str(")")
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ActionColons(a) => write!(f, "action `{a}` has more than one colon: write `service:ActionName`"),
            Self::ActionWithoutVendor(a) => write!(f, "action `{a}` has no service prefix: write `service:ActionName`, such as `s3:GetObject`, or `*`"),
            Self::ConflictingFields(a, b) => write!(f, "a statement has either `{a}` or `{b}`, not both"),
            Self::DuplicateSid(sid) => write!(f, "`Sid` `{sid}` is used by an earlier statement: statement ids must be unique"),
            Self::EffectCase(e) => write!(f, "`Effect` is `{e}`: write `Allow` or `Deny`, with that case"),
            Self::EmptyStatement => f.write_str("`Statement` is empty: a policy needs at least one statement"),
            Self::IamRegion(r) => write!(f, "IAM resource `{r}` has a region: IAM ARNs have an empty region field, as in `arn:aws:iam::111122223333:role/name`"),
            Self::IamResourcePath(r) => write!(f, "IAM resource `{r}` names no kind of IAM resource: its resource part must be `*`, `root`, or start with `user/`, `role/`, `group/`, `policy/`, `instance-profile/`, `oidc-provider/`, `saml-provider/`, `federated-user/`, `mfa/`, `server-certificate/`, `sms-mfa/`, `report/` or `access-report/`"),
            Self::InvalidCharacter(c) => write!(f, "character `{}` (U+{:04X}) is not allowed: policy documents may contain tab, newline, carriage return and U+0020 to U+00FF only", c.escape_debug(), u32::from(*c)),
            Self::InvalidDate(d) => write!(f, "`{d}` is not a date: write an ISO 8601 date such as `2024-05-01T12:00:00Z`, or epoch seconds"),
            Self::InvalidEffect(e) => write!(f, "`Effect` is `{e}`: it must be `Allow` or `Deny`"),
            Self::InvalidPartition { partition, .. } => write!(f, "partition `{partition}` does not exist: use `aws`, `aws-cn`, `aws-us-gov` or another AWS partition"),
            Self::InvalidPrincipal { key, value } => write!(f, "`{value}` is not a valid {} principal", principal_type_words(key)),
            Self::InvalidSid(sid) => write!(f, "`Sid` `{sid}` has characters other than letters and digits, which IAM policies do not allow"),
            Self::Json(kind) => write!(f, "the document is not valid JSON: {}", json_words(kind)),
            Self::InvalidVendor(v) => write!(f, "action service prefix `{v}` is not valid: it may contain letters, digits, `-` and `.` only"),
            Self::LegacyArn(r) => write!(f, "`{r}` is not a well-formed ARN: write `arn:partition:service:region:account:resource`, with five colons"),
            Self::MissingAction => f.write_str("the statement has no `Action` or `NotAction`, or an empty one"),
            Self::MissingEffect => f.write_str("the statement has no `Effect`: add `\"Effect\": \"Allow\"` or `\"Effect\": \"Deny\"`"),
            Self::MissingPrincipal => f.write_str("the statement has no `Principal`, or an empty one: this kind of policy must say whom it applies to"),
            Self::MissingResource => f.write_str("the statement has no `Resource` or `NotResource`, or an empty one: add `\"Resource\": \"*\"` or the ARNs it applies to"),
            Self::MissingStatement => f.write_str("the document has no `Statement`"),
            Self::NotAssumeRoleAction(a) => write!(f, "a role trust policy can only allow STS actions that assume roles (`sts:AssumeRole`, `sts:AssumeRoleWithWebIdentity`, `sts:AssumeRoleWithSAML`, `sts:TagSession`, `sts:SetSourceIdentity`, `sts:SetContext`); `{a}` is not one"),
            Self::NotAnObject => f.write_str("the document must be a JSON object with `Version` and `Statement`"),
            Self::OldVersion => f.write_str("identity policies must have `\"Version\": \"2012-10-17\"`"),
            Self::ProhibitedNotPrincipal => f.write_str("a role trust policy cannot have `NotPrincipal`: name the principals that may assume the role in `Principal`"),
            Self::ProhibitedPrincipal => f.write_str("this kind of policy is attached to its principal and cannot name one: remove `Principal`/`NotPrincipal`"),
            Self::ProhibitedResource(field) => write!(f, "a role trust policy cannot have `{field}`: its resource is the role itself"),
            Self::ResourceNotArn(r) => write!(f, "resource `{r}` is neither `*` nor an ARN (`arn:partition:service:region:account:resource`)"),
            Self::ResourceVendor(r) => write!(f, "resource `{r}` must name its service without wildcards, as in `arn:aws:s3:::bucket/*`"),
            Self::S3Region(r) => write!(f, "S3 resource `{r}` has a region: bucket and object ARNs have empty region and account fields, as in `arn:aws:s3:::bucket/key`"),
            Self::StatementBeforeVersion => f.write_str("a single-object `Statement` written before `Version` is rejected by IAM's legacy parser: put `Version` first, or make `Statement` an array"),
            Self::TooLarge { size, limit } => write!(f, "the policy has {size} characters (whitespace not counted), more than this kind of policy allows ({limit})"),
            Self::UnknownField(field) => write!(f, "unknown field `{field}`"),
            Self::UnknownOperator { operator, suggestion } => {
                write!(f, "unknown condition operator `{operator}`")?;
                if let Some(s) = suggestion {
                    write!(f, ": did you mean `{s}`?")?;
                }
                Ok(())
            }
            Self::UnknownPrincipalType(t) => write!(f, "unknown principal type `{t}`: use `AWS`, `Service`, `Federated` or `CanonicalUser`"),
            Self::UnknownVersion(v) => write!(f, "`Version` is `{v}`: it must be `2012-10-17` (or the legacy `2008-10-17`)"),
            Self::WrongType { expected, found } => write!(f, "expected {expected}, found {found}"),
        }
    }
}

fn principal_type_words(key: &str) -> &'static str {
    match key {
        "AWS" => {
            "`AWS` (an account id, an IAM user, role, role session or federated-user ARN, a unique id, or `*`)"
        }
        "SERVICE" => "`Service` (a service principal such as `pods.eks.amazonaws.com`)",
        "FEDERATED" => {
            "`Federated` (an OIDC or SAML provider ARN, or a built-in provider such as `accounts.google.com`)"
        }
        _ => "`CanonicalUser` (a 64-character hexadecimal id)",
    }
}

fn json_words(kind: &JsonErrorKind) -> String {
    let e = crate::json::JsonError {
        kind: kind.clone(),
        offset: 0,
        position: Position { line: 1, column: 1 },
    };
    // The JSON error's own text ends with its position, which the policy error prints itself.
    let text = e.to_string();
    text.strip_suffix(" at line 1, column 1")
        .unwrap_or(&text)
        .to_owned()
}

/// Every problem found in a document, in the order AWS would report them; never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyErrors {
    errors: Vec<PolicyError>,
}

impl PolicyErrors {
    pub(crate) fn new(mut errors: Vec<PolicyError>) -> Option<Self> {
        // A stable sort keeps document order within a stage.
        errors.sort_by_key(PolicyError::stage);
        (!errors.is_empty()).then_some(Self { errors })
    }

    pub(crate) fn one(error: PolicyError) -> Self {
        Self {
            errors: vec![error],
        }
    }

    /// The problem AWS would report.
    pub fn first(&self) -> &PolicyError {
        // `new` never builds an empty list.
        #[expect(clippy::indexing_slicing, reason = "the list is never empty")]
        &self.errors[0]
    }

    /// All the problems found.
    pub fn iter(&self) -> impl Iterator<Item = &PolicyError> {
        self.errors.iter()
    }

    /// How many problems were found.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Always false: there is at least one problem.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.first().fmt(f)?;
        if self.errors.len() > 1 {
            write!(f, " (and {} more)", self.errors.len() - 1)?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}
impl std::error::Error for PolicyError {}

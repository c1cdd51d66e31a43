//! The question put to the engine: who ([`Principal`]) wants to do what ([`Request`]) to which
//! resource, with which request context ([`Context`]).

use std::fmt;

use podid_types::{AccountId, Arn};

/// The caller of a request.
///
/// Construct it from what the caller authenticated as; the engine derives the request-context
/// keys that AWS derives from the caller (`aws:PrincipalArn`, `aws:PrincipalAccount`,
/// `aws:PrincipalType`, `aws:userid`, `aws:username`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    caller: Caller,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Caller {
    Anonymous,
    Root {
        account: AccountId,
        arn: String,
    },
    User {
        arn: String,
        account: AccountId,
        name: String,
        user_id: String,
    },
    AssumedRole {
        arn: String,
        account: AccountId,
        role_arn: String,
        role_id: String,
        user_id: String,
    },
    FederatedUser {
        arn: String,
        account: AccountId,
        user_id: String,
    },
    Service {
        name: String,
    },
    WebIdentity {
        provider: String,
    },
}

/// The kind of a caller, as `aws:PrincipalType` names it where AWS documents a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrincipalType {
    /// An account's root user.
    Account,
    /// A request with no credentials.
    Anonymous,
    /// A role session.
    AssumedRole,
    /// A federated-user session (GetFederationToken).
    FederatedUser,
    /// An AWS service acting as itself, such as `pods.eks.amazonaws.com` assuming a role.
    Service,
    /// An IAM user.
    User,
    /// A web-identity (OIDC) or SAML caller asking to assume a role.
    WebIdentity,
}

impl Principal {
    /// An anonymous caller.
    pub fn anonymous() -> Self {
        Self {
            caller: Caller::Anonymous,
        }
    }

    /// The root user of `account`.
    pub fn root(account: AccountId) -> Self {
        Self {
            caller: Caller::Root {
                arn: format!("arn:aws:iam::{account}:root"),
                account,
            },
        }
    }

    /// An IAM user, from its ARN (`arn:aws:iam::ACCOUNT:user/PATH/NAME`) and unique id (`AIDA...`;
    /// empty when unknown, which leaves `aws:userid` absent).
    pub fn user(arn: &str, user_id: &str) -> Result<Self, InvalidCaller> {
        let parsed = iam_arn(arn, "iam")?;
        let name = parsed
            .resource()
            .strip_prefix("user/")
            .and_then(|rest| rest.rsplit('/').next())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                InvalidCaller::new(arn, "a user ARN is `arn:aws:iam::ACCOUNT:user/NAME`")
            })?;
        Ok(Self {
            caller: Caller::User {
                arn: arn.to_owned(),
                account: account_of(&parsed, arn)?,
                name: name.to_owned(),
                user_id: user_id.to_owned(),
            },
        })
    }

    /// A role session, from its assumed-role ARN (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`),
    /// the role's ARN (with its path) and the role's unique id (`AROA...`; empty when unknown,
    /// which leaves `aws:userid` absent).
    pub fn assumed_role(
        session_arn: &str,
        role_arn: &str,
        role_id: &str,
    ) -> Result<Self, InvalidCaller> {
        let parsed = iam_arn(session_arn, "sts")?;
        let session = parsed
            .resource()
            .strip_prefix("assumed-role/")
            .and_then(|rest| rest.split_once('/'))
            .map(|(_, session)| session)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                InvalidCaller::new(
                    session_arn,
                    "a role session ARN is `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`",
                )
            })?;
        let role = iam_arn(role_arn, "iam")?;
        if !role.resource().starts_with("role/") {
            return Err(InvalidCaller::new(
                role_arn,
                "a role ARN is `arn:aws:iam::ACCOUNT:role/NAME`",
            ));
        }
        Ok(Self {
            caller: Caller::AssumedRole {
                arn: session_arn.to_owned(),
                account: account_of(&parsed, session_arn)?,
                role_arn: role_arn.to_owned(),
                role_id: role_id.to_owned(),
                // Without the role's unique id, `aws:userid` is unknown rather than `:SESSION`.
                user_id: if role_id.is_empty() {
                    String::new()
                } else {
                    format!("{role_id}:{session}")
                },
            },
        })
    }

    /// A federated-user session (`arn:aws:sts::ACCOUNT:federated-user/NAME`).
    pub fn federated_user(arn: &str) -> Result<Self, InvalidCaller> {
        let parsed = iam_arn(arn, "sts")?;
        let name = parsed
            .resource()
            .strip_prefix("federated-user/")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                InvalidCaller::new(
                    arn,
                    "a federated user ARN is `arn:aws:sts::ACCOUNT:federated-user/NAME`",
                )
            })?;
        let account = account_of(&parsed, arn)?;
        Ok(Self {
            caller: Caller::FederatedUser {
                arn: arn.to_owned(),
                user_id: format!("{account}:{name}"),
                account,
            },
        })
    }

    /// An AWS service principal such as `pods.eks.amazonaws.com`.
    pub fn service(name: &str) -> Self {
        Self {
            caller: Caller::Service {
                name: name.to_owned(),
            },
        }
    }

    /// A web-identity caller, named by its identity provider: an IAM OIDC provider ARN such as
    /// `arn:aws:iam::ACCOUNT:oidc-provider/oidc.eks.REGION.amazonaws.com/id/ID`, or a built-in
    /// provider such as `accounts.google.com`.
    pub fn web_identity(provider: &str) -> Self {
        Self {
            caller: Caller::WebIdentity {
                provider: provider.to_owned(),
            },
        }
    }

    /// The caller's kind.
    pub fn principal_type(&self) -> PrincipalType {
        match &self.caller {
            Caller::Anonymous => PrincipalType::Anonymous,
            Caller::Root { .. } => PrincipalType::Account,
            Caller::User { .. } => PrincipalType::User,
            Caller::AssumedRole { .. } => PrincipalType::AssumedRole,
            Caller::FederatedUser { .. } => PrincipalType::FederatedUser,
            Caller::Service { .. } => PrincipalType::Service,
            Caller::WebIdentity { .. } => PrincipalType::WebIdentity,
        }
    }

    /// The caller's account, if it has one.
    pub fn account(&self) -> Option<AccountId> {
        match &self.caller {
            Caller::Root { account, .. }
            | Caller::User { account, .. }
            | Caller::AssumedRole { account, .. }
            | Caller::FederatedUser { account, .. } => Some(*account),
            Caller::Anonymous | Caller::Service { .. } | Caller::WebIdentity { .. } => None,
        }
    }

    /// The name AccessDenied messages give the caller: the user, root or assumed-role ARN, the
    /// service principal, or the identity provider.
    pub fn display_arn(&self) -> &str {
        match &self.caller {
            Caller::Anonymous => "anonymous",
            Caller::Root { arn, .. }
            | Caller::User { arn, .. }
            | Caller::AssumedRole { arn, .. }
            | Caller::FederatedUser { arn, .. } => arn,
            Caller::Service { name } => name,
            Caller::WebIdentity { provider } => provider,
        }
    }

    /// `aws:PrincipalArn`: the user, role (not session) or federated-user ARN, or the root ARN.
    pub fn principal_arn(&self) -> Option<&str> {
        match &self.caller {
            Caller::Root { arn, .. }
            | Caller::User { arn, .. }
            | Caller::FederatedUser { arn, .. } => Some(arn),
            Caller::AssumedRole { role_arn, .. } => Some(role_arn),
            Caller::Anonymous | Caller::Service { .. } | Caller::WebIdentity { .. } => None,
        }
    }

    /// `aws:userid`: `AIDA...` for a user, `AROA...:SESSION` for a role session,
    /// `ACCOUNT:NAME` for a federated user, the account id for root, `anonymous` for anonymous.
    pub fn user_id(&self) -> Option<&str> {
        match &self.caller {
            Caller::Anonymous => Some("anonymous"),
            Caller::Root { account, .. } => Some(account.as_str()),
            Caller::User { user_id, .. } | Caller::AssumedRole { user_id, .. } => {
                Some(user_id.as_str()).filter(|id| !id.is_empty())
            }
            Caller::FederatedUser { user_id, .. } => Some(user_id),
            Caller::Service { .. } | Caller::WebIdentity { .. } => None,
        }
    }

    /// `aws:username`: present for IAM users only.
    pub fn username(&self) -> Option<&str> {
        match &self.caller {
            Caller::User { name, .. } => Some(name),
            _ => None,
        }
    }

    pub(crate) fn user_arn(&self) -> Option<&str> {
        match &self.caller {
            Caller::User { arn, .. } => Some(arn),
            _ => None,
        }
    }

    pub(crate) fn session_arn(&self) -> Option<&str> {
        match &self.caller {
            Caller::AssumedRole { arn, .. } | Caller::FederatedUser { arn, .. } => Some(arn),
            _ => None,
        }
    }

    pub(crate) fn role(&self) -> Option<(&str, &str)> {
        match &self.caller {
            Caller::AssumedRole {
                role_arn, role_id, ..
            } => Some((role_arn, role_id)),
            _ => None,
        }
    }

    pub(crate) fn unique_user_id(&self) -> Option<&str> {
        match &self.caller {
            Caller::User { user_id, .. } => Some(user_id),
            _ => None,
        }
    }

    pub(crate) fn service_name(&self) -> Option<&str> {
        match &self.caller {
            Caller::Service { name } => Some(name),
            _ => None,
        }
    }

    pub(crate) fn provider(&self) -> Option<&str> {
        match &self.caller {
            Caller::WebIdentity { provider } => Some(provider),
            _ => None,
        }
    }

    /// Whether this caller is an IAM identity of some account (not anonymous, a service or a web
    /// identity), so that identity policies, boundaries and session policies apply to it.
    pub(crate) fn has_identity_policies(&self) -> bool {
        matches!(
            self.caller,
            Caller::Root { .. }
                | Caller::User { .. }
                | Caller::AssumedRole { .. }
                | Caller::FederatedUser { .. }
        )
    }

    /// The value of a key that AWS derives from the caller (`key` in lower case).
    fn derived(&self, key: &str) -> Option<&str> {
        match key {
            "aws:principalarn" => self.principal_arn(),
            "aws:principalaccount" => match &self.caller {
                Caller::Anonymous => Some("anonymous"),
                Caller::Root { account, .. }
                | Caller::User { account, .. }
                | Caller::AssumedRole { account, .. }
                | Caller::FederatedUser { account, .. } => Some(account.as_str()),
                Caller::Service { .. } | Caller::WebIdentity { .. } => None,
            },
            "aws:principaltype" => match self.principal_type() {
                PrincipalType::Account => Some("Account"),
                PrincipalType::Anonymous => Some("Anonymous"),
                PrincipalType::AssumedRole => Some("AssumedRole"),
                PrincipalType::FederatedUser => Some("FederatedUser"),
                PrincipalType::User => Some("User"),
                PrincipalType::Service | PrincipalType::WebIdentity => None,
            },
            "aws:userid" => self.user_id(),
            "aws:username" => self.username(),
            "aws:principalisawsservice" => match &self.caller {
                Caller::Anonymous | Caller::WebIdentity { .. } => None,
                Caller::Service { .. } => Some("true"),
                _ => Some("false"),
            },
            "aws:principalservicename" => self.service_name(),
            "aws:federatedprovider" => self.provider(),
            _ => None,
        }
    }
}

fn iam_arn(arn: &str, service: &str) -> Result<Arn, InvalidCaller> {
    let parsed: Arn = arn
        .parse()
        .map_err(|_| InvalidCaller::new(arn, "it is not an ARN"))?;
    if parsed.service() != service {
        return Err(InvalidCaller::new(arn, "the ARN names the wrong service"));
    }
    Ok(parsed)
}

fn account_of(arn: &Arn, text: &str) -> Result<AccountId, InvalidCaller> {
    arn.account()
        .parse()
        .map_err(|_| InvalidCaller::new(text, "the account field is not a 12-digit account id"))
}

/// A caller that cannot be built from what was given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` cannot name a caller: {why}")]
pub struct InvalidCaller {
    text: String,
    why: &'static str,
}

impl InvalidCaller {
    fn new(text: &str, why: &'static str) -> Self {
        Self {
            text: text.to_owned(),
            why,
        }
    }
}

/// A request-context value: one string, or a list for multivalued keys such as `aws:TagKeys`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContextValue {
    /// A single value.
    One(String),
    /// Several values.
    Many(Vec<String>),
}

impl From<&str> for ContextValue {
    fn from(value: &str) -> Self {
        Self::One(value.to_owned())
    }
}

impl From<String> for ContextValue {
    fn from(value: String) -> Self {
        Self::One(value)
    }
}

impl From<Vec<String>> for ContextValue {
    fn from(values: Vec<String>) -> Self {
        Self::Many(values)
    }
}

impl From<&[&str]> for ContextValue {
    fn from(values: &[&str]) -> Self {
        Self::Many(values.iter().map(|v| (*v).to_owned()).collect())
    }
}

/// The request context: condition keys and their values. Key names are case-insensitive, as in
/// AWS (`aws:SourceIp` ≡ `AWS:SOURCEIP`, tag-key part included); values are kept as given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    // Sorted by key, keys in lower case and unique.
    entries: Vec<(Box<str>, ContextValue)>,
}

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`, replacing any value the key had (in any case).
    pub fn insert(&mut self, key: &str, value: impl Into<ContextValue>) {
        let key: Box<str> = key.to_lowercase().into();
        let value = value.into();
        match self.entries.binary_search_by(|(k, _)| (**k).cmp(&*key)) {
            Ok(i) => {
                if let Some(slot) = self.entries.get_mut(i) {
                    slot.1 = value;
                }
            }
            Err(i) => self.entries.insert(i, (key, value)),
        }
    }

    /// Builds a context from many keys at once (the last value of a key given twice wins), in
    /// O(n log n).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, ContextValue)>) -> Self {
        let mut entries: Vec<(Box<str>, ContextValue)> = pairs
            .into_iter()
            .map(|(k, v)| (k.to_lowercase().into_boxed_str(), v))
            .collect();
        // A stable sort keeps the order of equal keys, so the last one given is last.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut unique: Vec<(Box<str>, ContextValue)> = Vec::with_capacity(entries.len());
        for entry in entries {
            match unique.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => unique.push(entry),
            }
        }
        Self { entries: unique }
    }

    /// Sets `key` and returns the context, for building one in an expression.
    #[must_use]
    pub fn with(mut self, key: &str, value: impl Into<ContextValue>) -> Self {
        self.insert(key, value);
        self
    }

    /// The value of `key` (any case).
    pub fn get(&self, key: &str) -> Option<&ContextValue> {
        let key = key.to_lowercase();
        self.lookup(&key)
    }

    /// The keys and values, keys in lower case.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ContextValue)> {
        self.entries.iter().map(|(k, v)| (&**k, v))
    }

    /// The value of `key`, which must already be in lower case.
    pub(crate) fn lookup(&self, key: &str) -> Option<&ContextValue> {
        self.entries
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .and_then(|i| self.entries.get(i))
            .map(|(_, v)| v)
    }
}

/// Whether the resource belongs to the caller's account; cross-account requests need both a
/// resource-based grant and the caller's own permissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// The resource is in another account.
    CrossAccount,
    /// The resource is in the caller's account (or the caller has no account).
    SameAccount,
}

impl Ownership {
    /// Compares the caller's account with the resource's account; a resource whose account is
    /// unknown (such as an S3 bucket ARN) counts as the caller's.
    pub fn of(principal: &Principal, resource_account: Option<AccountId>) -> Self {
        match (principal.account(), resource_account) {
            (Some(mine), Some(theirs)) if mine != theirs => Self::CrossAccount,
            _ => Self::SameAccount,
        }
    }
}

/// A request: the caller, the action, the resource, the context and the ownership.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    pub(crate) principal: &'a Principal,
    pub(crate) action: Box<str>,
    pub(crate) action_lower: Box<str>,
    pub(crate) resource: &'a str,
    pub(crate) context: &'a Context,
    pub(crate) ownership: Ownership,
}

impl<'a> Request<'a> {
    /// A request for `action` (e.g. `s3:GetObject`) on `resource` (an ARN, or `*`). The ownership
    /// is derived from the resource ARN's account field; see [`Request::with_ownership`].
    pub fn new(
        principal: &'a Principal,
        action: &str,
        resource: &'a str,
        context: &'a Context,
    ) -> Self {
        let resource_account = resource
            .parse::<Arn>()
            .ok()
            .and_then(|arn| arn.account().parse::<AccountId>().ok());
        Self {
            principal,
            action: action.into(),
            action_lower: action.to_ascii_lowercase().into(),
            resource,
            context,
            ownership: Ownership::of(principal, resource_account),
        }
    }

    /// Sets the ownership explicitly, for resources whose ARN has no account (S3 buckets, say).
    #[must_use]
    pub fn with_ownership(mut self, ownership: Ownership) -> Self {
        self.ownership = ownership;
        self
    }

    /// The caller.
    pub fn principal(&self) -> &Principal {
        self.principal
    }

    /// The action as given.
    pub fn action(&self) -> &str {
        &self.action
    }

    /// The resource as given.
    pub fn resource(&self) -> &str {
        self.resource
    }

    /// The value of a condition key (lower case): the context first, then what the caller implies.
    pub(crate) fn value(&self, key: &str) -> Option<Values<'_>> {
        match self.context.lookup(key) {
            Some(ContextValue::One(v)) => Some(Values::One(v)),
            Some(ContextValue::Many(vs)) => Some(Values::Many(vs)),
            None => self.principal.derived(key).map(Values::One),
        }
    }

    /// The value of a single-valued key (lower case), for policy variables.
    pub(crate) fn single(&self, key: &str) -> Option<&str> {
        match self.value(key)? {
            Values::One(v) => Some(v),
            Values::Many(_) => None,
        }
    }
}

/// The value of a condition key in a request.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Values<'a> {
    One(&'a str),
    Many(&'a [String]),
}

impl<'a> Values<'a> {
    pub(crate) fn iter(self) -> impl Iterator<Item = &'a str> {
        let (one, many): (Option<&'a str>, &'a [String]) = match self {
            Self::One(v) => (Some(v), &[]),
            Self::Many(vs) => (None, vs),
        };
        one.into_iter().chain(many.iter().map(String::as_str))
    }

    pub(crate) fn is_empty(self) -> bool {
        matches!(self, Self::Many(vs) if vs.is_empty())
    }
}

impl fmt::Display for PrincipalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Account => "Account",
            Self::Anonymous => "Anonymous",
            Self::AssumedRole => "AssumedRole",
            Self::FederatedUser => "FederatedUser",
            Self::Service => "Service",
            Self::User => "User",
            Self::WebIdentity => "WebIdentity",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_the_keys_aws_derives_from_a_user() {
        let alice =
            Principal::user("arn:aws:iam::111122223333:user/team/alice", "AIDAEXAMPLE").unwrap();
        let context = Context::new();
        let request = Request::new(&alice, "s3:GetObject", "*", &context);
        assert_eq!(
            request.single("aws:principalarn"),
            Some("arn:aws:iam::111122223333:user/team/alice")
        );
        assert_eq!(request.single("aws:principalaccount"), Some("111122223333"));
        assert_eq!(request.single("aws:principaltype"), Some("User"));
        assert_eq!(request.single("aws:userid"), Some("AIDAEXAMPLE"));
        assert_eq!(request.single("aws:username"), Some("alice"));
    }

    #[test]
    fn derives_the_keys_aws_derives_from_a_role_session() {
        let session = Principal::assumed_role(
            "arn:aws:sts::111122223333:assumed-role/app/s1",
            "arn:aws:iam::111122223333:role/team/app",
            "AROAEXAMPLE",
        )
        .unwrap();
        let context = Context::new();
        let request = Request::new(&session, "s3:GetObject", "*", &context);
        // The role ARN (with its path), not the session ARN.
        assert_eq!(
            request.single("aws:principalarn"),
            Some("arn:aws:iam::111122223333:role/team/app")
        );
        assert_eq!(request.single("aws:userid"), Some("AROAEXAMPLE:s1"));
        assert_eq!(request.single("aws:principaltype"), Some("AssumedRole"));
        assert_eq!(request.single("aws:username"), None);
        assert_eq!(
            session.display_arn(),
            "arn:aws:sts::111122223333:assumed-role/app/s1"
        );
    }

    #[test]
    fn context_keys_are_case_insensitive_and_override_derived_ones() {
        let alice = Principal::user("arn:aws:iam::111122223333:user/alice", "AIDAEXAMPLE").unwrap();
        let context = Context::new()
            .with("AWS:PrincipalTag/Team", "blue")
            .with("aws:username", "other");
        let request = Request::new(&alice, "s3:GetObject", "*", &context);
        assert_eq!(request.single("aws:principaltag/team"), Some("blue"));
        assert_eq!(request.single("aws:username"), Some("other"));
        assert_eq!(
            context.get("aws:principaltag/TEAM"),
            Some(&ContextValue::One("blue".into()))
        );
    }

    #[test]
    fn from_pairs_agrees_with_insert() {
        let pairs = [("b", "1"), ("A", "2"), ("a", "3"), ("c", "4")];
        let mut inserted = Context::new();
        for (k, v) in pairs {
            inserted.insert(k, v);
        }
        let built = Context::from_pairs(pairs.map(|(k, v)| (k.to_owned(), ContextValue::from(v))));
        assert_eq!(built, inserted);
        assert_eq!(built.get("a"), Some(&ContextValue::One("3".into())));
    }

    #[test]
    fn ownership_comes_from_the_resource_account() {
        let alice = Principal::user("arn:aws:iam::111122223333:user/alice", "AIDAEXAMPLE").unwrap();
        let context = Context::new();
        let other = Request::new(
            &alice,
            "sts:AssumeRole",
            "arn:aws:iam::444455556666:role/r",
            &context,
        );
        assert_eq!(other.ownership, Ownership::CrossAccount);
        let same = Request::new(
            &alice,
            "sts:AssumeRole",
            "arn:aws:iam::111122223333:role/r",
            &context,
        );
        assert_eq!(same.ownership, Ownership::SameAccount);
        let bucket = Request::new(&alice, "s3:GetObject", "arn:aws:s3:::b/k", &context);
        assert_eq!(bucket.ownership, Ownership::SameAccount);
    }

    #[test]
    fn rejects_callers_that_are_not_what_they_claim() {
        assert!(Principal::user("arn:aws:iam::111122223333:role/r", "AIDA").is_err());
        assert!(Principal::user("arn:aws:iam::1111:user/u", "AIDA").is_err());
        assert!(
            Principal::assumed_role(
                "arn:aws:sts::111122223333:assumed-role/r",
                "arn:aws:iam::111122223333:role/r",
                "AROA"
            )
            .is_err()
        );
        assert!(Principal::federated_user("arn:aws:sts::111122223333:federated-user/").is_err());
    }
}

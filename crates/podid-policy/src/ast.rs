//! The validated policy: what [`crate::Policy::parse`] produces and the evaluator reads.
//!
//! Every element is checked and compiled once (lower-cased action patterns, split ARN patterns,
//! parsed condition values), so that evaluating a request allocates nothing unless a policy
//! variable must be resolved.

use std::fmt;

use podid_types::AccountId;

use crate::condition::{ArnPattern, Condition};
use crate::request::Principal;
use crate::variables::Template;
use crate::wildcard::Pattern;

/// The kinds of policy, each with its own validation rules, size limit and role in evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyKind {
    /// A permissions boundary: caps what identity policies grant.
    Boundary,
    /// An identity-based policy (inline or managed) of a user or role.
    Identity,
    /// A resource-based policy such as a bucket policy: names principals.
    Resource,
    /// A session policy passed to AssumeRole: caps the session.
    Session,
    /// A role trust policy: the resource-based policy of a role, naming who may assume it.
    Trust,
}

impl PolicyKind {
    /// All kinds.
    pub const ALL: [Self; 5] = [
        Self::Boundary,
        Self::Identity,
        Self::Resource,
        Self::Session,
        Self::Trust,
    ];

    /// The size limit AWS applies, in characters other than whitespace: managed policies (and
    /// boundaries) 6,144; role trust policies 2,048; session policies 2,048; resource-based policies
    /// 20,480 (S3's bucket-policy limit). Inline identity policies are limited per user (2,048),
    /// group (5,120) and role (10,240) in total, which the caller checks.
    pub fn size_limit(self) -> usize {
        match self {
            Self::Boundary | Self::Identity => 6144,
            Self::Resource => 20_480,
            Self::Session | Self::Trust => 2048,
        }
    }

    /// Whether policies of this kind name principals (`Principal`/`NotPrincipal`).
    pub fn names_principals(self) -> bool {
        matches!(self, Self::Resource | Self::Trust)
    }

    /// The name used on the command line and in case files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Boundary => "boundary",
            Self::Identity => "identity",
            Self::Resource => "resource",
            Self::Session => "session",
            Self::Trust => "trust",
        }
    }

    /// How AWS's messages name the kind: `identity-based policy`, `role trust policy`, ...
    pub fn aws_name(self) -> &'static str {
        match self {
            Self::Boundary => "permissions boundary",
            Self::Identity => "identity-based policy",
            Self::Resource => "resource-based policy",
            Self::Session => "session policy",
            Self::Trust => "role trust policy",
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PolicyKind {
    type Err = UnknownPolicyKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownPolicyKind(s.to_owned()))
    }
}

/// A policy kind name that is not one of `identity`, `trust`, `resource`, `boundary`, `session`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown policy kind `{0}`: use identity, trust, resource, boundary or session")]
pub struct UnknownPolicyKind(String);

/// The policy language version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// No `Version`: policy variables are text.
    Absent,
    /// `2008-10-17`: policy variables are text.
    V2008_10_17,
    /// `2012-10-17`: policy variables are resolved.
    V2012_10_17,
}

impl Version {
    /// Whether `${...}` is a policy variable in this version.
    pub fn has_variables(self) -> bool {
        self == Self::V2012_10_17
    }

    /// The version as written, if one was.
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            Self::Absent => None,
            Self::V2008_10_17 => Some("2008-10-17"),
            Self::V2012_10_17 => Some("2012-10-17"),
        }
    }
}

/// A parsed, validated policy document.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub(crate) kind: PolicyKind,
    pub(crate) version: Version,
    pub(crate) id: Option<String>,
    pub(crate) statements: Vec<Statement>,
}

impl Policy {
    /// The kind it was validated as.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// The `Version`.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The `Id`, if any.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The statements, in document order.
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// The IAM user and role ARNs named in `Principal` (not `NotPrincipal`), in document order,
    /// for the caller to resolve to unique ids.
    pub fn principal_arns(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for statement in &self.statements {
            let Some(block) = &statement.principal else {
                continue;
            };
            let Principals::Entries(entries) = &block.principals else {
                continue;
            };
            for entry in entries {
                if matches!(
                    entry.kind,
                    EntryKind::Aws(AwsPrincipal::User | AwsPrincipal::Role)
                ) && !out.contains(&&*entry.text)
                {
                    out.push(&*entry.text);
                }
            }
        }
        out
    }

    /// Binds the user and role ARNs that `bindings` maps to unique ids (as saved by
    /// [`Policy::bind_principals`]); other principals keep matching by ARN.
    pub fn apply_bindings(&mut self, bindings: &std::collections::BTreeMap<String, String>) {
        for statement in &mut self.statements {
            let Some(block) = &mut statement.principal else {
                continue;
            };
            let Principals::Entries(entries) = &mut block.principals else {
                continue;
            };
            for entry in entries.iter_mut() {
                if let Some(id) = bindings.get(&*entry.text) {
                    entry.bound = Some(id.clone().into_boxed_str());
                }
            }
        }
    }

    /// Binds the IAM user and role ARNs in `Principal` to the unique ids of the entities they name,
    /// as IAM does when it saves a trust or resource policy: a user or role deleted and re-created
    /// with the same name gets a new id and no longer matches. `lookup` returns the unique id of
    /// the user or role an ARN names, or `None` if there is none; the error names the first
    /// principal with no entity (`Invalid principal in policy`).
    pub fn bind_principals(
        &mut self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), crate::PolicyErrors> {
        for (index, statement) in self.statements.iter_mut().enumerate() {
            let Some(block) = &mut statement.principal else {
                continue;
            };
            let Principals::Entries(entries) = &mut block.principals else {
                continue;
            };
            for entry in entries.iter_mut() {
                if let EntryKind::Aws(AwsPrincipal::User | AwsPrincipal::Role) = entry.kind {
                    match lookup(&entry.text) {
                        Some(id) => entry.bound = Some(id.into_boxed_str()),
                        None => {
                            let error = crate::PolicyError {
                                kind: crate::ErrorKind::InvalidPrincipal {
                                    key: "AWS".into(),
                                    value: entry.text.to_string(),
                                },
                                policy_kind: self.kind,
                                path: format!("$.Statement[{index}].Principal.AWS"),
                                position: None,
                                statement: Some((index, statement.sid.clone())),
                            };
                            return Err(crate::PolicyErrors::one(error));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// `Allow` or `Deny`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// `Allow`.
    Allow,
    /// `Deny`.
    Deny,
}

impl Effect {
    /// `Allow` or `Deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "Allow",
            Self::Deny => "Deny",
        }
    }
}

/// One statement.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub(crate) sid: Option<String>,
    pub(crate) effect: Effect,
    pub(crate) principal: Option<PrincipalBlock>,
    pub(crate) action: ActionBlock,
    pub(crate) resource: Option<ResourceBlock>,
    pub(crate) conditions: Vec<Condition>,
    pub(crate) position: SourcePosition,
}

impl Statement {
    /// The `Sid`, if any.
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    /// The `Effect`.
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// The conditions, one per operator and key.
    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    /// Where the statement was written: start and end line and column.
    pub fn position(&self) -> SourcePosition {
        self.position
    }
}

/// The start and end (line, column) of a statement in its document.
///
/// Positions are not part of a policy's meaning, so two statements that differ only in where they
/// were written are equal.
#[derive(Clone, Copy, Debug, Default)]
pub struct SourcePosition {
    /// The first character's line and column.
    pub start: (usize, usize),
    /// The line and column just after the last character.
    pub end: (usize, usize),
}

impl PartialEq for SourcePosition {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// `Action` or `NotAction`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ActionBlock {
    pub(crate) negated: bool,
    pub(crate) items: Vec<ActionEntry>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ActionEntry {
    pub(crate) text: Box<str>,
    pub(crate) pattern: Pattern,
}

impl ActionBlock {
    /// Whether the block covers the action (given in ASCII lower case).
    pub(crate) fn matches(&self, action_lower: &str) -> bool {
        self.items.iter().any(|a| a.pattern.matches(action_lower)) != self.negated
    }
}

/// `Resource` or `NotResource`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ResourceBlock {
    pub(crate) negated: bool,
    pub(crate) items: Vec<ResourceEntry>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ResourceEntry {
    pub(crate) text: Box<str>,
    pub(crate) matcher: ResourceMatcher,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ResourceMatcher {
    Static(ArnPattern),
    /// Variables in the resource part: patterns for the first five components, then a template.
    Dynamic {
        prefix: Box<[Pattern; 5]>,
        resource: Template,
    },
}

impl ResourceBlock {
    pub(crate) fn matches(&self, request: &crate::Request<'_>) -> bool {
        let resource = request.resource();
        self.items.iter().any(|entry| match &entry.matcher {
            ResourceMatcher::Static(pattern) => pattern.matches(resource),
            // An entry whose variable cannot be resolved matches nothing.
            ResourceMatcher::Dynamic {
                prefix,
                resource: template,
            } => {
                let Some([p0, p1, p2, p3, p4, rest]) = crate::condition::split_arn(resource) else {
                    return false;
                };
                prefix
                    .iter()
                    .zip([p0, p1, p2, p3, p4])
                    .all(|(p, t)| p.matches(t))
                    && template
                        .resolve_pattern(&|key| request.single(key), false)
                        .is_some_and(|pattern| pattern.matches(rest))
            }
        }) != self.negated
    }
}

/// `Principal` or `NotPrincipal`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PrincipalBlock {
    pub(crate) negated: bool,
    pub(crate) principals: Principals,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Principals {
    /// `"Principal": "*"`.
    Star,
    /// `{"AWS": [...], "Service": [...], ...}`, grouped as written.
    Entries(Vec<PrincipalEntry>),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PrincipalEntry {
    /// The principal type key as written (`AWS`, `Service`, ...).
    pub(crate) key: Box<str>,
    pub(crate) text: Box<str>,
    pub(crate) kind: EntryKind,
    /// The unique id the user or role ARN was bound to when the policy was saved.
    pub(crate) bound: Option<Box<str>>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum EntryKind {
    Aws(AwsPrincipal),
    CanonicalUser,
    Federated,
    Service,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum AwsPrincipal {
    Account(AccountId),
    AssumedRole,
    Everyone,
    FederatedUser,
    Role,
    UniqueId,
    User,
}

/// How a resource-based statement names the caller, which decides what else must allow
/// (iam-semantics §1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grant {
    /// The caller's account: a delegation to the account's identity policies, no grant by itself.
    Account,
    /// The role of the calling session: limited by the boundary and session policies.
    Role,
    /// The caller itself, by name or id: user, session, federated user, service, identity
    /// provider.
    Direct,
    /// Everyone: `*`, `{"AWS": "*"}`, or an `Allow` with `NotPrincipal` that does not list the
    /// caller. Like a direct grant, and not limited by the boundary even in a trust policy
    /// (iam-semantics §1.3.3, §1.7).
    Everyone,
}

/// One identity of a caller that a principal entry can name.
#[derive(Clone, Copy, Debug)]
enum Facet<'a> {
    Account(AccountId),
    Anonymous,
    Federated(&'a str),
    Role { arn: &'a str, id: &'a str },
    Service(&'a str),
    Session(&'a str),
    User { arn: &'a str, id: &'a str },
}

impl Facet<'_> {
    fn grant(self) -> Grant {
        match self {
            Self::Account(_) => Grant::Account,
            Self::Role { .. } => Grant::Role,
            Self::Anonymous
            | Self::Federated(_)
            | Self::Service(_)
            | Self::Session(_)
            | Self::User { .. } => Grant::Direct,
        }
    }
}

fn facets(principal: &Principal) -> impl Iterator<Item = Facet<'_>> {
    let account = principal.account().map(Facet::Account);
    let user = principal
        .user_arn()
        .zip(principal.unique_user_id())
        .map(|(arn, id)| Facet::User { arn, id });
    let role = principal.role().map(|(arn, id)| Facet::Role { arn, id });
    let session = principal.session_arn().map(Facet::Session);
    let service = principal.service_name().map(Facet::Service);
    let federated = principal.provider().map(Facet::Federated);
    let anonymous =
        (principal.principal_type() == crate::PrincipalType::Anonymous).then_some(Facet::Anonymous);
    [user, session, role, account, service, federated, anonymous]
        .into_iter()
        .flatten()
}

impl PrincipalEntry {
    fn matches(&self, facet: Facet<'_>) -> bool {
        match (&self.kind, facet) {
            (EntryKind::Aws(AwsPrincipal::Everyone), f) => {
                !matches!(f, Facet::Service(_) | Facet::Federated(_))
            }
            (EntryKind::Aws(AwsPrincipal::Account(a)), Facet::Account(b)) => *a == b,
            (EntryKind::Aws(AwsPrincipal::User), Facet::User { arn, id })
            | (EntryKind::Aws(AwsPrincipal::Role), Facet::Role { arn, id }) => match &self.bound {
                Some(bound) => **bound == *id,
                None => *self.text == *arn,
            },
            (
                EntryKind::Aws(AwsPrincipal::AssumedRole | AwsPrincipal::FederatedUser),
                Facet::Session(arn),
            ) => *self.text == *arn,
            (
                EntryKind::Aws(AwsPrincipal::UniqueId),
                Facet::User { id, .. } | Facet::Role { id, .. },
            ) => *self.text == *id,
            (EntryKind::Service, Facet::Service(name)) => *self.text == *name,
            (EntryKind::Federated, Facet::Federated(provider)) => *self.text == *provider,
            _ => false,
        }
    }
}

impl PrincipalBlock {
    /// How the block covers the caller for a statement with `effect`, or `None` if it does not.
    ///
    /// `Principal`: the strongest way an entry names an identity of the caller.
    /// `NotPrincipal` with `Deny`: applies when some identity of the caller (user or session,
    /// role, account) is not listed, which is why the account must be listed too (§2.3).
    /// `NotPrincipal` with `Allow`: applies to everyone none of whose identities is listed.
    pub(crate) fn grant(&self, principal: &Principal, effect: Effect) -> Option<Grant> {
        let entries = match &self.principals {
            Principals::Star => return (!self.negated).then_some(Grant::Everyone),
            Principals::Entries(entries) => entries,
        };
        let listed = |facet: Facet<'_>| entries.iter().any(|e| e.matches(facet));
        if self.negated {
            let applies = match effect {
                Effect::Deny => facets(principal).any(|f| !listed(f)),
                Effect::Allow => !facets(principal).any(listed),
            };
            return applies.then_some(Grant::Everyone);
        }
        facets(principal)
            .flat_map(|f| {
                entries
                    .iter()
                    .filter(move |e| e.matches(f))
                    .map(move |e| match e.kind {
                        EntryKind::Aws(AwsPrincipal::Everyone) => Grant::Everyone,
                        _ => f.grant(),
                    })
            })
            .max()
    }
}

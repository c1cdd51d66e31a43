//! The decision algorithm of iam-semantics §1: explicit deny first; resource-based grants by how
//! the principal is named; identity ∩ boundary ∩ session; the trust-policy exception; both
//! accounts for cross-account requests.

use std::sync::Arc;

use crate::ast::{Effect, Grant, Policy, PolicyKind, Statement};
use crate::request::{Ownership, Request};

/// A policy and the name explanations give it (a policy ARN, `inline:NAME`, a file name, ...).
#[derive(Clone, Debug)]
pub struct NamedPolicy {
    name: Arc<str>,
    policy: Arc<Policy>,
}

impl NamedPolicy {
    /// Names a policy.
    pub fn new(name: impl Into<Arc<str>>, policy: impl Into<Arc<Policy>>) -> Self {
        Self {
            name: name.into(),
            policy: policy.into(),
        }
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

/// The policies that apply to one request, by the role they play.
#[derive(Clone, Debug)]
pub struct PolicySet {
    identity: Vec<NamedPolicy>,
    boundary: Vec<NamedPolicy>,
    session: Vec<NamedPolicy>,
    resource: Vec<NamedPolicy>,
    resource_kind: PolicyKind,
}

impl Default for PolicySet {
    fn default() -> Self {
        Self {
            identity: Vec::new(),
            boundary: Vec::new(),
            session: Vec::new(),
            resource: Vec::new(),
            resource_kind: PolicyKind::Resource,
        }
    }
}

/// The final answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Allowed.
    Allow,
    /// A statement denies it.
    ExplicitDeny,
    /// Nothing that must allow it does.
    ImplicitDeny,
}

impl Outcome {
    /// `Allow`, `ExplicitDeny` or `ImplicitDeny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "Allow",
            Self::ExplicitDeny => "ExplicitDeny",
            Self::ImplicitDeny => "ImplicitDeny",
        }
    }
}

/// A statement that applied to the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatementMatch {
    /// The role of its policy.
    pub kind: PolicyKind,
    /// The index of its policy among the policies of that role in the [`PolicySet`].
    pub policy: usize,
    /// The index of the statement in its policy.
    pub statement: usize,
    /// Its effect.
    pub effect: Effect,
    /// For resource-based statements: how it named the caller.
    pub grant: Option<Grant>,
}

/// How an allowed request was allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllowPath {
    /// The resource's account allowed the caller, and so did the caller's own policies.
    BothAccounts,
    /// Identity-based policies (with the boundary and session policies, and for a role, a trust
    /// policy that names the account).
    Identity,
    /// A resource-based (or trust) policy that names the caller or its role.
    ResourceGrant(Grant),
}

/// The engine's answer and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    outcome: Outcome,
    path: Option<AllowPath>,
    missing: Option<PolicyKind>,
    required: KindSet,
    matches: Vec<StatementMatch>,
}

/// A set of policy kinds, iterated in the order AWS evaluates them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct KindSet(u8);

const ORDER: [PolicyKind; 5] = [
    PolicyKind::Trust,
    PolicyKind::Resource,
    PolicyKind::Identity,
    PolicyKind::Boundary,
    PolicyKind::Session,
];

impl KindSet {
    fn bit(kind: PolicyKind) -> u8 {
        match kind {
            PolicyKind::Trust => 1,
            PolicyKind::Resource => 2,
            PolicyKind::Identity => 4,
            PolicyKind::Boundary => 8,
            PolicyKind::Session => 16,
        }
    }

    fn insert(&mut self, kind: PolicyKind) {
        self.0 |= Self::bit(kind);
    }

    fn remove(&mut self, kind: PolicyKind) {
        self.0 &= !Self::bit(kind);
    }

    fn iter(self) -> impl Iterator<Item = PolicyKind> {
        ORDER
            .into_iter()
            .filter(move |k| self.0 & Self::bit(*k) != 0)
    }
}

impl Decision {
    /// The outcome.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// Whether the request is allowed.
    pub fn is_allowed(&self) -> bool {
        self.outcome == Outcome::Allow
    }

    /// For an allowed request, how it was allowed.
    pub fn allow_path(&self) -> Option<AllowPath> {
        self.path
    }

    /// For an implicit deny, the kind of policy that had to allow the request and did not.
    pub fn missing(&self) -> Option<PolicyKind> {
        self.missing
    }

    /// For an allowed request, the kinds of policy whose allow was needed.
    pub fn required(&self) -> impl Iterator<Item = PolicyKind> {
        self.required.iter()
    }

    /// Every statement that applied to the request (allows and denies), in evaluation order:
    /// resource-based, identity, boundary, session.
    pub fn matches(&self) -> &[StatementMatch] {
        &self.matches
    }

    /// The statements that denied the request.
    pub fn denies(&self) -> impl Iterator<Item = &StatementMatch> {
        self.matches.iter().filter(|m| m.effect == Effect::Deny)
    }
}

impl PolicySet {
    /// An empty set: with nothing to allow it, every request is implicitly denied.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an identity-based policy of the caller.
    #[must_use]
    pub fn identity(mut self, policy: NamedPolicy) -> Self {
        self.identity.push(policy);
        self
    }

    /// Adds the caller's permissions boundary.
    #[must_use]
    pub fn boundary(mut self, policy: NamedPolicy) -> Self {
        self.boundary.push(policy);
        self
    }

    /// Adds a session policy of the caller's session.
    #[must_use]
    pub fn session(mut self, policy: NamedPolicy) -> Self {
        self.session.push(policy);
        self
    }

    /// Adds a resource-based policy of the resource (a role's trust policy, when the resource is
    /// a role being assumed).
    #[must_use]
    pub fn resource(mut self, policy: NamedPolicy) -> Self {
        if policy.policy.kind == PolicyKind::Trust {
            self.resource_kind = PolicyKind::Trust;
        }
        self.resource.push(policy);
        self
    }

    /// Adds a policy in the role of `kind`: identity, boundary, session, or (for `Resource` and
    /// `Trust`) the resource's own policy, which also sets the resource-policy kind.
    #[must_use]
    pub fn with(self, kind: PolicyKind, policy: NamedPolicy) -> Self {
        match kind {
            PolicyKind::Identity => self.identity(policy),
            PolicyKind::Boundary => self.boundary(policy),
            PolicyKind::Session => self.session(policy),
            PolicyKind::Resource | PolicyKind::Trust => self.resource(policy).resource_kind(kind),
        }
    }

    /// Says whether the resource-based policies are a role's trust policy (which must allow
    /// explicitly) or an ordinary resource policy, when no policy has said it already.
    #[must_use]
    pub fn resource_kind(mut self, kind: PolicyKind) -> Self {
        self.resource_kind = kind;
        self
    }

    /// The policies of one role.
    pub fn policies(&self, kind: PolicyKind) -> &[NamedPolicy] {
        match kind {
            PolicyKind::Identity => &self.identity,
            PolicyKind::Boundary => &self.boundary,
            PolicyKind::Session => &self.session,
            PolicyKind::Resource | PolicyKind::Trust => &self.resource,
        }
    }

    /// The role the resource-based policies play: `Trust` or `Resource`.
    pub fn resource_policy_kind(&self) -> PolicyKind {
        self.resource_kind
    }

    /// The statement a match refers to.
    pub fn statement(&self, m: &StatementMatch) -> Option<(&NamedPolicy, &Statement)> {
        let policy = self.policies(m.kind).get(m.policy)?;
        Some((policy, policy.policy.statements.get(m.statement)?))
    }

    /// Decides the request.
    pub fn evaluate(&self, request: &Request<'_>) -> Decision {
        let mut matches = Vec::new();
        let mut denied = false;

        let mut grant: Option<Grant> = None;
        for (pi, named) in self.resource.iter().enumerate() {
            for (si, statement) in named.policy.statements.iter().enumerate() {
                let Some(g) = resource_statement_applies(statement, request) else {
                    continue;
                };
                matches.push(StatementMatch {
                    kind: self.resource_kind,
                    policy: pi,
                    statement: si,
                    effect: statement.effect,
                    grant: Some(g),
                });
                match statement.effect {
                    Effect::Deny => denied = true,
                    Effect::Allow => grant = grant.max(Some(g)),
                }
            }
        }
        let has_identity = request.principal.has_identity_policies();
        let mut scan = |kind: PolicyKind, policies: &[NamedPolicy]| -> Option<bool> {
            if !has_identity || policies.is_empty() {
                return None;
            }
            let mut allowed = false;
            for (pi, named) in policies.iter().enumerate() {
                for (si, statement) in named.policy.statements.iter().enumerate() {
                    if !identity_statement_applies(statement, request) {
                        continue;
                    }
                    matches.push(StatementMatch {
                        kind,
                        policy: pi,
                        statement: si,
                        effect: statement.effect,
                        grant: None,
                    });
                    match statement.effect {
                        Effect::Deny => denied = true,
                        Effect::Allow => allowed = true,
                    }
                }
            }
            Some(allowed)
        };
        let identity = scan(PolicyKind::Identity, &self.identity);
        let boundary = scan(PolicyKind::Boundary, &self.boundary);
        let session = scan(PolicyKind::Session, &self.session);

        let mut decision = Decision {
            outcome: Outcome::ImplicitDeny,
            path: None,
            missing: None,
            required: KindSet::default(),
            matches,
        };
        if denied {
            decision.outcome = Outcome::ExplicitDeny;
            return decision;
        }
        let resource_kind = self.resource_kind;
        let root = request.principal.principal_type() == crate::PrincipalType::Account;
        let identity_ok = root || identity == Some(true);
        let boundary_ok = boundary != Some(false);
        let session_ok = session != Some(false);
        let trust = resource_kind == PolicyKind::Trust;

        // The kinds that must allow; when one does not, the first in evaluation order is reported.
        let mut required = KindSet::default();
        let path = if !has_identity {
            // Services, web identities and anonymous callers have no policies of their own.
            required.insert(resource_kind);
            grant.map(AllowPath::ResourceGrant)
        } else if request.ownership == Ownership::CrossAccount {
            required.insert(resource_kind);
            required.insert(PolicyKind::Identity);
            Some(AllowPath::BothAccounts)
        } else {
            match grant {
                Some(g @ (Grant::Direct | Grant::Everyone)) => {
                    required.insert(resource_kind);
                    // A principal whose boundary does not allow AssumeRole cannot assume a role,
                    // even one whose trust policy names it (§1.3.6); a grant to everyone is not
                    // limited by the boundary (§1.3.3, §1.7).
                    if trust && g == Grant::Direct {
                        required.insert(PolicyKind::Boundary);
                    }
                    Some(AllowPath::ResourceGrant(g))
                }
                Some(Grant::Role) => {
                    required.insert(resource_kind);
                    required.insert(PolicyKind::Boundary);
                    required.insert(PolicyKind::Session);
                    Some(AllowPath::ResourceGrant(Grant::Role))
                }
                Some(Grant::Account) | None => {
                    if trust {
                        required.insert(PolicyKind::Trust);
                    }
                    required.insert(PolicyKind::Identity);
                    Some(AllowPath::Identity)
                }
            }
        };
        if matches!(path, Some(AllowPath::BothAccounts | AllowPath::Identity)) {
            required.insert(PolicyKind::Boundary);
            required.insert(PolicyKind::Session);
        }
        // Only the kinds that take part: no boundary or no session policy means no constraint.
        if boundary.is_none() {
            required.remove(PolicyKind::Boundary);
        }
        if session.is_none() {
            required.remove(PolicyKind::Session);
        }
        let missing = required.iter().find(|k| match k {
            PolicyKind::Trust | PolicyKind::Resource => grant.is_none(),
            PolicyKind::Identity => !identity_ok,
            PolicyKind::Boundary => !boundary_ok,
            PolicyKind::Session => !session_ok,
        });
        match (path, missing) {
            (Some(path), None) => {
                decision.outcome = Outcome::Allow;
                decision.path = Some(path);
                decision.required = required;
            }
            (_, missing) => {
                decision.missing = Some(missing.unwrap_or(resource_kind));
            }
        }
        decision
    }
}

/// For a statement of a resource-based policy: how it names the caller, if it applies.
fn resource_statement_applies(statement: &Statement, request: &Request<'_>) -> Option<Grant> {
    if !statement.action.matches(&request.action_lower) {
        return None;
    }
    if let Some(resource) = &statement.resource
        && !resource.matches(request)
    {
        return None;
    }
    let grant = statement
        .principal
        .as_ref()?
        .grant(request.principal, statement.effect)?;
    statement
        .conditions
        .iter()
        .all(|c| c.evaluate(request))
        .then_some(grant)
}

fn identity_statement_applies(statement: &Statement, request: &Request<'_>) -> bool {
    statement.action.matches(&request.action_lower)
        && statement
            .resource
            .as_ref()
            .is_none_or(|r| r.matches(request))
        && statement.conditions.iter().all(|c| c.evaluate(request))
}

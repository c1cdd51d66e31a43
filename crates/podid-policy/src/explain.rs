//! Decisions in words: which statements allowed or denied, which kind of policy had no allow, and
//! the AccessDenied message AWS would return.

use std::fmt;

use crate::ast::{Effect, Grant, PolicyKind};
use crate::eval::{AllowPath, Decision, Outcome, PolicySet, StatementMatch};
use crate::request::Request;

/// A decision with the names, `Sid`s and positions of the statements behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// The outcome.
    pub outcome: Outcome,
    /// One sentence: why.
    pub summary: String,
    /// For an implicit deny, the kind of policy that had to allow and did not.
    pub missing: Option<PolicyKind>,
    /// The statements that applied, in evaluation order.
    pub statements: Vec<ExplainedStatement>,
    /// For an implicit deny: the `Allow` statements of the missing kind that cover the action but
    /// did not apply, each with the first reason it did not.
    pub near_misses: Vec<NearMiss>,
}

/// An `Allow` statement that covers the action but did not apply to the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NearMiss {
    /// The statement.
    pub statement: ExplainedStatement,
    /// Why it did not apply, such as ``condition `StringEquals` on `aws:RequestTag/team` is not met: the request has `dev` ``.
    pub why: String,
}

/// A statement that applied to the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExplainedStatement {
    /// The role its policy played.
    pub kind: PolicyKind,
    /// Its policy's name.
    pub policy: String,
    /// Its index in the policy.
    pub index: usize,
    /// Its `Sid`.
    pub sid: Option<String>,
    /// Its effect.
    pub effect: Effect,
    /// How it named the caller, for resource-based statements.
    pub grant: Option<Grant>,
    /// Where it starts in its document (line, column).
    pub start: (usize, usize),
    /// Where it ends in its document (line, column).
    pub end: (usize, usize),
}

impl Decision {
    /// The decision with everything a person needs to see why.
    pub fn explain(&self, set: &PolicySet, request: &Request<'_>) -> Explanation {
        let statements: Vec<ExplainedStatement> = self
            .matches()
            .iter()
            .filter_map(|m| explained(set, m))
            .collect();
        let action = request.action();
        let summary = match self.outcome() {
            Outcome::ExplicitDeny => {
                let denies: Vec<String> = statements
                    .iter()
                    .filter(|s| s.effect == Effect::Deny)
                    .map(ExplainedStatement::name)
                    .collect();
                format!("explicitly denied by {}", denies.join(", "))
            }
            Outcome::ImplicitDeny => implicit_summary(self, set, request, &statements),
            Outcome::Allow => allow_summary(self, set, &statements),
        };
        let near_misses = match self.missing() {
            Some(kind) if self.outcome() == Outcome::ImplicitDeny => {
                near_misses(set, kind, request)
            }
            _ => Vec::new(),
        };
        Explanation {
            near_misses,
            outcome: self.outcome(),
            summary: if summary.is_empty() {
                format!("no policy allows `{action}`")
            } else {
                summary
            },
            missing: self.missing(),
            statements,
        }
    }

    /// The AccessDenied message AWS returns for this decision, such as `User: arn:aws:iam::…:user/alice
    /// is not authorized to perform: s3:GetObject on resource: arn:aws:s3:::b/k because no
    /// identity-based policy allows the s3:GetObject action`. With `with_reason` false, the older
    /// form without the `because …`/`with …` clause, which STS still returns for AssumeRole.
    /// `None` for an allowed request.
    pub fn access_denied_message(
        &self,
        request: &Request<'_>,
        with_reason: bool,
    ) -> Option<String> {
        let action = request.action();
        let base = format!(
            "User: {} is not authorized to perform: {action} on resource: {}",
            request.principal().display_arn(),
            request.resource()
        );
        let reason = match self.outcome() {
            Outcome::Allow => return None,
            Outcome::ExplicitDeny => {
                let kind = self
                    .denies()
                    .map(|m| m.kind)
                    .min_by_key(|k| report_order(*k))?;
                let article = match kind {
                    PolicyKind::Trust => "the",
                    PolicyKind::Identity => "an",
                    _ => "a",
                };
                format!(" with an explicit deny in {article} {}", kind.aws_name())
            }
            Outcome::ImplicitDeny => {
                let kind = self.missing()?;
                format!(" because no {} allows the {action} action", kind.aws_name())
            }
        };
        Some(if with_reason { base + &reason } else { base })
    }
}

impl ExplainedStatement {
    /// `identity-based policy `NAME` statement 2 (`Sid`)`.
    pub fn name(&self) -> String {
        let sid = match &self.sid {
            Some(sid) if !sid.is_empty() => format!(" (`{sid}`)"),
            _ => String::new(),
        };
        format!(
            "{} `{}` statement {}{sid}",
            self.kind.aws_name(),
            self.policy,
            self.index
        )
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "decision: {}", self.outcome.as_str())?;
        writeln!(f, "reason: {}", self.summary)?;
        for s in &self.statements {
            let how = match s.grant {
                Some(Grant::Direct) => ", names the caller",
                Some(Grant::Everyone) => ", names everyone",
                Some(Grant::Role) => ", names the caller's role",
                Some(Grant::Account) => ", names the caller's account",
                None => "",
            };
            writeln!(
                f,
                "  {:<5} {} (line {}){how}",
                s.effect.as_str(),
                s.name(),
                s.start.0
            )?;
        }
        for miss in &self.near_misses {
            writeln!(
                f,
                "  not applied: {} (line {}): {}",
                miss.statement.name(),
                miss.statement.start.0,
                miss.why
            )?;
        }
        Ok(())
    }
}

/// The `Allow` statements of `kind` that cover the request's action but did not apply, and why.
fn near_misses(set: &PolicySet, kind: PolicyKind, request: &Request<'_>) -> Vec<NearMiss> {
    let mut out = Vec::new();
    for (pi, named) in set.policies(kind).iter().enumerate() {
        for (si, statement) in named.policy().statements.iter().enumerate() {
            if statement.effect != Effect::Allow || !statement.action.matches(&request.action_lower)
            {
                continue;
            }
            let why = if statement
                .resource
                .as_ref()
                .is_some_and(|r| !r.matches(request))
            {
                format!("its resources do not cover `{}`", request.resource())
            } else if statement
                .principal
                .as_ref()
                .is_some_and(|p| p.grant(request.principal(), Effect::Allow).is_none())
            {
                format!(
                    "its principals do not name `{}`",
                    request.principal().display_arn()
                )
            } else if let Some(condition) =
                statement.conditions.iter().find(|c| !c.evaluate(request))
            {
                let found = match request.value(&condition.key_lower) {
                    None => "the request does not have the key".to_owned(),
                    Some(values) => {
                        let shown: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
                        format!(
                            "the request has {}",
                            if shown.is_empty() {
                                "an empty list".to_owned()
                            } else {
                                shown.join(", ")
                            }
                        )
                    }
                };
                let wanted: Vec<String> = condition.values().map(|v| format!("`{v}`")).collect();
                format!(
                    "condition `{}` on `{}` ({}) is not met: {found}",
                    condition.operator().name(),
                    condition.key(),
                    wanted.join(", ")
                )
            } else {
                // It applied after all: not a near miss (it was limited elsewhere).
                continue;
            };
            let m = StatementMatch {
                kind,
                policy: pi,
                statement: si,
                effect: Effect::Allow,
                grant: None,
            };
            if let Some(statement) = explained(set, &m) {
                out.push(NearMiss { statement, why });
            }
        }
    }
    out
}

fn explained(set: &PolicySet, m: &StatementMatch) -> Option<ExplainedStatement> {
    let (policy, statement) = set.statement(m)?;
    let position = statement.position();
    Some(ExplainedStatement {
        kind: m.kind,
        policy: policy.name().to_owned(),
        index: m.statement,
        sid: statement.sid().map(str::to_owned),
        effect: m.effect,
        grant: m.grant,
        start: position.start,
        end: position.end,
    })
}

fn report_order(kind: PolicyKind) -> u8 {
    match kind {
        PolicyKind::Trust | PolicyKind::Resource => 0,
        PolicyKind::Identity => 1,
        PolicyKind::Boundary => 2,
        PolicyKind::Session => 3,
    }
}

fn allows_of(statements: &[ExplainedStatement], kind: PolicyKind) -> String {
    let names: Vec<String> = statements
        .iter()
        .filter(|s| s.kind == kind && s.effect == Effect::Allow)
        .map(ExplainedStatement::name)
        .collect();
    names.join(", ")
}

fn allow_summary(
    decision: &Decision,
    set: &PolicySet,
    statements: &[ExplainedStatement],
) -> String {
    let resource_kind = set.resource_policy_kind();
    let mut parts = Vec::new();
    match decision.allow_path() {
        Some(AllowPath::ResourceGrant(Grant::Direct)) => parts.push(format!(
            "{} names the caller, which needs no identity-based policy",
            allows_of(statements, resource_kind)
        )),
        Some(AllowPath::ResourceGrant(Grant::Everyone)) => parts.push(format!(
            "{} grants it to everyone, which needs no identity-based policy",
            allows_of(statements, resource_kind)
        )),
        Some(AllowPath::ResourceGrant(_)) => parts.push(format!(
            "{} names the caller's role, which needs no identity-based policy",
            allows_of(statements, resource_kind)
        )),
        Some(AllowPath::BothAccounts) => parts.push(format!(
            "cross-account: the resource's account allows it ({}) and so does the caller's ({})",
            allows_of(statements, resource_kind),
            allows_of(statements, PolicyKind::Identity)
        )),
        Some(AllowPath::Identity) | None => {
            if resource_kind == PolicyKind::Trust {
                parts.push(format!(
                    "{} names the caller's account, delegating to its identity-based policies",
                    allows_of(statements, PolicyKind::Trust)
                ));
            }
            parts.push(format!(
                "allowed by {}",
                allows_of(statements, PolicyKind::Identity)
            ));
        }
    }
    for kind in decision.required() {
        if matches!(kind, PolicyKind::Boundary | PolicyKind::Session) {
            parts.push(format!("within {}", allows_of(statements, kind)));
        }
    }
    let text = parts.join("; ");
    text.strip_prefix("allowed by ").map_or_else(
        || format!("allowed: {text}"),
        |rest| format!("allowed by {rest}"),
    )
}

fn implicit_summary(
    decision: &Decision,
    set: &PolicySet,
    request: &Request<'_>,
    statements: &[ExplainedStatement],
) -> String {
    let action = request.action();
    let Some(missing) = decision.missing() else {
        return String::new();
    };
    let mut text = format!("no {} allows `{action}`", missing.aws_name());
    let account_grant = statements
        .iter()
        .any(|s| s.grant == Some(Grant::Account) && s.effect == Effect::Allow);
    match missing {
        PolicyKind::Identity if request.ownership == crate::Ownership::CrossAccount => text.push_str(
            ": a cross-account request needs the caller's own identity-based policies to allow it too",
        ),
        PolicyKind::Identity if account_grant => text.push_str(&format!(
            ": {} names only the caller's account, which delegates to the account's identity-based policies",
            allows_of(statements, set.resource_policy_kind())
        )),
        PolicyKind::Trust if request.principal().has_identity_policies() => text.push_str(
            ": a role trust policy must allow the caller explicitly; identity-based policies alone never suffice",
        ),
        PolicyKind::Resource if request.ownership == crate::Ownership::CrossAccount => text.push_str(
            ": a cross-account request needs a resource-based policy of the resource's account to allow the caller",
        ),
        PolicyKind::Boundary => text.push_str(": the permissions boundary caps what the caller may do"),
        PolicyKind::Session => text.push_str(": the session policies cap what the session may do"),
        _ => {}
    }
    text
}

//! SimulatePrincipalPolicy and SimulateCustomPolicy, answered by the policy engine.

use podid_policy::{
    Context, ContextValue, NamedPolicy, Outcome, Ownership, ParseOptions, PolicyKind, PolicySet,
    Principal, Request,
};
use podid_types::{AccountId, Arn};

use crate::auth::Caller;
use crate::error::Error;
use crate::names::entity_key;
use crate::records::{RoleRecord, UserRecord, ns};
use crate::{Iam, catalogue};

/// A policy given to the simulator, with the id its results name it by.
#[derive(Clone, Debug)]
pub struct SimulationPolicy {
    /// `SourcePolicyId`.
    pub id: String,
    /// `SourcePolicyType` (`user`, `role`, `aws-managed`, `user-managed`, `resource`, `none`).
    pub source_type: &'static str,
    /// The document.
    pub document: String,
}

/// The parameters of either simulation.
#[derive(Clone, Debug, Default)]
pub struct SimulateInput {
    /// `PolicySourceArn` (SimulatePrincipalPolicy): a user or role whose policies are simulated.
    pub source_arn: Option<String>,
    /// `PolicyInputList`.
    pub policies: Vec<String>,
    /// `PermissionsBoundaryPolicyInputList`.
    pub boundaries: Vec<String>,
    /// `ActionNames`.
    pub actions: Vec<String>,
    /// `ResourceArns` (default `*`).
    pub resources: Vec<String>,
    /// `ResourcePolicy`.
    pub resource_policy: Option<String>,
    /// `ResourceOwner`.
    pub resource_owner: Option<String>,
    /// `CallerArn`.
    pub caller_arn: Option<String>,
    /// `ContextEntries`: key, values, whether the type is a list.
    pub context: Vec<(String, Vec<String>, bool)>,
}

/// A matched statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchedStatement {
    /// `SourcePolicyId`.
    pub source_policy_id: String,
    /// `SourcePolicyType`.
    pub source_policy_type: String,
    /// `StartPosition` (line, column).
    pub start: (usize, usize),
    /// `EndPosition` (line, column).
    pub end: (usize, usize),
}

/// One result: an action on a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvaluationResult {
    /// `EvalActionName`.
    pub action: String,
    /// `EvalResourceName`.
    pub resource: String,
    /// `EvalDecision`: `allowed`, `explicitDeny` or `implicitDeny`.
    pub decision: &'static str,
    /// `MatchedStatements`.
    pub matched: Vec<MatchedStatement>,
    /// podid's explanation of the decision.
    pub explanation: String,
}

impl Iam<'_> {
    /// SimulatePrincipalPolicy (with `source_arn`) or SimulateCustomPolicy (without).
    pub async fn simulate(
        self,
        caller: &Caller,
        input: SimulateInput,
    ) -> Result<Vec<EvaluationResult>, Error> {
        let mut sources: Vec<(SimulationPolicy, PolicyKind)> = Vec::new();
        let principal = match &input.source_arn {
            Some(source) => {
                self.core
                    .authorize(caller, "iam:SimulatePrincipalPolicy", source, &[])?;
                let (principal, mut policies) = self.source_policies(caller, source).await?;
                sources.append(&mut policies);
                principal
            }
            None => {
                self.core
                    .authorize(caller, "iam:SimulateCustomPolicy", "*", &[])?;
                match &input.caller_arn {
                    Some(arn) => simulated_principal(arn)?,
                    None => Principal::user(
                        &format!("arn:aws:iam::{}:user/simulated", caller.account()),
                        "",
                    )
                    .map_err(|e| Error::InvalidInput(e.to_string()))?,
                }
            }
        };
        for (i, document) in input.policies.iter().enumerate() {
            sources.push((
                SimulationPolicy {
                    id: format!("PolicyInputList.{}", i + 1),
                    source_type: "none",
                    document: document.clone(),
                },
                PolicyKind::Identity,
            ));
        }
        for (i, document) in input.boundaries.iter().enumerate() {
            sources.push((
                SimulationPolicy {
                    id: format!("PermissionsBoundaryPolicyInputList.{}", i + 1),
                    source_type: "none",
                    document: document.clone(),
                },
                PolicyKind::Boundary,
            ));
        }
        if let Some(document) = &input.resource_policy {
            sources.push((
                SimulationPolicy {
                    id: "ResourcePolicy".into(),
                    source_type: "resource",
                    document: document.clone(),
                },
                PolicyKind::Resource,
            ));
        }
        let mut set = PolicySet::new();
        let mut names: Vec<(PolicyKind, SimulationPolicy)> = Vec::new();
        for (source, kind) in sources {
            let policy = self
                .core
                .parse(&source.document, ParseOptions::simulation(kind))
                .map_err(|e| Error::policy(&e))?;
            set = set.with(kind, NamedPolicy::new(source.id.clone(), policy));
            names.push((kind, source));
        }
        let mut context = Context::new();
        let now = self.core.clock.now();
        context.insert("aws:CurrentTime", now.to_iso8601());
        context.insert("aws:EpochTime", now.as_secs().to_string());
        for (key, values, list) in &input.context {
            let value = match (values.as_slice(), list) {
                ([one], false) => ContextValue::One(one.clone()),
                _ => ContextValue::Many(values.clone()),
            };
            context.insert(key, value);
        }
        let resources = if input.resources.is_empty() {
            vec!["*".to_owned()]
        } else {
            input.resources.clone()
        };
        let owner: Option<AccountId> = input.resource_owner.as_deref().and_then(|o| {
            o.parse()
                .ok()
                .or_else(|| o.parse::<Arn>().ok().and_then(|a| a.account().parse().ok()))
        });
        let mut results = Vec::new();
        for action in &input.actions {
            for resource in &resources {
                let resource_account = owner.or_else(|| {
                    resource
                        .parse::<Arn>()
                        .ok()
                        .and_then(|a| a.account().parse().ok())
                });
                let request = Request::new(&principal, action, resource, &context)
                    .with_ownership(Ownership::of(&principal, resource_account));
                let decision = set.evaluate(&request);
                let matched = decision
                    .matches()
                    .iter()
                    .filter_map(|m| {
                        let (_, statement) = set.statement(m)?;
                        let policies_of_kind: Vec<&SimulationPolicy> = names
                            .iter()
                            .filter(|(k, _)| {
                                *k == m.kind
                                    || (m.kind == PolicyKind::Trust && *k == PolicyKind::Resource)
                            })
                            .map(|(_, p)| p)
                            .collect();
                        let source = policies_of_kind.get(m.policy)?;
                        let position = statement.position();
                        Some(MatchedStatement {
                            source_policy_id: source.id.clone(),
                            source_policy_type: source.source_type.to_owned(),
                            start: position.start,
                            end: position.end,
                        })
                    })
                    .collect();
                results.push(EvaluationResult {
                    action: action.clone(),
                    resource: resource.clone(),
                    decision: match decision.outcome() {
                        Outcome::Allow => "allowed",
                        Outcome::ExplicitDeny => "explicitDeny",
                        Outcome::ImplicitDeny => "implicitDeny",
                    },
                    matched,
                    explanation: decision.explain(&set, &request).summary,
                });
            }
        }
        Ok(results)
    }

    /// The principal of a user or role of the caller's account and its policies.
    async fn source_policies(
        self,
        caller: &Caller,
        source: &str,
    ) -> Result<(Principal, Vec<(SimulationPolicy, PolicyKind)>), Error> {
        let arn: Arn = source
            .parse()
            .map_err(|_| Error::InvalidInput(format!("ARN {source} is not valid.")))?;
        let account = arn.account().to_owned();
        if account != caller.account().to_string() {
            return Err(Error::NoSuchEntity(format!(
                "The principal {source} cannot be found."
            )));
        }
        let name = arn
            .resource()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let (principal, holder, kind) = if arn.resource().starts_with("user/") {
            let (user, _) = self
                .core
                .load::<UserRecord>(ns::USER, &entity_key(&account, &name))
                .await?
                .filter(|(u, _)| u.arn == source)
                .ok_or_else(|| {
                    Error::NoSuchEntity(format!("The user with name {name} cannot be found."))
                })?;
            let principal = Principal::user(&user.arn, &user.id)
                .map_err(|e| Error::InvalidInput(e.to_string()))?;
            (principal, user.policies, "user")
        } else if arn.resource().starts_with("role/") {
            let (role, _) = self
                .core
                .load::<RoleRecord>(ns::ROLE, &entity_key(&account, &name))
                .await?
                .filter(|(r, _)| r.arn == source)
                .ok_or_else(|| {
                    Error::NoSuchEntity(format!("The role with name {name} cannot be found."))
                })?;
            let session = format!(
                "arn:aws:sts::{account}:assumed-role/{}/simulation",
                role.name
            );
            let principal = Principal::assumed_role(&session, &role.arn, &role.id)
                .map_err(|e| Error::InvalidInput(e.to_string()))?;
            (principal, role.policies, "role")
        } else {
            return Err(Error::InvalidInput(format!("ARN {source} is not valid.")));
        };
        let mut out = Vec::new();
        for (policy_name, document) in &holder.inline {
            out.push((
                SimulationPolicy {
                    id: policy_name.clone(),
                    source_type: kind,
                    document: document.clone(),
                },
                PolicyKind::Identity,
            ));
        }
        for policy_arn in &holder.attached {
            if let Some(document) = self.core.managed_document(&account, policy_arn).await? {
                let source_type = if catalogue::find(policy_arn).is_some() {
                    "aws-managed"
                } else {
                    "user-managed"
                };
                out.push((
                    SimulationPolicy {
                        id: policy_arn.clone(),
                        source_type,
                        document,
                    },
                    PolicyKind::Identity,
                ));
            }
        }
        if let Some(boundary) = &holder.boundary
            && let Some(document) = self.core.managed_document(&account, boundary).await?
        {
            out.push((
                SimulationPolicy {
                    id: boundary.clone(),
                    source_type: "permissions-boundary",
                    document,
                },
                PolicyKind::Boundary,
            ));
        }
        Ok((principal, out))
    }
}

/// The principal a `CallerArn` names.
fn simulated_principal(arn: &str) -> Result<Principal, Error> {
    let invalid = || Error::InvalidInput(format!("ARN {arn} is not valid."));
    let parsed: Arn = arn.parse().map_err(|_| invalid())?;
    let resource = parsed.resource();
    if resource.starts_with("user/") {
        Principal::user(arn, "").map_err(|_| invalid())
    } else if let Some(rest) = resource.strip_prefix("assumed-role/") {
        let role = rest.split('/').next().unwrap_or_default();
        Principal::assumed_role(
            arn,
            &format!("arn:aws:iam::{}:role/{role}", parsed.account()),
            "",
        )
        .map_err(|_| invalid())
    } else if resource.starts_with("role/") {
        let name = resource.rsplit('/').next().unwrap_or_default();
        let session = format!(
            "arn:aws:sts::{}:assumed-role/{name}/simulation",
            parsed.account()
        );
        Principal::assumed_role(&session, arn, "").map_err(|_| invalid())
    } else if resource == "root" {
        Ok(Principal::root(
            parsed.account().parse().map_err(|_| invalid())?,
        ))
    } else {
        Err(invalid())
    }
}

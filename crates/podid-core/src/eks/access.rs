//! The access graph (`podid access`): which service account, in which cluster, can obtain which
//! role, through which chain, and why.
//!
//! Every edge is decided by the same code that issues credentials ([`Sts::decide`], the assume
//! core without the sealing), so the graph cannot disagree with the server:
//! - `podIdentity`: an association's role, assumed as `pods.eks.amazonaws.com` with the six
//!   session tags EKS Auth would pass (the pod's name and uid are unknown here and left out,
//!   and every session of the graph is named `podid-access-graph`);
//! - `targetRole`: the association's target role, assumed as that session with the
//!   association's external id and session policy;
//! - `webIdentity` (IRSA): a role whose trust names the IAM OIDC provider of the cluster's issuer
//!   (in any account podid hosts), decided for each known service account's subject, and for
//!   each wildcard or missing `sub` condition as a node that stands for many service accounts;
//! - `assumeRole`: onward role chaining from the session a pod ends with: the session's policies
//!   and the next role's trust, with the inherited transitive tags, and the external ids the next
//!   trust asks for, to a bounded depth.
//!
//! Reading only: nothing is written, no credentials are sealed.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use podid_policy::{Explanation, Grant, PolicyKind};
use serde::Serialize;
use serde_json::Value;

use super::pod_identity::PodClaims;
use super::records::{AssociationRecord, ClusterRecord, ns};
use super::service_accounts::ServiceAccountRecord;
use super::{Eks, PODS_SERVICE, key, names};
use crate::auth::Caller;
use crate::error::Error;
use crate::records::{OidcRecord, RoleRecord, ns as iam_ns};
use crate::sts::{AssumeRole, Assumer, Claims, OpenedSession, WebIdentity};

/// The version of the graph's JSON schema (docs/access-graph.md).
pub const SCHEMA_VERSION: u32 = 1;

/// How many hops a path has at most when the query does not say.
pub const DEFAULT_DEPTH: u32 = 4;

/// The most hops a query may ask for.
pub const MAX_DEPTH: u32 = 8;

/// The most records of one kind the graph reads; beyond, it says it is truncated.
const READ_LIMIT: usize = 100_000;

/// The audience IRSA's webhook puts in projected tokens unless the service account says another.
const IRSA_AUDIENCE: &str = "sts.amazonaws.com";

/// The session name the graph's hypothetical sessions carry.
const SESSION_NAME: &str = "podid-access-graph";

/// What the graph is asked about.
#[derive(Clone, Debug, Default)]
pub struct AccessQuery {
    /// The region of `cluster`.
    pub region: String,
    /// One cluster of the caller's account; `None`: every cluster of the caller's account, in
    /// every region.
    pub cluster: Option<String>,
    /// Only this namespace's service accounts.
    pub namespace: Option<String>,
    /// Only this service account (with `namespace`).
    pub service_account: Option<String>,
    /// Reverse: only the paths that reach this role, from every cluster podid hosts.
    pub role: Option<String>,
    /// The most hops of a path ([`DEFAULT_DEPTH`] when `None`; at most [`MAX_DEPTH`]).
    pub max_depth: Option<u32>,
}

/// The graph: who can reach what, and why.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessGraph {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The most hops a path was followed.
    pub max_depth: u32,
    /// Service accounts, sets of service accounts, and roles; sorted by id.
    pub nodes: Vec<Node>,
    /// Who may assume what; sorted by (from, to, via).
    pub edges: Vec<Edge>,
    /// For each service account (or set), each role whose credentials its pods can hold, by its
    /// shortest path; sorted.
    pub reach: Vec<Reach>,
    /// What a security engineer should look at, each with its fix; sorted.
    pub findings: Vec<Finding>,
    /// Whether a limit cut the graph short (the depth, or more than 100,000 records of a kind).
    pub truncated: bool,
}

/// A node of the graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// `serviceaccount:CLUSTER_ARN/NAMESPACE/NAME`, `subjects:CLUSTER_ARN/PATTERN` or a role ARN.
    pub id: String,
    /// `serviceAccount`, `serviceAccounts` (every service account a `sub` pattern admits) or
    /// `role`.
    pub kind: &'static str,
    /// What a person reads.
    pub label: String,
    /// The cluster's ARN, for service accounts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The namespace, for a service account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The name, for a service account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// The `sub` pattern, for a set of service accounts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The account, for a role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// An edge: `from` can obtain credentials of `to`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Edge {
    /// `e1`, `e2`, ... in the graph's order.
    pub id: String,
    /// A node id.
    pub from: String,
    /// A role ARN.
    pub to: String,
    /// `podIdentity`, `targetRole`, `webIdentity` or `assumeRole`.
    pub via: &'static str,
    /// The Pod Identity association, for `podIdentity` and `targetRole`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub association: Option<String>,
    /// The IAM OIDC provider, for `webIdentity`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Whether the pod holds only the next hop's credentials (an association role with a target
    /// role: EKS Auth returns the target's).
    pub intermediate: bool,
    /// The statements that allow each action the hop needs.
    pub reasons: Vec<Reason>,
    /// What must hold for the hop, beyond who asks: an external id, a `sub` pattern.
    pub conditions: Vec<Requirement>,
}

/// A statement that allows a hop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reason {
    /// The action: `sts:AssumeRole`, `sts:TagSession`, ...
    pub action: &'static str,
    /// `trust`, `identity`, `boundary` or `session`.
    pub policy_type: &'static str,
    /// The policy: `role trust policy`, `inline:NAME`, a managed policy's ARN, `session policy`.
    pub policy: String,
    /// The role whose policy it is (the trust policy's is the role assumed; the others are the
    /// session's role).
    pub holder: String,
    /// The statement's index in its policy, from 0.
    pub statement: usize,
    /// Its `Sid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Where it starts in the policy document (1-based line).
    pub line: usize,
    /// And column.
    pub column: usize,
    /// How a trust statement names the caller: `account`, `role`, `direct` or `everyone`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<&'static str>,
}

/// A condition a hop needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Requirement {
    /// The condition key: `sts:ExternalId`, `HOST/PATH:sub`.
    pub key: String,
    /// The value the hop needs.
    pub value: String,
}

/// For a service account (or set), a role its pods can hold, and how.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reach {
    /// The service account's (or set's) node id.
    pub from: String,
    /// The role.
    pub role: String,
    /// How many hops.
    pub depth: u32,
    /// The edges, in order.
    pub path: Vec<String>,
}

/// Something to fix.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// `high`, `medium` or `low`.
    pub severity: &'static str,
    /// A stable name: `IrsaTrustWithoutSub`, `TrustOfAccountRoot`, `CrossAccountWithoutExternalId`,
    /// `AssociationRoleRefuses`, `TargetRoleRefuses`, `DanglingAssociation`.
    pub kind: &'static str,
    /// What it is about: a role ARN or an association id.
    pub subject: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl Eks<'_> {
    /// The access graph of `query`, authorized as `podid:GetAccessGraph` on each cluster it
    /// starts from (forward) or on the role (reverse).
    pub async fn access_graph(
        self,
        caller: &Caller,
        query: &AccessQuery,
    ) -> Result<AccessGraph, Error> {
        let max_depth = query.max_depth.unwrap_or(DEFAULT_DEPTH);
        if !(1..=MAX_DEPTH).contains(&max_depth) {
            return Err(Error::InvalidParameter(format!(
                "The depth `{max_depth}` is out of range: a path may have 1 to {MAX_DEPTH} hops."
            )));
        }
        if query.service_account.is_some() && query.namespace.is_none() {
            return Err(Error::InvalidParameter(
                "A service account needs its namespace: pass the namespace too.".into(),
            ));
        }
        if let Some(namespace) = &query.namespace {
            names::namespace(namespace)?;
        }
        if let Some(name) = &query.service_account {
            names::service_account(name)?;
        }
        let mut walk = Walk::load(self, max_depth).await?;
        let clusters = match (&query.role, &query.cluster) {
            (Some(role), _) => {
                self.core
                    .authorize(caller, "podid:GetAccessGraph", role, &[])?;
                walk.clusters.clone()
            }
            (None, Some(name)) => {
                let (cluster, _) = self
                    .cluster_for(caller, "podid:GetAccessGraph", &query.region, name)
                    .await?;
                vec![cluster]
            }
            (None, None) => {
                let account = caller.account().to_string();
                let mine: Vec<ClusterRecord> = walk
                    .clusters
                    .iter()
                    .filter(|c| c.account == account)
                    .cloned()
                    .collect();
                for cluster in &mine {
                    self.core
                        .authorize(caller, "podid:GetAccessGraph", &cluster.arn, &[])?;
                }
                mine
            }
        };
        let scope = Scope {
            namespace: query.namespace.clone(),
            service_account: query.service_account.clone(),
        };
        for cluster in &clusters {
            walk.cluster(cluster, &scope).await?;
        }
        let mut graph = walk.finish();
        if let Some(role) = &query.role {
            graph.keep_paths_to(role);
        }
        Ok(graph)
    }
}

/// Which service accounts a query is about.
struct Scope {
    namespace: Option<String>,
    service_account: Option<String>,
}

impl Scope {
    fn admits(&self, namespace: &str, name: &str) -> bool {
        self.namespace.as_deref().is_none_or(|n| n == namespace)
            && self.service_account.as_deref().is_none_or(|n| n == name)
    }

    /// Whether a `sub` pattern admits a service account of the scope.
    fn admits_pattern(&self, pattern: &str) -> bool {
        match (&self.namespace, &self.service_account) {
            (Some(namespace), Some(name)) => podid_policy::string_like(
                pattern,
                &format!("system:serviceaccount:{namespace}:{name}"),
            ),
            (Some(namespace), None) => {
                glob_extends(pattern, &format!("system:serviceaccount:{namespace}:"))
            }
            _ => true,
        }
    }
}

/// A role and what its trust policy names, read once.
struct RoleEntry {
    record: RoleRecord,
    /// The roles its trust names through AWS principals (their ARNs), the accounts it names
    /// otherwise (a root, an account id, a session ARN), and whether it names everyone.
    aws_roles: BTreeSet<String>,
    aws_accounts: BTreeSet<String>,
    everyone: bool,
    /// The IAM OIDC providers it names (`Principal.Federated`), each with the `sub` patterns of
    /// the statements that name it (`None` for a statement without a `sub` condition).
    federated: BTreeMap<String, Vec<Option<String>>>,
    /// The values of `sts:ExternalId` conditions.
    external_ids: Vec<String>,
}

/// The graph while it is built.
struct Walk<'a> {
    eks: Eks<'a>,
    max_depth: u32,
    clusters: Vec<ClusterRecord>,
    roles: Vec<RoleEntry>,
    by_arn: HashMap<String, usize>,
    /// Roles whose trust names an account's AWS principals, by account; and those naming `*`.
    /// Roles whose trust names a role, by its ARN; an account (its root, or any principal of
    /// it but a role), by account; and those naming everyone.
    by_role: HashMap<String, Vec<usize>>,
    by_account: HashMap<String, Vec<usize>>,
    everyone: Vec<usize>,
    providers: Vec<OidcRecord>,
    nodes: BTreeMap<String, Node>,
    edges: BTreeMap<EdgeKey, Edge>,
    reach: BTreeMap<(String, String), (u32, Vec<EdgeKey>)>,
    findings: BTreeSet<Finding>,
    /// Onward hops of a session, by what decides them.
    hops: HashMap<String, Vec<Hop>>,
    truncated: bool,
}

/// What makes an edge one: (from, to, via, association).
type EdgeKey = (String, String, &'static str, Option<String>);

/// A hop a session can make.
#[derive(Clone)]
struct Hop {
    to: String,
    claims: Claims,
    reasons: Vec<Reason>,
    conditions: Vec<Requirement>,
}

/// A session a path has reached, to be followed.
struct Frontier {
    from: String,
    role: String,
    claims: Claims,
    path: Vec<EdgeKey>,
}

impl<'a> Walk<'a> {
    async fn load(eks: Eks<'a>, max_depth: u32) -> Result<Self, Error> {
        let store = &eks.core.store;
        let mut truncated = false;
        let mut read = |items: Vec<podid_store::Item>| {
            truncated |= items.len() >= READ_LIMIT;
            items
        };
        let clusters: Vec<ClusterRecord> =
            read(store.scan(ns::CLUSTER, "", None, READ_LIMIT).await?)
                .iter()
                .map(crate::decode)
                .collect::<Result<_, _>>()?;
        let records: Vec<RoleRecord> = read(store.scan(iam_ns::ROLE, "", None, READ_LIMIT).await?)
            .iter()
            .map(crate::decode)
            .collect::<Result<_, _>>()?;
        let providers: Vec<OidcRecord> =
            read(store.scan(iam_ns::OIDC, "", None, READ_LIMIT).await?)
                .iter()
                .map(crate::decode)
                .collect::<Result<_, _>>()?;
        let mut walk = Walk {
            eks,
            max_depth,
            clusters,
            roles: Vec::with_capacity(records.len()),
            by_arn: HashMap::new(),
            by_role: HashMap::new(),
            by_account: HashMap::new(),
            everyone: Vec::new(),
            providers,
            nodes: BTreeMap::new(),
            edges: BTreeMap::new(),
            reach: BTreeMap::new(),
            findings: BTreeSet::new(),
            hops: HashMap::new(),
            truncated,
        };
        for record in records {
            let entry = RoleEntry::read(record);
            let index = walk.roles.len();
            walk.by_arn.insert(entry.record.arn.clone(), index);
            for role in &entry.aws_roles {
                walk.by_role.entry(role.clone()).or_default().push(index);
            }
            for account in &entry.aws_accounts {
                walk.by_account
                    .entry(account.clone())
                    .or_default()
                    .push(index);
            }
            if entry.everyone {
                walk.everyone.push(index);
            }
            walk.roles.push(entry);
        }
        Ok(walk)
    }

    /// Everything that starts in `cluster`'s service accounts.
    async fn cluster(&mut self, cluster: &ClusterRecord, scope: &Scope) -> Result<(), Error> {
        let prefix = format!(
            "{}/",
            key(&[&cluster.account, &cluster.region, &cluster.name])
        );
        let store = &self.eks.core.store;
        let associations: Vec<AssociationRecord> = store
            .scan(ns::ASSOCIATION, &prefix, None, READ_LIMIT)
            .await?
            .iter()
            .map(crate::decode)
            .collect::<Result<_, _>>()?;
        let accounts: Vec<ServiceAccountRecord> = store
            .scan(ns::SERVICE_ACCOUNT, &prefix, None, READ_LIMIT)
            .await?
            .iter()
            .map(crate::decode)
            .collect::<Result<_, _>>()?;
        // The service accounts the graph knows: with an association, kept by podid, or named
        // exactly by an IRSA trust.
        let mut known: BTreeMap<(String, String), Option<String>> = BTreeMap::new();
        for sa in &accounts {
            known.insert(
                (sa.namespace.clone(), sa.name.clone()),
                sa.annotations.get("eks.amazonaws.com/audience").cloned(),
            );
        }
        for association in &associations {
            known
                .entry((
                    association.namespace.clone(),
                    association.service_account.clone(),
                ))
                .or_default();
        }
        let url = cluster
            .issuer
            .strip_prefix("https://")
            .unwrap_or(&cluster.issuer)
            .trim_end_matches('/')
            .to_owned();
        let providers: Vec<OidcRecord> = self
            .providers
            .iter()
            .filter(|p| p.url == url)
            .cloned()
            .collect();
        let mut irsa: Vec<(OidcRecord, usize)> = Vec::new();
        for provider in &providers {
            for (index, role) in self.roles.iter().enumerate() {
                if role.federated.contains_key(&provider.arn) {
                    irsa.push((provider.clone(), index));
                }
            }
        }
        let mut patterns: BTreeSet<(String, usize)> = BTreeSet::new();
        for (provider, index) in &irsa {
            let Some(role) = self.roles.get(*index) else {
                continue;
            };
            let Some(subjects) = role.federated.get(&provider.arn) else {
                continue;
            };
            for subject in subjects {
                match subject {
                    None => {
                        patterns.insert(("*".into(), *index));
                        self.findings.insert(Finding {
                            severity: "high",
                            kind: "IrsaTrustWithoutSub",
                            subject: role.record.arn.clone(),
                            message: format!(
                                "role `{}` trusts the OIDC provider `{}` without a `sub` condition: every service account of every cluster with that issuer can assume it",
                                role.record.arn, provider.arn
                            ),
                            fix: format!(
                                "add `\"StringEquals\": {{\"{url}:sub\": \"system:serviceaccount:NAMESPACE:NAME\", \"{url}:aud\": \"sts.amazonaws.com\"}}` to the trust statement"
                            ),
                        });
                    }
                    Some(pattern) if pattern.contains(['*', '?']) => {
                        patterns.insert((pattern.clone(), *index));
                    }
                    Some(exact) => {
                        if let Some((namespace, name)) = service_account_of(exact) {
                            known.entry((namespace, name)).or_default();
                        }
                    }
                }
            }
        }
        let mut frontier = VecDeque::new();
        // Pod Identity.
        for association in &associations {
            if scope.admits(&association.namespace, &association.service_account) {
                self.association(cluster, association, &mut frontier)
                    .await?;
            }
        }
        // IRSA, for each known service account.
        for ((namespace, name), audience) in &known {
            if !scope.admits(namespace, name) {
                continue;
            }
            let subject = format!("system:serviceaccount:{namespace}:{name}");
            let from = self.service_account_node(cluster, namespace, name);
            for (provider, index) in &irsa {
                let audience = audience.as_deref().unwrap_or(IRSA_AUDIENCE);
                self.web_identity(
                    &from,
                    provider,
                    *index,
                    &subject,
                    audience,
                    None,
                    &mut frontier,
                )
                .await?;
            }
        }
        // IRSA, for each `sub` pattern: the set of service accounts it admits.
        for (pattern, index) in &patterns {
            if !scope.admits_pattern(pattern) {
                continue;
            }
            let from = format!("subjects:{}/{pattern}", cluster.arn);
            self.nodes.entry(from.clone()).or_insert_with(|| Node {
                id: from.clone(),
                kind: "serviceAccounts",
                label: if matches!(
                    pattern.as_str(),
                    "*" | "system:serviceaccount:*" | "system:serviceaccount:*:*"
                ) {
                    format!("every service account of {}", cluster.name)
                } else {
                    format!("{}: `{pattern}`", cluster.name)
                },
                cluster: Some(cluster.arn.clone()),
                namespace: None,
                service_account: None,
                subject: Some(pattern.clone()),
                account: None,
            });
            let sample = sample_subject(pattern);
            for (provider, provider_index) in &irsa {
                if provider_index == index {
                    self.web_identity(
                        &from,
                        provider,
                        *index,
                        &sample,
                        IRSA_AUDIENCE,
                        Some(pattern),
                        &mut frontier,
                    )
                    .await?;
                }
            }
        }
        self.chains(frontier).await
    }

    /// An association's hops: its role as `pods.eks.amazonaws.com`, then its target role.
    async fn association(
        &mut self,
        cluster: &ClusterRecord,
        association: &AssociationRecord,
        frontier: &mut VecDeque<Frontier>,
    ) -> Result<(), Error> {
        let from = self.service_account_node(
            cluster,
            &association.namespace,
            &association.service_account,
        );
        let claims = PodClaims {
            namespace: association.namespace.clone(),
            service_account: association.service_account.clone(),
            pod: None,
        };
        let auth = self.eks.core.eks_auth();
        for role in std::iter::once(&association.role_arn).chain(&association.target_role_arn) {
            if !self.by_arn.contains_key(role) {
                self.findings.insert(Finding {
                    severity: "high",
                    kind: "DanglingAssociation",
                    subject: association.id.clone(),
                    message: format!(
                        "association `{}` ({}/{} in {}) names role `{role}`, which does not exist: its pods get AccessDenied",
                        association.id, association.namespace, association.service_account, cluster.name
                    ),
                    fix: format!(
                        "create the role again, or point the association at another role: `aws eks update-pod-identity-association --cluster-name {} --association-id {} --role-arn ARN`, or delete it",
                        cluster.name, association.id
                    ),
                });
                return Ok(());
            }
        }
        let first = self
            .eks
            .core
            .sts()
            .decide(
                Assumer::Service(PODS_SERVICE),
                &AssumeRole {
                    session_name: SESSION_NAME.into(),
                    ..auth.first_request(cluster, association, &claims)
                },
                true,
            )
            .await;
        let first = match first {
            Ok(decided) => decided,
            Err(Error::AccessDenied(why)) => {
                self.findings.insert(Finding {
                    severity: "high",
                    kind: "AssociationRoleRefuses",
                    subject: association.id.clone(),
                    message: format!(
                        "the role of association `{}` ({}/{} in {}) refuses EKS Pod Identity: {why}",
                        association.id, association.namespace, association.service_account, cluster.name
                    ),
                    fix: format!(
                        "let `{PODS_SERVICE}` assume the role and tag the session: a trust statement `{{\"Effect\": \"Allow\", \"Principal\": {{\"Service\": \"{PODS_SERVICE}\"}}, \"Action\": [\"sts:AssumeRole\", \"sts:TagSession\"]}}` (aws iam update-assume-role-policy)"
                    ),
                });
                return Ok(());
            }
            Err(other) => return Err(other),
        };
        let role = association.role_arn.clone();
        let target = association.target_role_arn.clone();
        let first_edge = self.edge(Edge {
            id: String::new(),
            from: from.clone(),
            to: role.clone(),
            via: "podIdentity",
            association: Some(association.id.clone()),
            provider: None,
            intermediate: target.is_some(),
            reasons: reasons(&first.explanations, &role, &role),
            conditions: Vec::new(),
        });
        let Some(target) = target else {
            self.reached(&from, &role, vec![first_edge.clone()]);
            frontier.push_back(Frontier {
                from,
                role,
                claims: first.claims,
                path: vec![first_edge],
            });
            return Ok(());
        };
        let session = self
            .eks
            .core
            .session_caller(&OpenedSession::unsealed(first.claims))
            .await?;
        let request = AssumeRole {
            session_name: SESSION_NAME.into(),
            ..auth.target_request(cluster, association, &claims, &target)
        };
        let second = self
            .eks
            .core
            .sts()
            .decide(Assumer::Caller(&session), &request, true)
            .await;
        let second = match second {
            Ok(decided) => decided,
            Err(Error::AccessDenied(why)) => {
                self.findings.insert(Finding {
                    severity: "high",
                    kind: "TargetRoleRefuses",
                    subject: association.id.clone(),
                    message: format!(
                        "association `{}` ({}/{} in {}): role `{role}` may not assume the target role `{target}`: {why}",
                        association.id, association.namespace, association.service_account, cluster.name
                    ),
                    fix: format!(
                        "allow `sts:AssumeRole` and `sts:TagSession` on `{target}` in a policy of `{role}`, and trust `{role}` in `{target}`'s trust policy{}",
                        association
                            .external_id
                            .as_deref()
                            .map(|id| format!(" with `\"StringEquals\": {{\"sts:ExternalId\": \"{id}\"}}`"))
                            .unwrap_or_default()
                    ),
                });
                return Ok(());
            }
            Err(other) => return Err(other),
        };
        let mut conditions = Vec::new();
        if let Some(external_id) = &association.external_id {
            let without = AssumeRole {
                external_id: None,
                ..request.clone()
            };
            let needed = self
                .eks
                .core
                .sts()
                .decide(Assumer::Caller(&session), &without, false)
                .await
                .is_err();
            if needed {
                conditions.push(Requirement {
                    key: "sts:ExternalId".into(),
                    value: external_id.clone(),
                });
            }
        }
        let edge = Edge {
            id: String::new(),
            from: role.clone(),
            to: target.clone(),
            via: "targetRole",
            association: Some(association.id.clone()),
            provider: None,
            intermediate: false,
            reasons: reasons(&second.explanations, &role, &target),
            conditions,
        };
        self.trust_findings(&edge);
        let second_edge = self.edge(edge);
        let path = vec![first_edge, second_edge];
        self.reached(&from, &target, path.clone());
        frontier.push_back(Frontier {
            from,
            role: target,
            claims: second.claims,
            path,
        });
        Ok(())
    }

    /// An IRSA hop from `from` (a service account, or a set of them when `pattern` is given) to
    /// the role at `index`, decided for the `subject`.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site per kind of source"
    )]
    async fn web_identity(
        &mut self,
        from: &str,
        provider: &OidcRecord,
        index: usize,
        subject: &str,
        audience: &str,
        pattern: Option<&String>,
        frontier: &mut VecDeque<Frontier>,
    ) -> Result<(), Error> {
        if !provider.client_ids.iter().any(|id| id == audience) {
            // AssumeRoleWithWebIdentity refuses the token ("Incorrect token audience").
            return Ok(());
        }
        let Some(role) = self.roles.get(index).map(|r| r.record.arn.clone()) else {
            return Ok(());
        };
        let identity = WebIdentity {
            provider_arn: provider.arn.clone(),
            provider_url: provider.url.clone(),
            subject: subject.to_owned(),
            audience: audience.to_owned(),
            amr: Vec::new(),
        };
        let request = AssumeRole {
            role_arn: role.clone(),
            session_name: SESSION_NAME.into(),
            ..Default::default()
        };
        let decided = match self
            .eks
            .core
            .sts()
            .decide(Assumer::WebIdentity(&identity), &request, true)
            .await
        {
            Ok(decided) => decided,
            Err(Error::AccessDenied(_)) => return Ok(()),
            Err(other) => return Err(other),
        };
        let conditions = pattern
            .map(|p| Requirement {
                key: format!("{}:sub", provider.url),
                value: p.clone(),
            })
            .into_iter()
            .collect();
        let edge = self.edge(Edge {
            id: String::new(),
            from: from.to_owned(),
            to: role.clone(),
            via: "webIdentity",
            association: None,
            provider: Some(provider.arn.clone()),
            intermediate: false,
            reasons: reasons(&decided.explanations, &role, &role),
            conditions,
        });
        self.reached(from, &role, vec![edge.clone()]);
        frontier.push_back(Frontier {
            from: from.to_owned(),
            role,
            claims: decided.claims,
            path: vec![edge],
        });
        Ok(())
    }

    /// Follows each session of `frontier` through `sts:AssumeRole`, breadth first, to the
    /// depth bound; a session is followed once per source and [`session_state`]: a role
    /// reached again with other tags or session policies is followed again, since what it
    /// may assume next can differ (a shorter path without a transitive tag must not hide a
    /// longer one with it).
    async fn chains(&mut self, mut frontier: VecDeque<Frontier>) -> Result<(), Error> {
        let mut seen: BTreeSet<(String, String)> = frontier
            .iter()
            .map(|f| (f.from.clone(), session_state(&f.role, &f.claims)))
            .collect();
        while let Some(at) = frontier.pop_front() {
            if at.path.len() as u32 >= self.max_depth {
                if !self.next_hops(&at.role, &at.claims).await?.is_empty() {
                    self.truncated = true;
                }
                continue;
            }
            for hop in self.next_hops(&at.role, &at.claims).await? {
                let edge = self.edge(Edge {
                    id: String::new(),
                    from: at.role.clone(),
                    to: hop.to.clone(),
                    via: "assumeRole",
                    association: None,
                    provider: None,
                    intermediate: false,
                    reasons: hop.reasons,
                    conditions: hop.conditions,
                });
                if !seen.insert((at.from.clone(), session_state(&hop.to, &hop.claims))) {
                    continue;
                }
                let mut path = at.path.clone();
                path.push(edge);
                self.reached(&at.from, &hop.to, path.clone());
                frontier.push_back(Frontier {
                    from: at.from.clone(),
                    role: hop.to,
                    claims: hop.claims,
                    path,
                });
            }
        }
        Ok(())
    }

    /// The roles a session of `role` may assume, each decided by the engine; remembered by what
    /// decides them (the role, the session's tags, source identity and session policies).
    async fn next_hops(&mut self, role: &str, claims: &Claims) -> Result<Vec<Hop>, Error> {
        let memo = session_state(role, claims);
        if let Some(hops) = self.hops.get(&memo) {
            return Ok(hops.clone());
        }
        let mut candidates: Vec<usize> = self
            .by_role
            .get(role)
            .into_iter()
            .flatten()
            .chain(self.by_account.get(&claims.account).into_iter().flatten())
            .chain(&self.everyone)
            .copied()
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        let session = self
            .eks
            .core
            .session_caller(&OpenedSession::unsealed(claims.clone()))
            .await?;
        let mut hops = Vec::new();
        for index in candidates {
            let Some(entry) = self.roles.get(index) else {
                continue;
            };
            let to = entry.record.arn.clone();
            if to == role {
                continue;
            }
            let mut request = AssumeRole {
                role_arn: to.clone(),
                session_name: SESSION_NAME.into(),
                ..Default::default()
            };
            let external_ids = entry.external_ids.clone();
            let sts = self.eks.core.sts();
            let mut decided = sts.decide(Assumer::Caller(&session), &request, true).await;
            let mut conditions = Vec::new();
            for external_id in external_ids {
                if !matches!(decided, Err(Error::AccessDenied(_))) {
                    break;
                }
                request.external_id = Some(external_id.clone());
                decided = sts.decide(Assumer::Caller(&session), &request, true).await;
                if decided.is_ok() {
                    conditions.push(Requirement {
                        key: "sts:ExternalId".into(),
                        value: external_id,
                    });
                }
            }
            match decided {
                Ok(decided) => {
                    let hop = Hop {
                        reasons: reasons(&decided.explanations, role, &to),
                        to,
                        claims: decided.claims,
                        conditions,
                    };
                    hops.push(hop);
                }
                // Denied, or refused before the decision (a chained session that cannot carry
                // its transitive tags, say): no edge.
                Err(
                    Error::AccessDenied(_) | Error::Validation(_) | Error::PackedPolicyTooLarge(_),
                ) => {}
                Err(other) => return Err(other),
            }
        }
        for hop in &hops {
            let edge = Edge {
                id: String::new(),
                from: role.to_owned(),
                to: hop.to.clone(),
                via: "assumeRole",
                association: None,
                provider: None,
                intermediate: false,
                reasons: hop.reasons.clone(),
                conditions: hop.conditions.clone(),
            };
            self.trust_findings(&edge);
        }
        self.hops.insert(memo, hops.clone());
        Ok(hops)
    }

    /// The findings an allowed role-to-role hop raises: a trust of an account root; a hop across
    /// accounts without an external id.
    fn trust_findings(&mut self, edge: &Edge) {
        if edge
            .reasons
            .iter()
            .any(|r| r.policy_type == "trust" && r.grant == Some("account"))
        {
            let account = account_named(&edge.from).unwrap_or_default();
            self.findings.insert(Finding {
                severity: "medium",
                kind: "TrustOfAccountRoot",
                subject: edge.to.clone(),
                message: format!(
                    "role `{}` trusts account {account}'s root: any principal of that account whose own policies allow `sts:AssumeRole` on it can assume it, not only `{}`",
                    edge.to, edge.from
                ),
                fix: format!(
                    "name the role in the trust statement: `\"Principal\": {{\"AWS\": \"{}\"}}`",
                    edge.from
                ),
            });
        }
        let across = account_named(&edge.from) != account_named(&edge.to);
        if across && !edge.conditions.iter().any(|c| c.key == "sts:ExternalId") {
            self.findings.insert(Finding {
                severity: "medium",
                kind: "CrossAccountWithoutExternalId",
                subject: edge.to.clone(),
                message: format!(
                    "`{}` can assume `{}` in another account without an external id",
                    edge.from, edge.to
                ),
                fix: "require an external id in the trust statement (`\"Condition\": {\"StringEquals\": {\"sts:ExternalId\": \"VALUE\"}}`) and pass it; for an association's target role, EKS passes the association's `externalId`".into(),
            });
        }
    }

    fn service_account_node(
        &mut self,
        cluster: &ClusterRecord,
        namespace: &str,
        name: &str,
    ) -> String {
        let id = format!("serviceaccount:{}/{namespace}/{name}", cluster.arn);
        self.nodes.entry(id.clone()).or_insert_with(|| Node {
            id: id.clone(),
            kind: "serviceAccount",
            label: format!("{}/{namespace}/{name}", cluster.name),
            cluster: Some(cluster.arn.clone()),
            namespace: Some(namespace.to_owned()),
            service_account: Some(name.to_owned()),
            subject: None,
            account: None,
        });
        id
    }

    /// Adds an edge (and its role nodes); its key.
    fn edge(&mut self, edge: Edge) -> EdgeKey {
        for arn in [&edge.from, &edge.to] {
            if let Some(account) = arn
                .strip_prefix("arn:aws:iam::")
                .and_then(|r| r.split(':').next())
            {
                self.nodes.entry(arn.clone()).or_insert_with(|| Node {
                    id: arn.clone(),
                    kind: "role",
                    label: arn.rsplit('/').next().unwrap_or(arn).to_owned(),
                    cluster: None,
                    namespace: None,
                    service_account: None,
                    subject: None,
                    account: Some(account.to_owned()),
                });
            }
        }
        let key = (
            edge.from.clone(),
            edge.to.clone(),
            edge.via,
            edge.association.clone(),
        );
        self.edges.entry(key.clone()).or_insert(edge);
        key
    }

    fn reached(&mut self, from: &str, role: &str, path: Vec<EdgeKey>) {
        let depth = path.len() as u32;
        let entry = self
            .reach
            .entry((from.to_owned(), role.to_owned()))
            .or_insert_with(|| (depth, path.clone()));
        if depth < entry.0 {
            *entry = (depth, path);
        }
    }

    fn finish(self) -> AccessGraph {
        let mut ids = HashMap::new();
        let edges: Vec<Edge> = self
            .edges
            .into_iter()
            .enumerate()
            .map(|(i, (key, mut edge))| {
                edge.id = format!("e{}", i + 1);
                ids.insert(key, edge.id.clone());
                edge
            })
            .collect();
        let reach = self
            .reach
            .into_iter()
            .map(|((from, role), (depth, path))| Reach {
                from,
                role,
                depth,
                path: path.iter().filter_map(|k| ids.get(k).cloned()).collect(),
            })
            .collect();
        AccessGraph {
            schema_version: SCHEMA_VERSION,
            max_depth: self.max_depth,
            nodes: self.nodes.into_values().collect(),
            edges,
            reach,
            findings: self.findings.into_iter().collect(),
            truncated: self.truncated,
        }
    }
}

impl AccessGraph {
    /// Keeps only what lies on a path to `role`: the reverse query.
    fn keep_paths_to(&mut self, role: &str) {
        self.reach.retain(|r| r.role == role);
        let edges: BTreeSet<&str> = self
            .reach
            .iter()
            .flat_map(|r| r.path.iter().map(String::as_str))
            .collect();
        self.edges.retain(|e| edges.contains(e.id.as_str()));
        let nodes: BTreeSet<&str> = self
            .edges
            .iter()
            .flat_map(|e| [e.from.as_str(), e.to.as_str()])
            .collect();
        self.nodes.retain(|n| nodes.contains(n.id.as_str()));
        let subjects: BTreeSet<&str> = self
            .edges
            .iter()
            .flat_map(|e| [e.from.as_str(), e.to.as_str()])
            .chain(self.edges.iter().filter_map(|e| e.association.as_deref()))
            .collect();
        self.findings
            .retain(|f| subjects.contains(f.subject.as_str()));
    }
}

impl RoleEntry {
    /// What the trust policy names, read from its JSON (the engine decides; this only picks
    /// which roles are worth asking it about).
    fn read(record: RoleRecord) -> Self {
        let mut entry = RoleEntry {
            record,
            aws_roles: BTreeSet::new(),
            aws_accounts: BTreeSet::new(),
            everyone: false,
            federated: BTreeMap::new(),
            external_ids: Vec::new(),
        };
        let Ok(document) = serde_json::from_str::<Value>(&entry.record.trust_policy) else {
            return entry;
        };
        let statements = match document.get("Statement") {
            Some(Value::Array(list)) => list.iter().collect(),
            Some(one) => vec![one],
            None => Vec::new(),
        };
        for statement in statements {
            let allow = statement.get("Effect").and_then(Value::as_str) == Some("Allow");
            let conditions = statement.get("Condition").and_then(Value::as_object);
            let values_of = |wanted: &dyn Fn(&str) -> bool| -> Vec<String> {
                let mut values = Vec::new();
                for block in conditions.into_iter().flat_map(|c| c.values()) {
                    for (key, value) in block.as_object().into_iter().flatten() {
                        if wanted(key) {
                            values.extend(strings(value));
                        }
                    }
                }
                values
            };
            entry.external_ids.extend(values_of(&|k: &str| {
                k.eq_ignore_ascii_case("sts:ExternalId")
            }));
            if statement.get("NotPrincipal").is_some() {
                entry.everyone |= allow;
            }
            match statement.get("Principal") {
                Some(Value::String(star)) if star == "*" => entry.everyone = true,
                Some(Value::Object(principal)) => {
                    for arn in principal.get("AWS").map(strings).unwrap_or_default() {
                        if arn == "*" {
                            entry.everyone = true;
                        } else if arn.starts_with("arn:aws:iam::") && arn.contains(":role/") {
                            entry.aws_roles.insert(arn);
                        } else if let Some(account) = account_named(&arn) {
                            entry.aws_accounts.insert(account);
                        } else {
                            // A unique id or something else: ask the engine about every
                            // session.
                            entry.everyone = true;
                        }
                    }
                    for provider in principal.get("Federated").map(strings).unwrap_or_default() {
                        if !allow {
                            continue;
                        }
                        let subjects = values_of(&|k: &str| {
                            k.len() > 4 && k.to_ascii_lowercase().ends_with(":sub")
                        });
                        let list = entry.federated.entry(provider).or_default();
                        if subjects.is_empty() {
                            list.push(None);
                        } else {
                            list.extend(subjects.into_iter().map(Some));
                        }
                    }
                }
                _ => {}
            }
        }
        entry.external_ids.sort();
        entry.external_ids.dedup();
        entry
    }
}

/// What decides where a session of `role` may go next: the role, and the session's tags,
/// transitive keys, source identity and session policies.
fn session_state(role: &str, claims: &Claims) -> String {
    format!(
        "{role}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}",
        claims.tags,
        claims.transitive_keys,
        claims.source_identity,
        claims.policy,
        claims.policy_arns
    )
}

/// The reasons of a decided hop: each allowing statement of each action.
fn reasons(explanations: &[(&'static str, Explanation)], from: &str, to: &str) -> Vec<Reason> {
    let mut reasons = Vec::new();
    for (action, explanation) in explanations {
        for statement in &explanation.statements {
            if statement.effect != podid_policy::Effect::Allow {
                continue;
            }
            reasons.push(Reason {
                action,
                policy_type: statement.kind.as_str(),
                policy: statement.policy.clone(),
                holder: if statement.kind == PolicyKind::Trust {
                    to.to_owned()
                } else {
                    from.to_owned()
                },
                statement: statement.index,
                sid: statement.sid.clone().filter(|s| !s.is_empty()),
                line: statement.start.0,
                column: statement.start.1,
                grant: statement.grant.map(|g| match g {
                    Grant::Account => "account",
                    Grant::Role => "role",
                    Grant::Direct => "direct",
                    Grant::Everyone => "everyone",
                }),
            });
        }
    }
    reasons
}

/// `system:serviceaccount:NS:NAME` → (NS, NAME).
fn service_account_of(subject: &str) -> Option<(String, String)> {
    let rest = subject.strip_prefix("system:serviceaccount:")?;
    let (namespace, name) = rest.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains(':'))
        .then(|| (namespace.to_owned(), name.to_owned()))
}

/// A subject a `sub` pattern admits, to decide the pattern's edge with: each `*` is `x`, each
/// `?` is `x`.
fn sample_subject(pattern: &str) -> String {
    if pattern == "*" {
        return "system:serviceaccount:x:x".into();
    }
    pattern.replace(['*', '?'], "x")
}

/// The account of a role ARN, or of an `arn:aws:iam::ACCOUNT:…`/12-digit AWS principal.
fn account_named(principal: &str) -> Option<String> {
    if principal.len() == 12 && principal.bytes().all(|b| b.is_ascii_digit()) {
        return Some(principal.to_owned());
    }
    let rest = principal
        .strip_prefix("arn:aws:iam::")
        .or_else(|| principal.strip_prefix("arn:aws:sts::"))?;
    let account = rest.split(':').next()?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then(|| account.to_owned())
}

/// A JSON string or list of strings, as a list.
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether some text that starts with `prefix` matches `pattern` (`*` and `?`).
fn glob_extends(pattern: &str, prefix: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    // The positions in the pattern that the text read so far can have reached.
    let closure = |mut states: BTreeSet<usize>| {
        let stars: Vec<usize> = states.iter().copied().collect();
        for mut p in stars {
            while pattern.get(p) == Some(&'*') {
                p += 1;
                states.insert(p);
            }
        }
        states
    };
    let mut states = closure(BTreeSet::from([0]));
    for c in prefix.chars() {
        let mut next = BTreeSet::new();
        for &p in &states {
            match pattern.get(p) {
                Some('*') => {
                    next.insert(p);
                }
                Some(&q) if q == '?' || q == c => {
                    next.insert(p + 1);
                }
                _ => {}
            }
        }
        states = closure(next);
        if states.is_empty() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_string_like() {
        assert!(podid_policy::string_like(
            "system:serviceaccount:team-*:*",
            "system:serviceaccount:team-a:web"
        ));
        assert!(podid_policy::string_like("*", ""));
        assert!(podid_policy::string_like("a?c", "abc"));
        assert!(!podid_policy::string_like("a?c", "ac"));
        assert!(!podid_policy::string_like(
            "system:serviceaccount:team-*:web",
            "system:serviceaccount:ops:web"
        ));
    }

    #[test]
    fn a_pattern_admits_a_namespace_when_some_name_in_it_matches() {
        let ns = "system:serviceaccount:team-a:";
        assert!(glob_extends("system:serviceaccount:team-*:*", ns));
        assert!(glob_extends("system:serviceaccount:*:web", ns));
        assert!(glob_extends("*", ns));
        assert!(glob_extends("system:serviceaccount:team-a:api", ns));
        assert!(!glob_extends("system:serviceaccount:ops:*", ns));
        assert!(!glob_extends("system:serviceaccount:team-b?:*", ns));
    }

    #[test]
    fn subjects_name_service_accounts() {
        assert_eq!(
            service_account_of("system:serviceaccount:ns:sa"),
            Some(("ns".into(), "sa".into()))
        );
        assert_eq!(service_account_of("system:serviceaccount:ns"), None);
        assert_eq!(service_account_of("system:node:n"), None);
        assert_eq!(
            sample_subject("system:serviceaccount:team-*:*"),
            "system:serviceaccount:team-x:x"
        );
    }

    #[test]
    fn principals_name_accounts() {
        assert_eq!(
            account_named("111122223333").as_deref(),
            Some("111122223333")
        );
        assert_eq!(
            account_named("arn:aws:iam::111122223333:root").as_deref(),
            Some("111122223333")
        );
        assert_eq!(account_named("AROAEXAMPLE"), None);
    }
}

//! Helpers shared by the integration tests: build principals, policy sets and requests tersely.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers: each test file uses a different subset, and failing loudly is their job"
)]

use podid_policy::{
    Context, ContextValue, Decision, NamedPolicy, Outcome, Ownership, Policy, PolicyKind,
    PolicySet, Principal, Request,
};

pub const ALICE: &str = "arn:aws:iam::111111111111:user/alice";
pub const ALICE_ID: &str = "AIDAEXAMPLEALICE00001";

pub fn alice() -> Principal {
    Principal::user(ALICE, ALICE_ID).unwrap()
}

pub fn user(arn: &str) -> Principal {
    Principal::user(arn, "AIDAEXAMPLEUSER000001").unwrap()
}

/// A session of `role` (a role ARN, path included) named `s1`, with role id `role_id`.
pub fn session(role_arn: &str, role_id: &str) -> Principal {
    let (account, name) = role_parts(role_arn);
    Principal::assumed_role(
        &format!("arn:aws:sts::{account}:assumed-role/{name}/s1"),
        role_arn,
        role_id,
    )
    .unwrap()
}

fn role_parts(role_arn: &str) -> (String, String) {
    let parts: Vec<&str> = role_arn.split(':').collect();
    let name = parts[5].rsplit('/').next().unwrap().to_owned();
    (parts[4].to_owned(), name)
}

pub fn policy(kind: PolicyKind, json: &str) -> Policy {
    Policy::parse_with(json, podid_policy::ParseOptions::simulation(kind))
        .unwrap_or_else(|e| panic!("test policy does not parse: {e}\n{json}"))
}

/// An identity policy with one statement `{"Effect": effect, "Action": action, "Resource": "*", ...extra}`.
pub fn identity(json: &str) -> NamedPolicy {
    NamedPolicy::new("identity", policy(PolicyKind::Identity, json))
}

pub fn boundary(json: &str) -> NamedPolicy {
    NamedPolicy::new("boundary", policy(PolicyKind::Boundary, json))
}

pub fn session_policy(json: &str) -> NamedPolicy {
    NamedPolicy::new("session", policy(PolicyKind::Session, json))
}

pub fn trust(json: &str) -> NamedPolicy {
    NamedPolicy::new("trust", policy(PolicyKind::Trust, json))
}

pub fn resource(json: &str) -> NamedPolicy {
    NamedPolicy::new("resource", policy(PolicyKind::Resource, json))
}

/// Wraps statements into a `2012-10-17` document.
pub fn doc(statements: &str) -> String {
    format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#)
}

pub fn context(pairs: &[(&str, &str)]) -> Context {
    let mut c = Context::new();
    for (k, v) in pairs {
        c.insert(k, *v);
    }
    c
}

pub fn list(values: &[&str]) -> ContextValue {
    ContextValue::Many(values.iter().map(|v| (*v).to_owned()).collect())
}

pub fn decide(
    set: &PolicySet,
    principal: &Principal,
    action: &str,
    resource: &str,
    context: &Context,
) -> Decision {
    set.evaluate(&Request::new(principal, action, resource, context))
}

pub fn decide_owned(
    set: &PolicySet,
    principal: &Principal,
    action: &str,
    resource: &str,
    context: &Context,
    ownership: Ownership,
) -> Decision {
    set.evaluate(&Request::new(principal, action, resource, context).with_ownership(ownership))
}

pub fn outcome(d: &Decision) -> Outcome {
    d.outcome()
}

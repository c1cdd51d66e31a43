#![allow(missing_docs, reason = "criterion generates undocumented items")]
#![expect(clippy::expect_used, reason = "benchmark set-up fails loudly")]
//! Decisions per second: parse once, evaluate many.
//!
//! Run with `cargo bench -p podid-policy --bench decisions`. Criterion reports the time per
//! decision; decisions per second = 1 / that time. The cases:
//! (a) the Pod Identity trust policy with a tag condition;
//! (b) a 20-statement identity policy with wildcards and conditions;
//! (c) identity + boundary + session + resource policies together.
//! `a_parse_and_evaluate` parses the policy for every decision, for comparison with evaluators
//! whose API takes policy JSON on each call (see `bench/iam-simulate`).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use podid_policy::{Context, NamedPolicy, Policy, PolicyKind, PolicySet, Principal, Request};

const POD_IDENTITY_TRUST: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [{
    "Sid": "AllowEksAuthToAssumeRoleForPodIdentity",
    "Effect": "Allow",
    "Principal": {"Service": "pods.eks.amazonaws.com"},
    "Action": ["sts:AssumeRole", "sts:TagSession"],
    "Condition": {"StringEquals": {"aws:RequestTag/kubernetes-namespace": "prod",
                                   "aws:RequestTag/kubernetes-service-account": "api"}}
  }]
}"#;

fn pod_identity_context() -> Context {
    Context::new()
        .with(
            "aws:RequestTag/eks-cluster-arn",
            "arn:aws:eks:us-east-1:111122223333:cluster/prod",
        )
        .with("aws:RequestTag/eks-cluster-name", "prod")
        .with("aws:RequestTag/kubernetes-namespace", "prod")
        .with("aws:RequestTag/kubernetes-service-account", "api")
        .with("aws:RequestTag/kubernetes-pod-name", "api-7d9f-abcde")
        .with(
            "aws:RequestTag/kubernetes-pod-uid",
            "0d3c2a4e-1111-2222-3333-444455556666",
        )
        .with(
            "aws:TagKeys",
            vec![
                "eks-cluster-arn".to_owned(),
                "eks-cluster-name".to_owned(),
                "kubernetes-namespace".to_owned(),
                "kubernetes-service-account".to_owned(),
                "kubernetes-pod-name".to_owned(),
                "kubernetes-pod-uid".to_owned(),
            ],
        )
}

/// Twenty statements: wildcards in actions and resources, string, ARN, IP, date and numeric
/// conditions, a variable; the request matches the last allow and no deny.
fn twenty_statements() -> String {
    let mut statements = Vec::new();
    for i in 0..18 {
        statements.push(format!(
            r#"{{"Sid":"S{i}","Effect":"Allow","Action":["ec2:Describe*","s3:List*","dynamodb:Get{i}*"],"Resource":["arn:aws:s3:::bucket-{i}/*","arn:aws:dynamodb:*:111122223333:table/t{i}*"],"Condition":{{"StringLike":{{"aws:PrincipalTag/team":"team-{i}*"}},"IpAddress":{{"aws:SourceIp":["10.{i}.0.0/16","192.168.{i}.0/24"]}}}}}}"#
        ));
    }
    statements.push(r#"{"Sid":"DenyOutsideHours","Effect":"Deny","Action":"s3:*","Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}}"#.to_owned());
    statements.push(r#"{"Sid":"OwnPrefix","Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],"Resource":"arn:aws:s3:::shared-bucket/home/${aws:username}/*","Condition":{"StringEquals":{"aws:PrincipalTag/team":"blue"},"NumericLessThanEquals":{"s3:max-keys":"100"},"Bool":{"aws:SecureTransport":"true"}}}"#.to_owned());
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        statements.join(",")
    )
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("decisions");
    group.throughput(Throughput::Elements(1));

    // (a)
    let trust = Policy::parse(POD_IDENTITY_TRUST, PolicyKind::Trust).expect("valid trust policy");
    let set_a = PolicySet::new().resource(NamedPolicy::new("trust", trust));
    let service = Principal::service("pods.eks.amazonaws.com");
    let context_a = pod_identity_context();
    let request_a = Request::new(
        &service,
        "sts:AssumeRole",
        "arn:aws:iam::111122223333:role/app",
        &context_a,
    );
    assert!(set_a.evaluate(&request_a).is_allowed());
    group.bench_function("a_parse_and_evaluate", |b| {
        b.iter(|| {
            let trust = Policy::parse(std::hint::black_box(POD_IDENTITY_TRUST), PolicyKind::Trust)
                .expect("valid trust policy");
            PolicySet::new()
                .resource(NamedPolicy::new("trust", trust))
                .evaluate(&request_a)
        })
    });
    group.bench_function("a_pod_identity_trust", |b| {
        b.iter(|| set_a.evaluate(std::hint::black_box(&request_a)))
    });

    // (b)
    let identity =
        Policy::parse(&twenty_statements(), PolicyKind::Identity).expect("valid identity policy");
    let set_b = PolicySet::new().identity(NamedPolicy::new("twenty", identity));
    let alice = Principal::user(
        "arn:aws:iam::111122223333:user/alice",
        "AIDAEXAMPLEALICE00001",
    )
    .expect("valid user");
    let context_b = Context::new()
        .with("aws:PrincipalTag/team", "blue")
        .with("aws:SourceIp", "10.3.4.5")
        .with("aws:CurrentTime", "2026-11-22T10:00:00Z")
        .with("aws:SecureTransport", "true")
        .with("s3:max-keys", "10");
    let request_b = Request::new(
        &alice,
        "s3:GetObject",
        "arn:aws:s3:::shared-bucket/home/alice/notes.txt",
        &context_b,
    );
    assert!(set_b.evaluate(&request_b).is_allowed());
    group.bench_function("b_twenty_statements", |b| {
        b.iter(|| set_b.evaluate(std::hint::black_box(&request_b)))
    });

    // (c)
    let parse = |text: &str, kind| Policy::parse(text, kind).expect("valid policy");
    let set_c = PolicySet::new()
        .identity(NamedPolicy::new("identity", parse(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"},{"Effect":"Deny","Action":"s3:DeleteBucket","Resource":"*"}]}"#, PolicyKind::Identity)))
        .boundary(NamedPolicy::new("boundary", parse(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*","dynamodb:*"],"Resource":"*"},{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringNotEquals":{"aws:RequestedRegion":["us-east-1","eu-west-1"]}}}]}"#, PolicyKind::Boundary)))
        .session(NamedPolicy::new("session", parse(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:Get*","Resource":"arn:aws:s3:::data-*/${aws:PrincipalTag/kubernetes-namespace}/*"}]}"#, PolicyKind::Session)))
        .resource(NamedPolicy::new("bucket", parse(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::data-prod/*"},{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::data-prod/*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#, PolicyKind::Resource)));
    let session = Principal::assumed_role(
        "arn:aws:sts::111122223333:assumed-role/app/eks-prod-api-7d9f-abcde",
        "arn:aws:iam::111122223333:role/app",
        "AROAEXAMPLEAPPROLE001",
    )
    .expect("valid session");
    let context_c = Context::new()
        .with("aws:PrincipalTag/kubernetes-namespace", "prod")
        .with("aws:RequestedRegion", "us-east-1")
        .with("aws:SecureTransport", "true");
    let request_c = Request::new(
        &session,
        "s3:GetObject",
        "arn:aws:s3:::data-prod/prod/report.csv",
        &context_c,
    );
    assert!(set_c.evaluate(&request_c).is_allowed());
    group.bench_function("c_all_policy_kinds", |b| {
        b.iter(|| set_c.evaluate(std::hint::black_box(&request_c)))
    });

    group.finish();
}

criterion_group!(decisions, benches);
criterion_main!(decisions);

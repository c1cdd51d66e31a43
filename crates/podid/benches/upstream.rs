//! EKS Auth with the `aws` credential backend: AssumeRoleForPodIdentity on server A, whose
//! broker obtains the credentials from server B's STS on loopback (B plays AWS), beside the
//! same calls on an embedded cluster of A, with one hop and with a target role, on 1 and 8
//! connections; and B's own AssumeRole, the upstream call each hop makes. The added latency per
//! hop is the difference of the mean latencies on one connection.
//!
//! Run: `cargo bench -p podid --bench upstream` (optional: `PODID_BENCH_SECONDS`,
//! `PODID_BENCH_CONNECTIONS`). Both servers run on SQLite on this machine; every call's audit
//! record is durable on A (and B's AssumeRole on B) before the answer.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a benchmark program fails loudly"
)]

mod common;

use std::sync::Arc;

use common::{ACCOUNT_TRUST, CHAIN, Connection, load, load_to, setting, start, start_with_env};

type Body = Arc<dyn Fn(usize, u64) -> String + Send + Sync>;

#[tokio::main]
async fn main() {
    let seconds = setting("PODID_BENCH_SECONDS", 5);
    let connections = setting("PODID_BENCH_CONNECTIONS", 8);
    let b = start(None, &[]);
    let broker = &b.credentials;
    let endpoint = format!("http://{}", b.address);
    let a = start_with_env(
        None,
        &[],
        &[
            ("AWS_ACCESS_KEY_ID", broker.access_key_id.as_str()),
            (
                "AWS_SECRET_ACCESS_KEY",
                broker.secret_access_key.expose().as_str(),
            ),
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ],
    );
    // Roles in B (the upstream) and in A (for the embedded cluster): a pod role that may chain,
    // and a target role.
    let pods_trust = common::TRUST;
    for (server, pod_trust) in [(&b, ACCOUNT_TRUST), (&a, pods_trust)] {
        let mut conn = Connection::open(&server.address).await;
        let admin = &server.credentials;
        for call in [
            format!(
                "Action=CreateRole&Version=2010-05-08&RoleName=bench-pod&AssumeRolePolicyDocument={pod_trust}"
            ),
            format!(
                "Action=PutRolePolicy&Version=2010-05-08&RoleName=bench-pod&PolicyName=chain&PolicyDocument={CHAIN}"
            ),
            format!(
                "Action=CreateRole&Version=2010-05-08&RoleName=bench-target&AssumeRolePolicyDocument={ACCOUNT_TRUST}"
            ),
        ] {
            let (status, text) = conn.exchange(admin, "iam", &call).await;
            assert_eq!(status, 200, "{text}");
        }
    }
    let admin = &a.credentials;
    let mut conn = Connection::open(&a.address).await;
    let mut eks = async |path: &str, body: String| {
        let (status, text) = conn
            .send(admin, "eks", "POST", path, "", "application/json", &body)
            .await;
        assert_eq!(status, 200, "{text}");
        text
    };
    eks("/clusters", r#"{"name":"embedded"}"#.into()).await;
    eks(
        "/clusters",
        format!(
            r#"{{"name":"upstream","podidCredentialBackend":{{"type":"aws","upstreamStsEndpoint":"{endpoint}"}}}}"#
        ),
    )
    .await;
    let mut tokens = Vec::new();
    for cluster in ["embedded", "upstream"] {
        for (sa, target) in [
            ("one", ""),
            (
                "two",
                r#","targetRoleArn":"arn:aws:iam::111122223333:role/bench-target""#,
            ),
        ] {
            eks(
                &format!("/clusters/{cluster}/pod-identity-associations"),
                format!(
                    r#"{{"namespace":"default","serviceAccount":"{sa}","roleArn":"arn:aws:iam::111122223333:role/bench-pod"{target}}}"#
                ),
            )
            .await;
            let text = eks(
                &format!("/clusters/{cluster}/podid/service-account-token"),
                format!(
                    r#"{{"namespace":"default","serviceAccount":"{sa}","podName":"app-0","podUid":"u-1"}}"#
                ),
            )
            .await;
            let token: serde_json::Value = serde_json::from_str(&text).unwrap();
            tokens.push((cluster, sa, token["token"].as_str().unwrap().to_owned()));
        }
    }
    println!(
        "EKS Auth (AssumeRoleForPodIdentity) on server A; `upstream`: its broker calls B's STS"
    );
    let mut mean_one_connection = std::collections::HashMap::new();
    for (cluster, sa, token) in tokens {
        let path: &'static str =
            Box::leak(format!("/clusters/{cluster}/assume-role-for-pod-identity").into_boxed_str());
        let body = format!(r#"{{"token":"{token}"}}"#);
        let request: Body = Arc::new(move |_, _| body.clone());
        for n in [1, connections] {
            let (rate, failed) = load_to(
                &a,
                admin,
                "eks-auth",
                (path, "application/json"),
                n,
                seconds,
                request.clone(),
            )
            .await;
            let hops = if sa == "one" {
                "one hop"
            } else {
                "target role"
            };
            let mean_ms = n as f64 * 1000.0 / rate;
            println!(
                "{cluster:<9} {hops:<12} {rate:>8.0} calls/s  mean {mean_ms:>6.2} ms  ({n} connections, {seconds} s, {failed} failed)"
            );
            if n == 1 {
                mean_one_connection.insert((cluster, sa), mean_ms);
            }
        }
    }
    // B's own AssumeRole, signed by the broker: what each upstream hop costs B.
    let assume: Body = Arc::new(|w, n| {
        format!(
            "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fbench-pod&RoleSessionName=b-{w}-{n}"
        )
    });
    for n in [1, connections] {
        let (rate, failed) = load(&b, broker, "sts", n, seconds, assume.clone()).await;
        println!(
            "B         AssumeRole   {rate:>8.0} calls/s  mean {:>6.2} ms  ({n} connections, {seconds} s, {failed} failed)",
            n as f64 * 1000.0 / rate
        );
    }
    let mean = |c, s| mean_one_connection[&(c, s)];
    println!(
        "added latency, one connection: first hop {:.2} ms, second hop {:.2} ms (upstream minus embedded)",
        mean("upstream", "one") - mean("embedded", "one"),
        (mean("upstream", "two") - mean("upstream", "one"))
            - (mean("embedded", "two") - mean("embedded", "one"))
    );
}

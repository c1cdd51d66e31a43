//! Throughput of signed IAM and STS calls over HTTP: CreateRole (a durable write each), GetRole,
//! AssumeRole (trust and identity policies decided, session tags checked, a session token
//! sealed) with 1, 8 and many connections, and GetCallerIdentity signed with session credentials
//! (a token opened and a signature verified per request), AssumeRoleForPodIdentity, and
//! AssumeRoleWithWebIdentity unsigned as SDKs send it, against a real `podid server` process
//! on SQLite and, when `PODID_TEST_DATABASE_URL` is set, on PostgreSQL (a fresh schema).
//!
//! Run: `cargo bench -p podid --bench iam_http` (optional: `PODID_BENCH_SECONDS`,
//! `PODID_BENCH_CONNECTIONS`). Each request is signed with SigV4 by the client, authenticated
//! and authorized by the server, and every CreateRole is committed durably before its response.
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

use common::{
    ACCOUNT_TRUST, CHAIN, Connection, Server, load, load_to, on_each_backend, setting, start,
};
use podid_sigv4::Credentials;
use podid_types::Secret;

const TRUST: &str = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%22pods.eks.amazonaws.com%22%7D%2C%22Action%22%3A%5B%22sts%3AAssumeRole%22%2C%22sts%3ATagSession%22%5D%7D%5D%7D";

/// A signed EKS call that must succeed; its answer.
async fn eks(conn: &mut Connection, admin: &Credentials, path: String, body: String) -> String {
    let (status, text) = conn
        .send(admin, "eks", "POST", &path, "", "application/json", &body)
        .await;
    assert_eq!(status, 200, "{text}");
    text
}

type Body = Arc<dyn Fn(usize, u64) -> String + Send + Sync>;

fn report(label: &str, what: &str, (rate, failed): (f64, u64), connections: usize, seconds: u64) {
    println!(
        "{label:<9} {what:<28} {rate:>9.0} req/s  ({connections} connections, {seconds} s, {failed} failed)"
    );
}

async fn run(label: &str, server: Server, connections: usize, seconds: u64) {
    let admin = server.credentials.clone();
    let create: Body = Arc::new(|w, n| {
        format!(
            "Action=CreateRole&Version=2010-05-08&RoleName=bench-{w}-{n}&AssumeRolePolicyDocument={TRUST}"
        )
    });
    let rate = load(&server, &admin, "iam", connections, seconds, create).await;
    report(label, "CreateRole", rate, connections, seconds);
    let get: Body =
        Arc::new(|w, _| format!("Action=GetRole&Version=2010-05-08&RoleName=bench-{w}-0"));
    let rate = load(&server, &admin, "iam", connections, seconds, get).await;
    report(label, "GetRole", rate, connections, seconds);

    // AssumeRole into a role that trusts the account, with and without session tags.
    let mut setup = Connection::open(&server.address).await;
    let (status, xml) = setup
        .exchange(
            &admin,
            "iam",
            &format!(
                "Action=CreateRole&Version=2010-05-08&RoleName=bench-target&AssumeRolePolicyDocument={ACCOUNT_TRUST}"
            ),
        )
        .await;
    assert_eq!(status, 200, "{xml}");
    let plain: Body = Arc::new(|w, n| {
        format!(
            "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fbench-target&RoleSessionName=s-{w}-{n}"
        )
    });
    let tagged: Body = Arc::new(|w, n| {
        format!(
            "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fbench-target&RoleSessionName=s-{w}-{n}\
             &Tags.member.1.Key=kubernetes-namespace&Tags.member.1.Value=prod\
             &Tags.member.2.Key=kubernetes-service-account&Tags.member.2.Value=api-{w}\
             &TransitiveTagKeys.member.1=kubernetes-namespace&TransitiveTagKeys.member.2=kubernetes-service-account"
        )
    });
    for n in [1, 8, connections] {
        let rate = load(&server, &admin, "sts", n, seconds, plain.clone()).await;
        report(label, "AssumeRole", rate, n, seconds);
    }
    for n in [1, 8, connections] {
        let rate = load(&server, &admin, "sts", n, seconds, tagged.clone()).await;
        report(label, "AssumeRole + 2 session tags", rate, n, seconds);
    }

    // Requests signed with session credentials: the token is opened on every request.
    let (status, xml) = setup.exchange(&admin, "sts", &tagged(0, 0)).await;
    assert_eq!(status, 200, "{xml}");
    let element = |tag: &str| {
        let start = xml.find(&format!("<{tag}>")).unwrap() + tag.len() + 2;
        let end = start + xml[start..].find(&format!("</{tag}>")).unwrap();
        xml[start..end].to_owned()
    };
    let session = Credentials {
        access_key_id: element("AccessKeyId"),
        secret_access_key: Secret::new(element("SecretAccessKey")),
        session_token: Some(Secret::new(element("SessionToken"))),
    };
    let who: Body = Arc::new(|_, _| "Action=GetCallerIdentity&Version=2011-06-15".to_owned());
    let rate = load(&server, &session, "sts", connections, seconds, who).await;
    report(
        label,
        "GetCallerIdentity (session)",
        rate,
        connections,
        seconds,
    );

    // EKS Auth: a pod's token in, credentials out; one hop, and with a target role.
    let json = "application/json";
    eks(
        &mut setup,
        &admin,
        "/clusters".into(),
        r#"{"name":"bench"}"#.into(),
    )
    .await;
    for (sa, target) in [("one", None), ("two", Some("bench-target"))] {
        let mut body = format!(
            r#"{{"namespace":"default","serviceAccount":"{sa}","roleArn":"arn:aws:iam::111122223333:role/bench-pod""#
        );
        if let Some(t) = target {
            body.push_str(&format!(
                r#","targetRoleArn":"arn:aws:iam::111122223333:role/{t}""#
            ));
        }
        body.push('}');
        let (status, xml) = setup
            .exchange(
                &admin,
                "iam",
                &format!("Action=CreateRole&Version=2010-05-08&RoleName=bench-pod-{sa}&AssumeRolePolicyDocument={TRUST}"),
            )
            .await;
        assert_eq!(status, 200, "{xml}");
        let _ = eks(
            &mut setup,
            &admin,
            "/clusters/bench/pod-identity-associations".into(),
            body.replace("bench-pod", &format!("bench-pod-{sa}")),
        )
        .await;
    }
    // The target role trusts the account (the pod role assumes it with its identity policy).
    let (status, xml) = setup
        .exchange(
            &admin,
            "iam",
            &format!("Action=PutRolePolicy&Version=2010-05-08&RoleName=bench-pod-two&PolicyName=chain&PolicyDocument={CHAIN}"),
        )
        .await;
    assert_eq!(status, 200, "{xml}");
    for (sa, what) in [
        ("one", "AssumeRoleForPodIdentity, one hop"),
        ("two", "AssumeRoleForPodIdentity, target role"),
    ] {
        let text = eks(
            &mut setup,
            &admin,
            "/clusters/bench/podid/service-account-token".into(),
            format!(r#"{{"namespace":"default","serviceAccount":"{sa}","podName":"app-0","podUid":"u-1"}}"#),
        )
        .await;
        let token: serde_json::Value = serde_json::from_str(&text).unwrap();
        let body = format!(r#"{{"token":"{}"}}"#, token["token"].as_str().unwrap());
        let request: Body = Arc::new(move |_, _| body.clone());
        for n in [1, connections] {
            let rate = load_to(
                &server,
                &admin,
                "eks-auth",
                ("/clusters/bench/assume-role-for-pod-identity", json),
                n,
                seconds,
                request.clone(),
            )
            .await;
            report(label, what, rate, n, seconds);
        }
    }
    web_identity(label, &server, &admin, &mut setup, seconds).await;
}

/// AssumeRoleWithWebIdentity, unsigned as SDKs send it: a token of the local cluster `bench`
/// (audience `sts.amazonaws.com`), its issuer an OIDC provider of the account, a role trusting
/// it for `default/web`.
async fn web_identity(
    label: &str,
    server: &Server,
    admin: &Credentials,
    setup: &mut Connection,
    seconds: u64,
) {
    let json = "application/json";
    let (status, text) = setup
        .send(admin, "eks", "GET", "/clusters/bench", "", json, "")
        .await;
    assert_eq!(status, 200, "{text}");
    let cluster: serde_json::Value = serde_json::from_str(&text).unwrap();
    let issuer = cluster["cluster"]["identity"]["oidc"]["issuer"]
        .as_str()
        .unwrap()
        .to_owned();
    let host = issuer.trim_start_matches("https://");
    let (status, xml) = setup
        .exchange(
            admin,
            "iam",
            &format!(
                "Action=CreateOpenIDConnectProvider&Version=2010-05-08&Url={}&ClientIDList.member.1=sts.amazonaws.com",
                podid_sigv4::uri_encoded(&issuer)
            ),
        )
        .await;
    assert_eq!(status, 200, "{xml}");
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Federated":"arn:aws:iam::111122223333:oidc-provider/{host}"}},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{{"StringEquals":{{"{host}:sub":"system:serviceaccount:default:web","{host}:aud":"sts.amazonaws.com"}}}}}}]}}"#
    );
    let (status, xml) = setup
        .exchange(
            admin,
            "iam",
            &format!(
                "Action=CreateRole&Version=2010-05-08&RoleName=bench-web&AssumeRolePolicyDocument={}",
                podid_sigv4::uri_encoded(&trust)
            ),
        )
        .await;
    assert_eq!(status, 200, "{xml}");
    let text = eks(
        setup,
        admin,
        "/clusters/bench/podid/service-account-token".into(),
        r#"{"namespace":"default","serviceAccount":"web","audiences":["sts.amazonaws.com"]}"#
            .into(),
    )
    .await;
    let token: serde_json::Value = serde_json::from_str(&text).unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    let request: Body = Arc::new(move |w, n| {
        format!(
            "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fbench-web&RoleSessionName=w-{w}-{n}&WebIdentityToken={token}"
        )
    });
    let anonymous = Credentials {
        access_key_id: String::new(),
        secret_access_key: Secret::new(String::new()),
        session_token: None,
    };
    for n in [1, 8] {
        let rate = load(server, &anonymous, "sts", n, seconds, request.clone()).await;
        report(label, "AssumeRoleWithWebIdentity", rate, n, seconds);
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a plain run with a filter is not supported.
    let seconds: u64 = setting("PODID_BENCH_SECONDS", 5);
    let connections: usize = setting("PODID_BENCH_CONNECTIONS", 32);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(on_each_backend(|label, url| async move {
        run(label, start(url.as_deref(), &[]), connections, seconds).await;
    }));
}

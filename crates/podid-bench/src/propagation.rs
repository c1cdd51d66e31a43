//! `podid-bench propagation`: how long a change of a Pod Identity association takes to reach a
//! pod through the node agent, with the server and the agent as real processes.
//!
//! A pod's credentials are cached by the agent; each trial moves the association to the other
//! of two roles and then asks the agent for the pod's credentials every 2 ms until they are new
//! ones, then checks with GetCallerIdentity that they are the new role's. The time is from the
//! UpdatePodIdentityAssociation answer (the change is committed) to the agent's first answer with
//! the new credentials. Three scenarios:
//! 1. one server (SQLite);
//! 2. the same, after the server was stopped and started again (the agent reconnects by itself
//!    and resumes its cursor);
//! 3. two replicas on one PostgreSQL database: the agent follows one, the changes are made on the
//!    other (with `--database-url`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use podid_bench::{Connection, Request};
use podid_sigv4::Credentials;
use podid_types::Secret;

use crate::{free_port, spawn_agent};

#[derive(clap::Args)]
pub(crate) struct PropagationArgs {
    /// The `podid` binary (a release build).
    #[arg(long)]
    podid: PathBuf,
    /// A PostgreSQL URL for the two-replica scenario (a fresh schema is made in it with `psql`
    /// and dropped after); without it, that scenario is reported as skipped.
    #[arg(long)]
    database_url: Option<String>,
    /// Trials per scenario.
    #[arg(long, default_value_t = 100)]
    trials: usize,
    /// Where to write the figures as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// A `podid server` process on a fixed port (so that a restarted one is found again).
struct Server {
    child: Child,
    address: String,
}

impl Server {
    /// With `database`: its URL, and the master-key file of the replica that made it (none for
    /// that first replica: its own data directory's).
    fn start(bin: &Path, data: &Path, port: u16, database: Option<(&str, Option<&Path>)>) -> Self {
        std::fs::create_dir_all(data).unwrap();
        let mut command = Command::new(bin);
        command
            .args([
                "server",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data)
            .args(["--eks-auth-rate", "0"]);
        if let Some((url, key)) = database {
            command.args(["--database-url", url]);
            if let Some(key) = key {
                command.arg("--master-key-file").arg(key);
            }
        }
        let mut child = command
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", bin.display()));
        let address = podid_bench::listening_address(child.stdout.take().unwrap());
        Self { child, address }
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// The pod whose credentials are watched.
struct Pod {
    association: String,
    token: String,
    roles: [String; 2],
}

/// Figures of one scenario, in milliseconds.
#[derive(serde::Serialize)]
struct Figures {
    scenario: &'static str,
    trials: usize,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

pub(crate) async fn propagation(args: PropagationArgs) {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();

    // 1 and 2: one server on SQLite, then the same server restarted.
    let data = dir.path().join("one");
    let port = free_port();
    let server = Server::start(&args.podid, &data, port, None);
    let admin = podid_bench::admin_credentials(&data);
    let pod = set_up(&server.address, &admin).await;
    let mut agent = spawn_agent(&args.podid, &server.address, &admin, "prop");
    rows.push(
        measure(
            "one server (SQLite)",
            &args,
            &agent,
            &server.address,
            &server.address,
            &admin,
            &pod,
        )
        .await,
    );
    server.stop();
    let server = Server::start(&args.podid, &data, port, None);
    rows.push(
        measure(
            "after a server restart",
            &args,
            &agent,
            &server.address,
            &server.address,
            &admin,
            &pod,
        )
        .await,
    );
    server.stop();
    let _ = agent.0.kill();
    let _ = agent.0.wait();

    // 3: two replicas on PostgreSQL.
    match &args.database_url {
        None => println!("SKIPPED: two replicas on PostgreSQL (no --database-url)"),
        Some(base) => {
            let schema = format!("podid_propagation_{}", std::process::id());
            let psql = |sql: &str| {
                let status = Command::new("psql")
                    .args([base.as_str(), "-q", "-c", sql])
                    .status()
                    .expect("psql runs");
                assert!(status.success(), "psql: {sql}");
            };
            psql(&format!("CREATE SCHEMA {schema}"));
            let sep = if base.contains('?') { '&' } else { '?' };
            let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
            let first_data = dir.path().join("replica-1");
            let key = first_data.join("master.key");
            let first = Server::start(&args.podid, &first_data, free_port(), Some((&url, None)));
            // The second replica shares the database and the master key, not the data directory.
            let second = Server::start(
                &args.podid,
                &dir.path().join("replica-2"),
                free_port(),
                Some((&url, Some(&key))),
            );
            let admin = podid_bench::admin_credentials(&first_data);
            let pod = set_up(&first.address, &admin).await;
            let mut agent = spawn_agent(&args.podid, &first.address, &admin, "prop");
            rows.push(
                measure(
                    "two replicas (PostgreSQL), change on the other",
                    &args,
                    &agent,
                    &first.address,
                    &second.address,
                    &admin,
                    &pod,
                )
                .await,
            );
            let _ = agent.0.kill();
            let _ = agent.0.wait();
            first.stop();
            second.stop();
            psql(&format!("DROP SCHEMA {schema} CASCADE"));
        }
    }

    println!(
        "\n{:<48} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "change → pod (UpdatePodIdentityAssociation)",
        "trials",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms"
    );
    for row in &rows {
        println!(
            "{:<48} {:>6} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            row.scenario, row.trials, row.p50_ms, row.p90_ms, row.p99_ms, row.max_ms
        );
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&rows).unwrap()).unwrap();
    }
}

const PODS_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;

/// Two roles, cluster `prop`, the association of `default/app` with the first role, and a pod's
/// token.
async fn set_up(address: &str, admin: &Credentials) -> Pod {
    let mut conn = Connection::open(address).await;
    let mut roles = Vec::new();
    for name in ["prop-a", "prop-b"] {
        let (status, text) = conn
            .exchange(
                admin,
                "iam",
                &format!(
                    "Action=CreateRole&Version=2010-05-08&RoleName={name}&AssumeRolePolicyDocument={}",
                    podid_sigv4::uri_encoded(PODS_TRUST)
                ),
            )
            .await;
        assert_eq!(status, 200, "CreateRole: {text}");
        roles.push(format!("arn:aws:iam::111122223333:role/{name}"));
    }
    let (status, text) = conn
        .send(
            admin,
            "eks",
            "POST",
            "/clusters",
            "",
            "application/json",
            r#"{"name":"prop","roleArn":"arn:aws:iam::111122223333:role/prop-a","resourcesVpcConfig":{"subnetIds":["subnet-1"]}}"#,
        )
        .await;
    assert_eq!(status, 200, "CreateCluster: {text}");
    let (status, text) = conn
        .send(
            admin,
            "eks",
            "POST",
            "/clusters/prop/pod-identity-associations",
            "",
            "application/json",
            &format!(
                r#"{{"namespace":"default","serviceAccount":"app","roleArn":"{}"}}"#,
                roles[0]
            ),
        )
        .await;
    assert_eq!(status, 200, "CreatePodIdentityAssociation: {text}");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let association = value["association"]["associationId"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = podid_bench::pod_token(&mut conn, admin, "prop", ("default", "app"), "app-0").await;
    Pod {
        association,
        token,
        roles: [roles[0].clone(), roles[1].clone()],
    }
}

/// The pod's credentials from the agent: the access key id and the credentials.
async fn ask(agent: &mut Connection, pod: &Pod) -> (String, Credentials) {
    let anonymous = Credentials {
        access_key_id: String::new(),
        secret_access_key: Secret::new(String::new()),
        session_token: None,
    };
    let (status, body) = agent
        .request(
            &anonymous,
            &Request {
                service: "",
                method: "GET",
                path: "/v1/credentials".into(),
                content_type: "application/json",
                body: String::new(),
                headers: vec![("authorization", pod.token.clone())],
            },
        )
        .await;
    assert_eq!(status, 200, "the agent: {body}");
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    let text = |k: &str| value[k].as_str().unwrap().to_owned();
    (
        text("AccessKeyId"),
        Credentials {
            access_key_id: text("AccessKeyId"),
            secret_access_key: Secret::new(text("SecretAccessKey")),
            session_token: Some(Secret::new(text("Token"))),
        },
    )
}

async fn measure(
    scenario: &'static str,
    args: &PropagationArgs,
    agent: &(Child, String),
    followed: &str,
    changed: &str,
    admin: &Credentials,
    pod: &Pod,
) -> Figures {
    let mut agent_conn = Connection::open(&agent.1).await;
    let mut server = Connection::open(changed).await;
    let mut sts = Connection::open(followed).await;
    let (mut key, _) = ask(&mut agent_conn, pod).await;
    // Which role the association has now.
    let mut current = if whose(&mut sts, &ask(&mut agent_conn, pod).await.1).await == pod.roles[0] {
        0
    } else {
        1
    };
    let mut times = Vec::with_capacity(args.trials);
    for trial in 0..args.trials {
        let next = 1 - current;
        let (status, text) = server
            .send(
                admin,
                "eks",
                "POST",
                &format!(
                    "/clusters/prop/pod-identity-associations/{}",
                    pod.association
                ),
                "",
                "application/json",
                &format!(r#"{{"roleArn":"{}"}}"#, pod.roles[next]),
            )
            .await;
        assert_eq!(status, 200, "UpdatePodIdentityAssociation: {text}");
        let changed_at = Instant::now();
        let credentials = loop {
            let (now_key, credentials) = ask(&mut agent_conn, pod).await;
            if now_key != key {
                key = now_key;
                break credentials;
            }
            assert!(
                changed_at.elapsed() < Duration::from_secs(30),
                "{scenario}: trial {trial}: the agent still serves the old credentials after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let elapsed = changed_at.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(
            whose(&mut sts, &credentials).await,
            pod.roles[next],
            "{scenario}: trial {trial}"
        );
        times.push(elapsed);
        current = next;
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let index = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1;
        times[index]
    };
    let figures = Figures {
        scenario,
        trials: times.len(),
        p50_ms: at(0.50),
        p90_ms: at(0.90),
        p99_ms: at(0.99),
        max_ms: at(1.0),
    };
    println!(
        "{scenario}: {} trials, p50 {:.1} ms, p99 {:.1} ms",
        figures.trials, figures.p50_ms, figures.p99_ms
    );
    figures
}

/// The role of `credentials`, by GetCallerIdentity.
async fn whose(sts: &mut Connection, credentials: &Credentials) -> String {
    let (status, text) = sts
        .exchange(
            credentials,
            "sts",
            "Action=GetCallerIdentity&Version=2011-06-15",
        )
        .await;
    assert_eq!(status, 200, "GetCallerIdentity: {text}");
    let arn = text
        .split("<Arn>")
        .nth(1)
        .and_then(|rest| rest.split("</Arn>").next())
        .unwrap()
        .to_owned();
    // arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION → the role's ARN.
    let account = arn.split(':').nth(4).unwrap();
    let name = arn.split('/').nth(1).unwrap();
    format!("arn:aws:iam::{account}:role/{name}")
}

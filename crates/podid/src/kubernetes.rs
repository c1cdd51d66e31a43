//! podid's Kubernetes API clients (kube-rs, with rustls on aws-lc-rs), for what runs on a real
//! cluster:
//! - `podid webhook`: service accounts, as a watch-backed cache of every service account (list,
//!   then watch; a `410 Gone` or a dropped connection lists again, with kube-rs' backoff) and a
//!   live `GET` on a miss (1 s timeout), so that a service account created a moment before its
//!   pod is found before the watch delivers it. RBAC: `get`, `list`, `watch` on
//!   `serviceaccounts`.
//! - `podid agent --watch-pods`: the pods of its node (`spec.nodeName`), so that a pod that is
//!   deleted or has finished is forgotten at once rather than renewed until it stops asking
//!   (pain point 5 of the reference agent). RBAC: `list`, `watch` on `pods`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client};

use crate::webhook::{Account, account_of};

/// How long a live read may take.
const LIVE_TIMEOUT: Duration = Duration::from_secs(1);

/// A client from the kubeconfig file, or else the pod's own service account (in-cluster).
pub(crate) async fn client(kubeconfig: Option<&Path>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read the kubeconfig `{}`", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| {
                    format!(
                        "the kubeconfig `{}` cannot be used (its current context, cluster and user must be complete)",
                        path.display()
                    )
                })?
        }
        None => kube::Config::incluster().context(
            "cannot read the in-cluster Kubernetes configuration (KUBERNETES_SERVICE_HOST and the pod's service-account token): outside a pod, give --kubeconfig",
        )?,
    };
    Client::try_from(config).context("cannot build the Kubernetes client")
}

/// The service-account cache and the client for misses.
#[derive(Clone)]
pub(crate) struct ServiceAccounts {
    client: Client,
    store: Store<ServiceAccount>,
    /// Whether a whole list has been received.
    synced: Arc<std::sync::atomic::AtomicBool>,
}

impl ServiceAccounts {
    /// Starts the watch of every service account. Call it inside the runtime.
    pub(crate) fn watch(client: Client) -> Self {
        let (store, writer) = reflector::store();
        let api: Api<ServiceAccount> = Api::all(client.clone());
        let watch = reflector::reflector(writer, watcher(api, watcher::Config::default()))
            .default_backoff();
        let synced = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let listed = synced.clone();
        tokio::spawn(async move {
            futures_util::pin_mut!(watch);
            while let Some(event) = watch.next().await {
                match event {
                    Ok(watcher::Event::InitDone) => {
                        listed.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "the watch of service accounts failed; listing again");
                    }
                }
            }
        });
        Self {
            client,
            store,
            synced,
        }
    }

    /// Whether the first list has been received.
    pub(crate) fn synced(&self) -> bool {
        self.synced.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The service account: from the cache, else asked live.
    pub(crate) async fn read(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Account>, String> {
        let key = ObjectRef::new(name).within(namespace);
        if let Some(cached) = self.store.get(&key) {
            return Ok(Some(to_account(&cached)));
        }
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        match tokio::time::timeout(LIVE_TIMEOUT, api.get_opt(name)).await {
            Err(_) => Err(format!(
                "the Kubernetes API did not answer within {LIVE_TIMEOUT:?} for service account {namespace}/{name}"
            )),
            Ok(Err(e)) => Err(format!(
                "cannot read service account {namespace}/{name} from the Kubernetes API: {e}"
            )),
            Ok(Ok(found)) => Ok(found.as_ref().map(to_account)),
        }
    }
}

fn to_account(account: &ServiceAccount) -> Account {
    account_of(&serde_json::to_value(account).unwrap_or_default())
}

/// Watches the pods of `node` and makes `agent` forget a pod once it is deleted or has
/// finished (`Succeeded`, `Failed`). Runs until the task is dropped.
pub(crate) async fn forget_gone_pods(client: Client, node: String, agent: Arc<podid_agent::Agent>) {
    let api: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let watch = watcher(api, config).default_backoff();
    futures_util::pin_mut!(watch);
    while let Some(event) = watch.next().await {
        let gone = match event {
            Ok(watcher::Event::Delete(pod)) => Some(pod),
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))
                if pod
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.as_deref())
                    .is_some_and(|phase| phase == "Succeeded" || phase == "Failed") =>
            {
                Some(pod)
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "the watch of this node's pods failed; listing again");
                None
            }
        };
        if let Some(uid) = gone.and_then(|p| p.metadata.uid)
            && agent.forget_pod(&uid)
        {
            tracing::info!(pod_uid = %uid, "forgot a pod that is gone");
        }
    }
}

#[cfg(test)]
mod tests {
    //! The clients against an HTTP server that replays recorded API responses
    //! (`tests/data/kube/`): lists, watch events, a dropped connection, a `410 Gone` and the
    //! list after it, and live reads of service accounts the cache lacks.

    use std::collections::{HashMap, VecDeque};
    use std::sync::Mutex;

    use axum::Router;
    use axum::body::Body;
    use axum::extract::{Path as UrlPath, RawQuery, State};
    use axum::http::StatusCode;
    use axum::routing::get;

    use super::*;

    const LIST_1: &str = include_str!("../tests/data/kube/list-1.json");
    const LIST_2: &str = include_str!("../tests/data/kube/list-2.json");
    const WATCH_1: &str = include_str!("../tests/data/kube/watch-1.jsonl");
    const WATCH_GONE: &str = include_str!("../tests/data/kube/watch-gone.jsonl");
    const GET_LATE: &str = include_str!("../tests/data/kube/get-late.json");
    const NOT_FOUND: &str = include_str!("../tests/data/kube/not-found.json");
    const PODS: &str = include_str!("../tests/data/kube/pods.json");
    const PODS_WATCH: &str = include_str!("../tests/data/kube/pods-watch.jsonl");

    /// What the next watch request of a resource gets.
    enum Watch {
        /// These events, then the connection is cut (no end of the chunked body).
        EventsThenDrop(&'static str),
        /// These events, and the response ends.
        Events(&'static str),
        /// Nothing, for ever.
        Hold,
    }

    /// The recorded responses, by resource (`serviceaccounts`, `pods`), and the requests seen.
    #[derive(Default)]
    struct Replay {
        lists: Mutex<HashMap<String, VecDeque<&'static str>>>,
        watches: Mutex<HashMap<String, VecDeque<Watch>>>,
        requests: Mutex<Vec<String>>,
    }

    impl Replay {
        fn script(self, resource: &str, lists: Vec<&'static str>, watches: Vec<Watch>) -> Self {
            if let Ok(mut l) = self.lists.lock() {
                l.insert(resource.into(), lists.into());
            }
            if let Ok(mut w) = self.watches.lock() {
                w.insert(resource.into(), watches.into());
            }
            self
        }

        fn requests(&self, resource: &str) -> Vec<String> {
            self.requests.lock().map_or_else(
                |_| Vec::new(),
                |r| r.iter().filter(|r| r.contains(resource)).cloned().collect(),
            )
        }
    }

    async fn all(
        State(replay): State<Arc<Replay>>,
        UrlPath(resource): UrlPath<String>,
        RawQuery(query): RawQuery,
    ) -> axum::response::Response {
        let query = query.unwrap_or_default();
        let watching = query
            .split('&')
            .any(|p| p == "watch=true" || p == "watch=1");
        let kind = if watching { "watch" } else { "list" };
        if let Ok(mut requests) = replay.requests.lock() {
            requests.push(format!("{kind} {resource} {query}"));
        }
        if !watching {
            let list = replay.lists.lock().ok().and_then(|mut lists| {
                let queue = lists.get_mut(&resource)?;
                if queue.len() > 1 {
                    queue.pop_front()
                } else {
                    queue.front().copied()
                }
            });
            return match list {
                Some(list) => json(StatusCode::OK, list),
                None => json(StatusCode::NOT_FOUND, NOT_FOUND),
            };
        }
        let step = replay
            .watches
            .lock()
            .ok()
            .and_then(|mut w| w.get_mut(&resource)?.pop_front())
            .unwrap_or(Watch::Hold);
        let body = match step {
            Watch::Events(events) => Body::from(events),
            // The events reach the client; a moment later the connection is cut.
            Watch::EventsThenDrop(events) => Body::from_stream(
                futures_util::stream::once(async move {
                    Ok::<_, std::io::Error>(axum::body::Bytes::from(events))
                })
                .chain(futures_util::stream::once(async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Err(std::io::Error::other("connection dropped by the replay"))
                })),
            ),
            Watch::Hold => Body::from_stream(futures_util::stream::pending::<
                Result<axum::body::Bytes, std::io::Error>,
            >()),
        };
        axum::response::Response::builder()
            .header("content-type", "application/json")
            .body(body)
            .unwrap_or_default()
    }

    async fn one(
        State(replay): State<Arc<Replay>>,
        UrlPath((namespace, name)): UrlPath<(String, String)>,
    ) -> axum::response::Response {
        if let Ok(mut requests) = replay.requests.lock() {
            requests.push(format!("get serviceaccounts {namespace}/{name}"));
        }
        if (namespace.as_str(), name.as_str()) == ("team", "late") {
            json(StatusCode::OK, GET_LATE)
        } else {
            json(StatusCode::NOT_FOUND, NOT_FOUND)
        }
    }

    fn json(status: StatusCode, body: &'static str) -> axum::response::Response {
        axum::response::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap_or_default()
    }

    /// Serves `replay` on loopback; a client whose kubeconfig points at it.
    async fn serve(replay: Arc<Replay>) -> (Client, tempfile::TempDir) {
        let router = Router::new()
            .route("/api/v1/{resource}", get(all))
            .route(
                "/api/v1/namespaces/{namespace}/serviceaccounts/{name}",
                get(one),
            )
            .with_state(replay);
        let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
            panic!("cannot listen on loopback");
        };
        let address = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let Ok(dir) = tempfile::tempdir() else {
            panic!("no temporary directory");
        };
        let kubeconfig = dir.path().join("kubeconfig");
        let _ = std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: replay\n  cluster:\n    server: http://{address}\nusers:\n- name: podid\n  user:\n    token: replay-token\ncontexts:\n- name: replay\n  context:\n    cluster: replay\n    user: podid\ncurrent-context: replay\n"
            ),
        );
        match client(Some(&kubeconfig)).await {
            Ok(client) => (client, dir),
            Err(e) => panic!("{e:#}"),
        }
    }

    async fn eventually(what: &str, check: impl Fn() -> bool) {
        for _ in 0..300 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("not within 15 s: {what}");
    }

    fn role(accounts: &ServiceAccounts, namespace: &str, name: &str) -> Option<String> {
        accounts
            .store
            .get(&ObjectRef::new(name).within(namespace))
            .map(|sa| to_account(&sa))
            .and_then(|a| a.annotations.get("eks.amazonaws.com/role-arn").cloned())
    }

    #[tokio::test]
    async fn service_accounts_list_watch_drop_gone_relist_and_live_reads() {
        let replay = Arc::new(Replay::default().script(
            "serviceaccounts",
            vec![LIST_1, LIST_2],
            vec![
                Watch::EventsThenDrop(WATCH_1),
                Watch::Events(WATCH_GONE),
                Watch::Hold,
            ],
        ));
        let (client, _dir) = serve(replay.clone()).await;
        let accounts = ServiceAccounts::watch(client);
        // The first list.
        eventually("the first list is cached", || accounts.synced()).await;
        // The watch's events (the role changed, a service account added), then the drop: the
        // watch resumes where it was.
        eventually("the watch's events are applied", || {
            role(&accounts, "team", "app").as_deref()
                == Some("arn:aws:iam::111122223333:role/second")
                && role(&accounts, "jobs", "worker").is_some()
        })
        .await;
        // 410 Gone on the resumed watch: listed again; the list's view replaces the cache.
        eventually("the list after 410 Gone is cached", || {
            role(&accounts, "team", "reporter").is_some()
                && role(&accounts, "jobs", "worker").is_none()
        })
        .await;
        let requests = replay.requests("serviceaccounts");
        let kinds: Vec<&str> = requests
            .iter()
            .filter_map(|r| r.split(' ').next())
            .collect();
        assert_eq!(
            kinds.get(..5),
            Some(&["list", "watch", "watch", "list", "watch"][..]),
            "{requests:?}"
        );
        assert!(
            requests
                .get(2)
                .is_some_and(|r| r.contains("resourceVersion=102")),
            "the watch after the drop resumes at the last event's version: {requests:?}"
        );
        // A service account the cache lacks is read live; one that does not exist is none.
        let late = accounts.read("team", "late").await;
        assert_eq!(
            late.ok()
                .flatten()
                .and_then(|a: Account| a.annotations.get("eks.amazonaws.com/role-arn").cloned())
                .as_deref(),
            Some("arn:aws:iam::111122223333:role/late")
        );
        assert!(matches!(accounts.read("team", "nobody").await, Ok(None)));
        // From the cache: no request.
        let before = replay.requests("serviceaccounts").len();
        assert!(matches!(accounts.read("team", "app").await, Ok(Some(_))));
        assert_eq!(replay.requests("serviceaccounts").len(), before);
    }

    #[tokio::test]
    async fn the_agent_forgets_pods_of_its_node_once_deleted_or_finished() {
        let replay = Arc::new(Replay::default().script(
            "pods",
            vec![PODS],
            vec![Watch::EventsThenDrop(PODS_WATCH), Watch::Hold],
        ));
        let (client, _dir) = serve(replay.clone()).await;
        let agent = Arc::new(podid_agent::Agent::new(
            podid_agent::AgentConfig::new("c"),
            Arc::new(Unused),
            Arc::new(podid_types::SystemClock),
            Arc::new(|_| 0),
        ));
        // Three cached pods (as a restarted agent has them): one keeps running, one is
        // deleted, one is a Job's pod that finishes.
        let far = i64::try_from(
            std::time::SystemTime::UNIX_EPOCH
                .elapsed()
                .map(|d| d.as_secs())
                .unwrap_or_default(),
        )
        .unwrap_or_default()
            + 3600;
        let pod = |uid: &str| {
            serde_json::json!({
                "key": format!("pod:{uid}"), "token": "a.b.c", "issuer": "https://issuer.example",
                "subject": "system:serviceaccount:default:app", "fetchedAt": 1, "refreshAt": 2,
                "lastUsed": 3, "credentials": {"accessKeyId": "ASIAX", "secretAccessKey": "s",
                "sessionToken": "t", "expiration": far,
                "assumedRoleArn": "arn:aws:sts::111122223333:assumed-role/r/s"}})
        };
        let state = serde_json::json!({"version": 1, "cluster": "c", "issuers": [],
            "pods": [pod("uid-running"), pod("uid-deleted"), pod("uid-job")]});
        assert_eq!(agent.restore(&state.to_string()), Ok(3));
        tokio::spawn(forget_gone_pods(client, "node-1".into(), agent.clone()));
        eventually("the deleted and the finished pods are forgotten", || {
            agent.cached_pods() == 1
        })
        .await;
        let requests = replay.requests("pods");
        assert!(
            requests
                .first()
                .is_some_and(|r| r.contains("fieldSelector=spec.nodeName%3Dnode-1")),
            "only this node's pods are listed: {requests:?}"
        );
        let remaining: serde_json::Value = serde_json::from_str(&agent.state()).unwrap_or_default();
        assert_eq!(remaining["pods"][0]["key"], "pod:uid-running");
    }

    /// An EKS Auth the pod test never calls.
    struct Unused;

    #[async_trait::async_trait]
    impl podid_agent::Upstream for Unused {
        async fn assume(
            &self,
            _: &str,
            _: &str,
        ) -> Result<podid_agent::UpstreamCredentials, podid_agent::UpstreamError> {
            Err(podid_agent::UpstreamError::Unavailable(
                "not in this test".into(),
            ))
        }
        async fn fetch(&self, _: &str) -> Result<String, String> {
            Err("not in this test".into())
        }
    }
}

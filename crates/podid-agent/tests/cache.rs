//! The cache's time-driven behaviours, on an injected clock: renewal ahead of expiry within the
//! QPS budget, no renewals for pods that stopped asking, the 15 s rule, eviction on permanent
//! refusals, and the size bound. (Hours of simulated time cannot run against a real server in a
//! test; the behaviours against a real podid server are in tests/compat/test_agent.py.)
#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use podid_agent::{
    Agent, AgentConfig, AgentError, Changes, Upstream, UpstreamCredentials, UpstreamError,
};
use podid_types::{Clock, FixedClock, Secret, Timestamp};

const START: i64 = 1_800_000_000;

/// EKS Auth's stand-in: credentials valid for `lifetime` seconds from the clock's now, or the
/// error it is told to give.
struct Eks {
    clock: Arc<FixedClock>,
    lifetime: i64,
    calls: AtomicU32,
    failure: Mutex<Option<UpstreamError>>,
    /// Held by a test to keep calls waiting after they are counted.
    gate: tokio::sync::Mutex<()>,
    /// The change feed's answers, in order; once they run out a read waits for ever.
    feed: Mutex<std::collections::VecDeque<Result<Option<Changes>, UpstreamError>>>,
    /// The cursor of each read of the feed.
    cursors: Mutex<Vec<Option<String>>>,
}

#[async_trait::async_trait]
impl Upstream for Eks {
    async fn assume(
        &self,
        _cluster: &str,
        _token: &str,
    ) -> Result<UpstreamCredentials, UpstreamError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        drop(self.gate.lock().await);
        if let Some(failure) = self.failure.lock().unwrap().clone() {
            return Err(failure);
        }
        Ok(UpstreamCredentials {
            access_key_id: format!("ASIA{n:016}"),
            secret_access_key: Secret::new("secret".into()),
            session_token: Secret::new("session".into()),
            expiration: self.clock.now().as_secs() + self.lifetime,
            assumed_role_arn: "arn:aws:sts::111122223333:assumed-role/app/eks-c-p-u".into(),
        })
    }

    async fn fetch(&self, url: &str) -> Result<String, String> {
        Err(format!("no network here: {url}"))
    }

    async fn changes(
        &self,
        _cluster: &str,
        cursor: Option<&str>,
        _wait_seconds: u64,
    ) -> Result<Option<Changes>, UpstreamError> {
        self.cursors.lock().unwrap().push(cursor.map(str::to_owned));
        let next = self.feed.lock().unwrap().pop_front();
        match next {
            Some(answer) => answer,
            None => std::future::pending().await,
        }
    }
}

fn setup(
    lifetime: i64,
    config: impl FnOnce(&mut AgentConfig),
) -> (Arc<Agent>, Arc<Eks>, Arc<FixedClock>) {
    let clock = Arc::new(FixedClock::new(Timestamp::from_secs(START)));
    let eks = Arc::new(Eks {
        clock: clock.clone(),
        lifetime,
        calls: AtomicU32::new(0),
        failure: Mutex::new(None),
        gate: tokio::sync::Mutex::new(()),
        feed: Mutex::new(std::collections::VecDeque::new()),
        cursors: Mutex::new(Vec::new()),
    });
    let mut c = AgentConfig::new("c");
    config(&mut c);
    let agent = Arc::new(Agent::new(c, eks.clone(), clock.clone(), Arc::new(|_| 0)));
    (agent, eks, clock)
}

/// A token of pod `uid` (unsigned: these tests never check signatures), valid for a day.
fn token(uid: &str) -> String {
    let part = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.{}",
        part(serde_json::json!({"alg": "RS256", "kid": "k"})),
        part(serde_json::json!({
            "iss": "https://issuer.example", "sub": "system:serviceaccount:default:app",
            "aud": ["pods.eks.amazonaws.com"], "iat": START, "nbf": START, "exp": START + 86_400,
            "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "app", "uid": "sa"},
                              "pod": {"name": uid, "uid": uid}}
        })),
        URL_SAFE_NO_PAD.encode(b"signature")
    )
}

async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
}

#[tokio::test]
async fn credentials_are_renewed_ahead_of_expiry_for_pods_that_still_ask() {
    let (agent, eks, clock) = setup(3600, |_| {});
    let jwt = token("p1");
    let first = agent.credentials(&jwt).await.unwrap();
    // Half the lifetime later (jitter is 0 here) the renewal is due.
    clock.advance_millis(29 * 60 * 1000);
    agent.maintain().await;
    settle().await;
    assert_eq!(eks.calls.load(Ordering::SeqCst), 1, "not due yet");
    clock.advance_millis(60 * 1000);
    agent.maintain().await;
    settle().await;
    assert_eq!(eks.calls.load(Ordering::SeqCst), 2);
    let renewed = agent.credentials(&jwt).await.unwrap();
    assert_ne!(renewed.access_key_id, first.access_key_id);
    assert_eq!(renewed.expiration.as_secs(), START + 30 * 60 + 3600);
    assert_eq!(eks.calls.load(Ordering::SeqCst), 2, "served from the cache");
}

#[tokio::test]
async fn pods_that_stopped_asking_are_not_renewed_and_expire() {
    let (agent, eks, clock) = setup(3600, |_| {});
    agent.credentials(&token("gone")).await.unwrap();
    // The pod asks no more: after a whole lifetime without a request it is not renewed.
    clock.advance_millis(3600 * 1000 - 16_000);
    agent.maintain().await;
    settle().await;
    // The renewal at half-life did happen (the pod had asked within the lifetime)...
    assert_eq!(eks.calls.load(Ordering::SeqCst), 2);
    clock.advance_millis(2 * 3600 * 1000);
    agent.maintain().await;
    settle().await;
    // ...but not a second one: the last request is more than a lifetime ago.
    assert_eq!(eks.calls.load(Ordering::SeqCst), 2);
    assert_eq!(agent.cached_pods(), 0, "expired entries are dropped");
}

#[tokio::test]
async fn renewals_stay_within_the_qps_budget() {
    let (agent, eks, clock) = setup(3600, |c| c.max_service_qps = 3);
    for i in 0..10 {
        agent.credentials(&token(&format!("p{i}"))).await.unwrap();
    }
    clock.advance_millis(31 * 60 * 1000);
    agent.maintain().await;
    settle().await;
    assert_eq!(
        eks.calls.load(Ordering::SeqCst),
        13,
        "10 misses, then 3 renewals"
    );
    clock.advance_millis(1000);
    agent.maintain().await;
    settle().await;
    assert_eq!(
        eks.calls.load(Ordering::SeqCst),
        16,
        "3 more a second later"
    );
}

#[tokio::test]
async fn credentials_within_15_seconds_of_expiry_are_not_served() {
    let (agent, eks, _clock) = setup(10, |_| {});
    let jwt = token("short");
    agent.credentials(&jwt).await.unwrap();
    agent.credentials(&jwt).await.unwrap();
    assert_eq!(
        eks.calls.load(Ordering::SeqCst),
        2,
        "each request asked EKS Auth"
    );
}

#[tokio::test]
async fn a_permanent_refusal_on_renewal_evicts_and_an_outage_keeps() {
    let (agent, eks, clock) = setup(3600, |_| {});
    let (kept, evicted) = (token("kept"), token("evicted"));
    let cached = agent.credentials(&kept).await.unwrap();
    agent.credentials(&evicted).await.unwrap();
    *eks.failure.lock().unwrap() = Some(UpstreamError::Unavailable("down".into()));
    clock.advance_millis(31 * 60 * 1000);
    agent.maintain().await;
    settle().await;
    assert_eq!(agent.cached_pods(), 2, "an outage keeps what is cached");
    assert_eq!(
        agent.credentials(&kept).await.unwrap().access_key_id,
        cached.access_key_id
    );
    *eks.failure.lock().unwrap() = Some(UpstreamError::Refused {
        status: 404,
        code: "ResourceNotFoundException".into(),
        message: "no association".into(),
        request_id: "r".into(),
    });
    clock.advance_millis(3 * 60 * 1000);
    agent.maintain().await;
    settle().await;
    assert_eq!(agent.cached_pods(), 0, "the association is gone: evicted");
    match agent.credentials(&kept).await {
        Err(AgentError::Upstream(UpstreamError::Refused { status: 404, .. })) => {}
        other => unreachable!("expected the refusal, got {other:?}"),
    }
    let metrics = agent.render_metrics();
    assert!(
        metrics.contains("pod_identity_cache_state{state=\"evicted\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_cache_is_bounded_and_drops_the_least_recently_used() {
    let (agent, eks, clock) = setup(3600, |c| c.max_cache_size = 2);
    let (a, b, c) = (token("a"), token("b"), token("c"));
    agent.credentials(&a).await.unwrap();
    clock.advance_millis(1000);
    agent.credentials(&b).await.unwrap();
    clock.advance_millis(1000);
    agent.credentials(&a).await.unwrap(); // a is now more recent than b
    agent.credentials(&c).await.unwrap();
    assert_eq!(agent.cached_pods(), 2);
    assert_eq!(eks.calls.load(Ordering::SeqCst), 3);
    agent.credentials(&a).await.unwrap();
    assert_eq!(eks.calls.load(Ordering::SeqCst), 3, "a stayed");
    agent.credentials(&b).await.unwrap();
    assert_eq!(eks.calls.load(Ordering::SeqCst), 4, "b was dropped");
}

#[tokio::test]
async fn caching_off_asks_every_time() {
    let (agent, eks, _) = setup(3600, |c| c.max_retention = Duration::ZERO);
    let jwt = token("nocache");
    agent.credentials(&jwt).await.unwrap();
    agent.credentials(&jwt).await.unwrap();
    assert_eq!(eks.calls.load(Ordering::SeqCst), 2);
    assert_eq!(agent.cached_pods(), 0);
}

#[tokio::test]
async fn the_retention_caps_the_time_before_renewal() {
    let (agent, eks, clock) = setup(3600, |c| c.max_retention = Duration::from_secs(600));
    agent.credentials(&token("capped")).await.unwrap();
    clock.advance_millis(599 * 1000);
    agent.maintain().await;
    settle().await;
    assert_eq!(eks.calls.load(Ordering::SeqCst), 1);
    clock.advance_millis(2000);
    agent.maintain().await;
    settle().await;
    assert_eq!(
        eks.calls.load(Ordering::SeqCst),
        2,
        "renewed after 10 minutes, not 30"
    );
}

/// A token of pod `uid` whose time claims are exactly `times` (unsigned, as in `token`).
fn token_with_times(uid: &str, times: serde_json::Value) -> String {
    let part = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let mut claims = serde_json::json!({
        "iss": "https://issuer.example", "sub": "system:serviceaccount:default:app",
        "aud": ["pods.eks.amazonaws.com"],
        "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "app", "uid": "sa"},
                          "pod": {"name": uid, "uid": uid}}
    });
    if let (Some(claims), Some(times)) = (claims.as_object_mut(), times.as_object()) {
        claims.extend(times.clone());
    }
    format!(
        "{}.{}.{}",
        part(serde_json::json!({"alg": "RS256", "kid": "k"})),
        part(claims),
        URL_SAFE_NO_PAD.encode(b"signature")
    )
}

/// Issue 11: time claims of other shapes than JSON integers skipped the checks.
#[tokio::test]
async fn tokens_with_bad_time_claims_are_refused_before_any_call_and_touch_no_cache() {
    let (agent, eks, _clock) = setup(3600, |_| {});
    let cached = agent.credentials(&token("p1")).await.unwrap();
    assert_eq!(eks.calls.load(Ordering::SeqCst), 1);
    let future = START + 3600;
    let now = START as f64;
    for (times, says) in [
        (serde_json::json!({"iat": START}), "no `exp` claim"),
        (serde_json::json!({"exp": null}), "`exp` claim is null"),
        (
            serde_json::json!({"exp": future.to_string()}),
            "`exp` claim is a string",
        ),
        (serde_json::json!({"exp": true}), "`exp` claim is a boolean"),
        (serde_json::json!({"exp": now - 60.5}), "expired at"),
        (
            serde_json::json!({"exp": 1e9}),
            "expired at 2001-09-09T01:46:40Z",
        ),
        (
            serde_json::json!({"exp": future, "nbf": now + 60.5}),
            "`nbf` claim says",
        ),
        (
            serde_json::json!({"exp": future, "iat": now + 61.25}),
            "`iat` claim says",
        ),
        (
            serde_json::json!({"exp": future, "nbf": "yesterday"}),
            "`nbf` claim is a string",
        ),
        (
            serde_json::json!({"exp": future, "iat": false}),
            "`iat` claim is a boolean",
        ),
    ] {
        // The same pod as the cached entry, and a new one.
        for uid in ["p1", "p2"] {
            match agent
                .credentials(&token_with_times(uid, times.clone()))
                .await
            {
                Err(AgentError::BadToken(message)) => {
                    assert!(message.contains(says), "{times}: {message}");
                }
                Err(other) => panic!("{times}: {other}"),
                Ok(_) => panic!("{times}: served"),
            }
        }
    }
    assert_eq!(eks.calls.load(Ordering::SeqCst), 1, "no upstream call");
    assert_eq!(agent.cached_pods(), 1);
    let again = agent.credentials(&token("p1")).await.unwrap();
    assert_eq!(
        again.access_key_id, cached.access_key_id,
        "the entry is untouched"
    );
    // Fractional claims inside the window are accepted.
    let fractional = token_with_times(
        "p3",
        serde_json::json!({"exp": now + 3600.5, "nbf": now - 0.25, "iat": now + 59.5}),
    );
    agent.credentials(&fractional).await.unwrap();
    assert_eq!(eks.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn bodies_follow_renewals_and_a_token_read_before_is_refused_once_it_expires() {
    let (agent, eks, clock) = setup(3600, |_| {});
    let jwt = token("p-expiring");
    let first = agent.credentials(&jwt).await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&first.to_json()).unwrap();
    assert_eq!(body["AccessKeyId"], first.access_key_id.as_str());
    assert_eq!(body["AccountId"], "111122223333");
    // Renewed credentials are what the next body says, not the first body kept.
    clock.advance_millis(30 * 60 * 1000);
    agent.maintain().await;
    settle().await;
    assert_eq!(eks.calls.load(Ordering::SeqCst), 2, "renewed");
    let renewed = agent.credentials(&jwt).await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&renewed.to_json()).unwrap();
    assert_ne!(body["AccessKeyId"], first.access_key_id.as_str());
    assert_eq!(body["AccessKeyId"], renewed.access_key_id.as_str());
    // Past the token's `exp` and the leeway, its claims are known but it is refused.
    clock.advance_millis((86_400 - 30 * 60 + 61) * 1000);
    let refused = agent.credentials(&jwt).await.unwrap_err();
    assert!(
        matches!(&refused, AgentError::BadToken(m) if m.contains("expired")),
        "{refused:?}"
    );
    assert_eq!(
        eks.calls.load(Ordering::SeqCst),
        2,
        "no call for an expired token"
    );
}

#[tokio::test]
async fn an_answer_that_a_change_overtook_is_asked_for_again_and_not_cached_stale() {
    let (agent, eks, _clock) = setup(3600, |_| {});
    let jwt = token("p1");
    // The first call is held in the upstream while the change feed forgets the service
    // account's credentials (its association changed).
    let held = eks.gate.lock().await;
    let asking = tokio::spawn({
        let (agent, jwt) = (agent.clone(), jwt.clone());
        async move { agent.credentials(&jwt).await }
    });
    settle().await;
    assert_eq!(eks.calls.load(Ordering::SeqCst), 1);
    agent.forget_service_account("default", "app");
    drop(held);
    let served = asking.await.unwrap().unwrap();
    // The answer of the held call may be of the old role: it was asked for again.
    assert_eq!(eks.calls.load(Ordering::SeqCst), 2);
    assert_eq!(served.access_key_id, format!("ASIA{:016}", 2));
    let cached = agent.credentials(&jwt).await.unwrap();
    assert_eq!(
        cached.access_key_id, served.access_key_id,
        "the second answer is cached"
    );
    assert_eq!(eks.calls.load(Ordering::SeqCst), 2);
}

fn refused(status: u16, code: &str) -> UpstreamError {
    UpstreamError::Refused {
        status,
        code: code.into(),
        message: "m".into(),
        request_id: "r".into(),
    }
}

fn page(cursor: &str, service_accounts: &[(&str, &str)]) -> Result<Option<Changes>, UpstreamError> {
    Ok(Some(Changes {
        service_accounts: service_accounts
            .iter()
            .map(|(n, s)| ((*n).to_owned(), (*s).to_owned()))
            .collect(),
        cursor: cursor.into(),
        reset: false,
    }))
}

#[tokio::test(start_paused = true)]
async fn the_feed_survives_refusals_and_a_cursor_it_no_longer_takes() {
    let (agent, eks, _clock) = setup(3600, |_| {});
    agent.credentials(&token("p1")).await.unwrap();
    eks.feed.lock().unwrap().extend([
        page("c1", &[]),
        // A server that no longer takes the cursor (another version): start again, and drop
        // the credentials, which may have missed changes.
        Err(refused(400, "InvalidParameterException")),
        page("c2", &[]),
        // Refused (the node's role lost `podid:ListChanges`): asked again a minute later,
        // and followed again once allowed.
        Err(refused(403, "AccessDeniedException")),
        Err(refused(403, "AccessDeniedException")),
        page("c3", &[("other", "sa")]),
    ]);
    let follower = tokio::spawn(agent.clone().follow_changes());
    // Paused time: the minute-long pauses pass at once when nothing else can run.
    tokio::time::sleep(Duration::from_secs(600)).await;
    let cursors = eks.cursors.lock().unwrap().clone();
    assert_eq!(
        cursors,
        [
            None,
            Some("c1"),
            None,
            Some("c2"),
            Some("c2"),
            Some("c2"),
            Some("c3")
        ]
        .map(|c| c.map(str::to_owned))
    );
    assert_eq!(
        agent.cached_pods(),
        0,
        "dropped when the cursor was refused"
    );
    follower.abort();
}

#[tokio::test]
async fn a_restarted_agent_resumes_the_feed_from_its_state() {
    let (agent, eks, _clock) = setup(3600, |_| {});
    agent.credentials(&token("p1")).await.unwrap();
    eks.feed.lock().unwrap().push_back(page("saved", &[]));
    let follower = tokio::spawn(agent.clone().follow_changes());
    settle().await;
    follower.abort();
    let state = agent.state();

    let (restarted, eks, _clock) = setup(3600, |_| {});
    assert_eq!(restarted.restore(&state), Ok(1));
    let follower = tokio::spawn(restarted.clone().follow_changes());
    settle().await;
    follower.abort();
    // The first read after the restart carries on from the cursor written before it, so
    // changes made while the agent was down reach its pods.
    assert_eq!(
        eks.cursors.lock().unwrap().clone(),
        [Some("saved".to_owned())]
    );
}

#![doc = include_str!("../README.md")]

mod cache;
mod http;
mod keys;
mod metrics;
mod upstream;

use std::sync::Arc;
use std::time::Duration;

pub use cache::{Agent, AgentError, ContainerCredentials, Random};
pub use http::{credentials_router, metrics_router, probe_router};
pub use metrics::Metrics;
pub use upstream::{
    Changes, EksAuth, Trust, Upstream, UpstreamCredentials, UpstreamError, document, http_agent,
    tls_hint,
};

/// How the agent runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The cluster whose pods this node runs (`--cluster-name`).
    pub cluster_name: String,
    /// The longest a credential is served before it is renewed
    /// (`--max-credential-retention-before-renewal`, 3 h).
    pub max_retention: Duration,
    /// The most pods cached (`--max-cache-size`, 2,000).
    pub max_cache_size: usize,
    /// Upstream calls per second for renewals (`--max-service-qps`, 3).
    pub max_service_qps: u32,
    /// The `Host` values requests may carry (the bind addresses).
    pub allowed_hosts: Vec<String>,
}

impl AgentConfig {
    /// The reference agent's defaults for `cluster_name`.
    pub fn new(cluster_name: impl Into<String>) -> Self {
        Self {
            cluster_name: cluster_name.into(),
            max_retention: Duration::from_secs(3 * 3600),
            max_cache_size: 2000,
            max_service_qps: 3,
            allowed_hosts: vec!["169.254.170.23".into(), "fd00:ec2::23".into()],
        }
    }
}

/// Credentials with at most this much time left are not served (the reference agent's rule).
pub const MIN_REMAINING: Duration = Duration::from_secs(15);

/// Builds the agent for `config` with `upstream` (EKS Auth), the system clock and a random
/// source for jitter.
pub fn agent(config: AgentConfig, upstream: Arc<dyn Upstream>) -> Arc<Agent> {
    Arc::new(Agent::new(
        config,
        upstream,
        Arc::new(podid_types::SystemClock),
        Arc::new(random_below),
    ))
}

/// A random number in `[0, bound)`, from the standard library's randomly keyed hasher (jitter
/// needs no cryptographic strength).
fn random_below(bound: u64) -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(bound);
    hasher.finish() % bound.max(1)
}

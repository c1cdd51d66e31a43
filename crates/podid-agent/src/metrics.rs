//! Prometheus metrics, with the reference agent's names so that its dashboards keep working:
//! `pod_identity_http_response{code}`, `pod_identity_cache_state{state=hit|miss|evicted}`,
//! `pod_identity_cache_errors{type=Recoverable|NonRecoverable,code}`; and podid's own
//! `podid_agent_upstream_calls{outcome=success|error}`, and the gauges `podid_agent_cached_pods`
//! and `podid_agent_key_sets` (issuers whose key set is held for checking rotated tokens).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The agent's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    hits: AtomicU64,
    ok_responses: AtomicU64,
    /// Every other series: (metric, labels) → count.
    counters: Mutex<BTreeMap<(&'static str, String), u64>>,
}

impl Metrics {
    /// Counts a response with HTTP status `code`.
    pub fn http_response(&self, code: u16) {
        if code == 200 {
            self.ok_responses.fetch_add(1, Ordering::Relaxed);
        } else {
            self.add("pod_identity_http_response", format!("code=\"{code}\""));
        }
    }

    pub(crate) fn cache_state(&self, state: &'static str) {
        if state == "hit" {
            self.hits.fetch_add(1, Ordering::Relaxed);
        } else {
            self.add("pod_identity_cache_state", format!("state=\"{state}\""));
        }
    }

    pub(crate) fn cache_error(&self, kind: &'static str, code: &str) {
        self.add(
            "pod_identity_cache_errors",
            format!("type=\"{kind}\",code=\"{}\"", escape(code)),
        );
    }

    pub(crate) fn upstream_call(&self, outcome: &'static str) {
        self.add(
            "podid_agent_upstream_calls",
            format!("outcome=\"{outcome}\""),
        );
    }

    fn add(&self, name: &'static str, labels: String) {
        if let Ok(mut counters) = self.counters.lock() {
            *counters.entry((name, labels)).or_default() += 1;
        }
    }

    /// The Prometheus text exposition, with the gauges `cached_pods` and `key_sets`.
    pub fn render(&self, cached_pods: usize, key_sets: usize) -> String {
        let mut series: BTreeMap<(&'static str, String), u64> =
            self.counters.lock().map(|c| c.clone()).unwrap_or_default();
        series.insert(
            ("pod_identity_http_response", "code=\"200\"".into()),
            self.ok_responses.load(Ordering::Relaxed),
        );
        series.insert(
            ("pod_identity_cache_state", "state=\"hit\"".into()),
            self.hits.load(Ordering::Relaxed),
        );
        for state in ["miss", "evicted"] {
            series
                .entry(("pod_identity_cache_state", format!("state=\"{state}\"")))
                .or_insert(0);
        }
        let mut out = String::new();
        let mut last = "";
        for ((name, labels), value) in &series {
            if *name != last {
                let help = match *name {
                    "pod_identity_http_response" => "Responses to pods, by HTTP status.",
                    "pod_identity_cache_state" => {
                        "Credential requests by cache outcome, and evictions."
                    }
                    "pod_identity_cache_errors" => "Failed EKS Auth calls, by kind and error code.",
                    _ => "EKS Auth calls, by outcome.",
                };
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                last = name;
            }
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
        let _ = writeln!(
            out,
            "# HELP podid_agent_cached_pods Pods with credentials in the cache.\n# TYPE podid_agent_cached_pods gauge\npodid_agent_cached_pods {cached_pods}"
        );
        let _ = writeln!(
            out,
            "# HELP podid_agent_key_sets Issuers whose key set is held for checking rotated tokens.\n# TYPE podid_agent_key_sets gauge\npodid_agent_key_sets {key_sets}"
        );
        out
    }
}

fn escape(value: &str) -> String {
    value
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_reference_names() {
        let m = Metrics::default();
        m.http_response(200);
        m.http_response(403);
        m.cache_state("hit");
        m.cache_state("miss");
        m.cache_error("NonRecoverable", "AccessDeniedException");
        m.upstream_call("success");
        let text = m.render(1, 0);
        for line in [
            "pod_identity_http_response{code=\"200\"} 1",
            "pod_identity_http_response{code=\"403\"} 1",
            "pod_identity_cache_state{state=\"hit\"} 1",
            "pod_identity_cache_state{state=\"miss\"} 1",
            "pod_identity_cache_state{state=\"evicted\"} 0",
            "pod_identity_cache_errors{type=\"NonRecoverable\",code=\"AccessDeniedException\"} 1",
            "podid_agent_upstream_calls{outcome=\"success\"} 1",
            "podid_agent_cached_pods 1",
            "podid_agent_key_sets 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
    }
}

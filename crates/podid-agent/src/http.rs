//! The agent's HTTP surfaces: `GET /v1/credentials` for pods; `/healthz` and `/readyz` for the
//! kubelet; `/metrics` for Prometheus.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::cache::{Agent, AgentError};
use crate::upstream::UpstreamError;

/// The credentials endpoint: `GET /v1/credentials` with the pod's raw service-account token in
/// `Authorization`. Requests whose `Host` is not one of the agent's addresses are refused
/// (403), so that a page in a browser on the node cannot have it fetch credentials.
pub fn credentials_router(agent: Arc<Agent>) -> Router {
    Router::new()
        .route("/v1/credentials", get(credentials))
        .with_state(agent)
}

/// `/healthz` (the process serves) and `/readyz` (its credential listeners are bound; 503
/// before). Neither calls the agent's own listeners or EKS Auth, so a slow upstream never
/// makes the kubelet restart the agent.
pub fn probe_router(ready: Arc<AtomicBool>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|State(ready): State<Arc<AtomicBool>>| async move {
                if ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ready\n")
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not ready: binding listeners\n",
                    )
                }
            }),
        )
        .with_state(ready)
}

/// `/metrics` (Prometheus text format), beside the probes.
pub fn metrics_router(agent: Arc<Agent>, ready: Arc<AtomicBool>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(agent): State<Arc<Agent>>| async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    agent.render_metrics(),
                )
            }),
        )
        .with_state(agent)
        .merge(probe_router(ready))
}

async fn credentials(State(agent): State<Arc<Agent>>, request: axum::extract::Request) -> Response {
    let response = answer(&agent, request.headers()).await;
    agent.metrics().http_response(response.status().as_u16());
    response
}

async fn answer(agent: &Arc<Agent>, headers: &HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(host_name)
        .unwrap_or_default();
    if !agent
        .config()
        .allowed_hosts
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(host))
    {
        return text(
            StatusCode::FORBIDDEN,
            "Called agent through invalid address: use one of the agent's bind addresses (`--bind-hosts`) as the host".into(),
        );
    }
    let token = match headers.get(header::AUTHORIZATION).map(|v| v.to_str()) {
        Some(Ok(token)) => token,
        Some(Err(_)) => {
            return text(
                StatusCode::BAD_REQUEST,
                "the service account token cannot be parsed: it has characters a JWT cannot have"
                    .into(),
            );
        }
        None => "",
    };
    match agent.credentials_body(token).await {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(AgentError::BadToken(message)) => text(StatusCode::BAD_REQUEST, message),
        Err(AgentError::Upstream(error @ UpstreamError::Refused { status, .. })) => {
            tracing::info!(%error, "EKS Auth refused a pod's credentials");
            text(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                error.to_string(),
            )
        }
        Err(AgentError::Upstream(error @ UpstreamError::Unavailable(_))) => {
            tracing::warn!(%error, "no credentials for a pod: EKS Auth is unavailable");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{error}; the agent serves cached pods meanwhile, retry shortly"),
            )
        }
    }
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The host of a `Host` header, without its port or an IPv6 literal's brackets.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match host.rsplit_once(':') {
        // One colon: `name:port`. More: an IPv6 literal without brackets.
        Some((name, _)) if !name.contains(':') => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::host_name;

    #[test]
    fn host_names_lose_ports_and_brackets() {
        assert_eq!(host_name("169.254.170.23"), "169.254.170.23");
        assert_eq!(host_name("169.254.170.23:80"), "169.254.170.23");
        assert_eq!(host_name("[fd00:ec2::23]:80"), "fd00:ec2::23");
        assert_eq!(host_name("[fd00:ec2::23]"), "fd00:ec2::23");
        assert_eq!(host_name("fd00:ec2::23"), "fd00:ec2::23");
        assert_eq!(host_name("localhost:2703"), "localhost");
    }
}

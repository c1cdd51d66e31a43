#![doc = include_str!("../README.md")]

mod addon_ops;
mod audit;
mod console;
mod console_graph;
mod eks_ops;
mod errors;
mod iam_ops;
mod query;
mod service_accounts;
mod sts_ops;
mod throttle;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::routing::{any, get};
use podid_core::Core;

pub use errors::ApiError;
pub use throttle::{Rate, Throttles};

/// The largest request body accepted: IAM documents are at most 131,072 characters, which a form
/// encoding can triple.
pub const MAX_BODY: usize = 1024 * 1024;

/// What every request handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The IAM.
    pub core: Arc<Core>,
    /// The server's public base URL (`http://127.0.0.1:4599`): local clusters' issuers are
    /// under it.
    pub public_url: String,
    /// Per-caller limits on the calls that issue credentials.
    pub throttles: Arc<Throttles>,
}

/// Marks a request that came over TLS (the listener inserts it): `aws:SecureTransport` is
/// true for it.
#[derive(Clone, Copy, Debug)]
pub struct SecureTransport;

/// `GET /readyz`: 200 when the store answers a read, 503 otherwise (the store's error is logged) (for a
/// load balancer's or Kubernetes' readiness probe; `/healthz` only says the process serves).
async fn ready(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match state.core.accounts().await {
        Ok(_) => "ok".into_response(),
        Err(e) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("the store does not answer (its error is in the server's log): {e}"),
        )
            .into_response(),
    }
}

/// The server's routes.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", any(query::handle))
        .route("/clusters", any(eks_ops::handle))
        .route("/clusters/{*rest}", any(eks_ops::handle))
        .route("/addons/{*rest}", any(eks_ops::handle))
        .route("/podid/{*rest}", any(eks_ops::handle))
        .route(
            "/id/{id}/.well-known/openid-configuration",
            get(eks_ops::openid_configuration),
        )
        .route("/id/{id}/keys", get(eks_ops::keys))
        .route("/console", any(console::handle))
        .route("/console/", any(console::handle))
        .route("/console/{*rest}", any(console::handle))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .fallback(query::not_found)
        .with_state(state)
}

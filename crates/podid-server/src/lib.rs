#![doc = include_str!("../README.md")]

mod errors;
mod iam_ops;
mod query;
mod sts_ops;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::routing::any;
use podid_core::Iam;

pub use errors::ApiError;

/// The largest request body accepted: IAM documents are at most 131,072 characters, which a form
/// encoding can triple.
pub const MAX_BODY: usize = 1024 * 1024;

/// What every request handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The IAM.
    pub iam: Arc<Iam>,
}

/// The server's routes.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", any(query::handle))
        .fallback(query::not_found)
        .with_state(state)
}

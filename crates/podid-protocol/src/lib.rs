#![doc = include_str!("../README.md")]

mod model;
mod query;
mod xml;

pub use model::{Model, Operation, Service};
pub use query::{QueryRequest, ValidationErrors, form_params};
pub use xml::{error_response, escape, query_response};

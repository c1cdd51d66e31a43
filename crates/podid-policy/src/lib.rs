#![doc = include_str!("../README.md")]

mod ast;
mod cases;
mod condition;
mod date;
mod error;
mod eval;
mod explain;
pub mod json;
mod lint;
mod parse;
mod print;
mod request;
mod variables;
mod wildcard;

pub use ast::{
    Effect, Grant, Policy, PolicyKind, SourcePosition, Statement, UnknownPolicyKind, Version,
};
pub use cases::{Case, CaseFileError, CaseResult};
pub use condition::{Condition, Operator, OperatorSpec, SetQualifier};
/// Milliseconds since the epoch of a date as IAM's date conditions read it: epoch seconds or an
/// ISO 8601 date in one of the W3C profiles (`2026-12-04`, `2026-12-04T08:00:00Z`, ...).
pub use date::parse_millis as parse_date;
pub use error::{ErrorKind, PolicyError, PolicyErrors};
pub use eval::{AllowPath, Decision, NamedPolicy, Outcome, PolicySet, StatementMatch};
pub use explain::{ExplainedStatement, Explanation, NearMiss};
pub use lint::{Finding, Severity};
pub use parse::ParseOptions;

/// Whether `text` matches `pattern` as IAM's `StringLike` reads it: `*` is any run of
/// characters, `?` exactly one, everything else literal.
pub fn string_like(pattern: &str, text: &str) -> bool {
    wildcard::Pattern::new(pattern).matches(text)
}
pub use request::{
    Context, ContextValue, InvalidCaller, Ownership, Principal, PrincipalType, Request,
};

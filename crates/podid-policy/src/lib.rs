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
pub use error::{ErrorKind, PolicyError, PolicyErrors};
pub use eval::{AllowPath, Decision, NamedPolicy, Outcome, PolicySet, StatementMatch};
pub use explain::{ExplainedStatement, Explanation, NearMiss};
pub use lint::{Finding, Severity};
pub use parse::ParseOptions;
pub use request::{
    Context, ContextValue, InvalidCaller, Ownership, Principal, PrincipalType, Request,
};

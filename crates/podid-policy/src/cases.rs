//! Policy test cases: the format of `shared/conformance/iam-cases.json`, which is also the format
//! of users' own policy unit tests (`podid policy simulate --cases FILE`).
//!
//! A file is a JSON array of cases:
//!
//! ```json
//! [{
//!   "name": "trust_names_account_no_identity",
//!   "policies": {"identity": [], "resource": [{"Version": "2012-10-17", "Statement": []}],
//!                "boundary": [], "session": []},
//!   "request": {
//!     "principal": {"type": "User", "arn": "arn:aws:iam::111111111111:user/alice",
//!                   "account": "111111111111", "user_id": "AIDAEXAMPLE"},
//!     "action": "sts:AssumeRole",
//!     "resource": "arn:aws:iam::111111111111:role/r",
//!     "resource_policy_kind": "trust",
//!     "context": {"aws:RequestTag/team": "a", "aws:TagKeys": ["team"]}
//!   },
//!   "same_account": true,
//!   "expected": "ImplicitDeny"
//! }]
//! ```
//!
//! Principal types: `User` (`arn`, `user_id`), `AssumedRole` (`arn` of the session, `role_arn`,
//! `role_id`), `FederatedUser` (`arn`), `Root` (`account`), `Service` (`service`), `WebIdentity`
//! (`federated`), `Anonymous`. When `resource_policy_kind` is absent, the resource policies are a
//! role trust policy if the resource is an IAM role and the action an `sts:` action, and an
//! ordinary resource-based policy otherwise. `same_account` defaults to `true`.

use std::fmt;

use podid_types::Arn;

use crate::eval::{Decision, NamedPolicy, Outcome, PolicySet};
use crate::json::{self, Limits, LineIndex, Member, Node, Position, Value};
use crate::parse::ParseOptions;
use crate::request::{Context, ContextValue, Ownership, Principal, Request};
use crate::{Explanation, Policy, PolicyKind};

/// The largest value of one request-context key in a case file, in bytes: far beyond what AWS
/// requests carry, and small enough that no wildcard match against it is slow.
const MAX_CONTEXT_VALUE: usize = 64 * 1024;

/// One case: a request, the policies that apply, and the expected outcome.
#[derive(Clone, Debug)]
pub struct Case {
    name: String,
    set: PolicySet,
    principal: Principal,
    action: String,
    resource: String,
    context: Context,
    ownership: Ownership,
    expected: Outcome,
    position: Position,
}

/// A case and what the engine decided.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// The case's name.
    pub name: String,
    /// Where the case starts in its file.
    pub position: Position,
    /// The expected outcome.
    pub expected: Outcome,
    /// The decision, explained.
    pub explanation: Explanation,
    /// The AccessDenied message AWS would give, for a denied request.
    pub message: Option<String>,
}

impl CaseResult {
    /// Whether the engine decided as expected.
    pub fn passed(&self) -> bool {
        self.expected == self.explanation.outcome
    }
}

/// A case file that cannot be read: where, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseFileError {
    path: String,
    position: Option<Position>,
    message: String,
}

impl CaseFileError {
    /// The JSON path of the offending value, such as `$[3].request.principal.type`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The line and column, when known.
    pub fn position(&self) -> Option<Position> {
        self.position
    }
}

impl fmt::Display for CaseFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at `{}`", self.message, self.path)?;
        if let Some(p) = self.position {
            write!(f, ", {p}")?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for CaseFileError {}

impl Case {
    /// Reads every case of a case file.
    pub fn load(bytes: &[u8]) -> Result<Vec<Self>, CaseFileError> {
        let (text, root) =
            json::parse_bytes(bytes, Limits::CASE_FILE).map_err(|e| CaseFileError {
                path: "$".into(),
                position: Some(e.position),
                message: format!("the file is not valid JSON: {}", e.kind_text()),
            })?;
        let lines = LineIndex::new(&text);
        let reader = Reader {
            text: &text,
            lines: &lines,
        };
        let Value::Array(items) = &root.value else {
            return Err(reader.error("$", &root, "a case file is a JSON array of cases"));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| reader.case(item, &format!("$[{i}]")))
            .collect()
    }

    /// The case's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The expected outcome.
    pub fn expected(&self) -> Outcome {
        self.expected
    }

    /// Decides the case's request.
    pub fn decide(&self) -> Decision {
        self.set.evaluate(&self.request())
    }

    /// Decides the case and explains the decision.
    pub fn run(&self) -> CaseResult {
        let request = self.request();
        let decision = self.set.evaluate(&request);
        CaseResult {
            name: self.name.clone(),
            position: self.position,
            expected: self.expected,
            explanation: decision.explain(&self.set, &request),
            message: decision.access_denied_message(&request, true),
        }
    }

    fn request(&self) -> Request<'_> {
        Request::new(&self.principal, &self.action, &self.resource, &self.context)
            .with_ownership(self.ownership)
    }
}

struct Reader<'a> {
    text: &'a str,
    lines: &'a LineIndex,
}

impl Reader<'_> {
    fn case(&self, node: &Node, path: &str) -> Result<Case, CaseFileError> {
        let members = self.object(
            node,
            path,
            &[
                "name",
                "policies",
                "request",
                "same_account",
                "expected",
                "source",
                "confidence",
                "notes",
            ],
        )?;
        let name = self.string_field(node, members, path, "name")?.to_owned();
        let request_path = format!("{path}.request");
        let request = self.required(node, members, path, "request")?;
        let request_members = self.object(
            request,
            &request_path,
            &[
                "principal",
                "action",
                "resource",
                "resource_policy_kind",
                "context",
            ],
        )?;
        let principal = self.principal(request, request_members, &request_path)?;
        let action = self
            .string_field(request, request_members, &request_path, "action")?
            .to_owned();
        let resource = self
            .string_field(request, request_members, &request_path, "resource")?
            .to_owned();
        let resource_kind = match field(request_members, "resource_policy_kind") {
            None => {
                let role = resource
                    .parse::<Arn>()
                    .is_ok_and(|a| a.service() == "iam" && a.resource().starts_with("role/"));
                if role && action.to_ascii_lowercase().starts_with("sts:") {
                    PolicyKind::Trust
                } else {
                    PolicyKind::Resource
                }
            }
            Some(node) => match node.as_str() {
                Some("trust") => PolicyKind::Trust,
                Some("resource") => PolicyKind::Resource,
                _ => {
                    return Err(self.error(
                        &format!("{request_path}.resource_policy_kind"),
                        node,
                        "`resource_policy_kind` is `\"trust\"` or `\"resource\"`",
                    ));
                }
            },
        };
        let context = match field(request_members, "context") {
            None => Context::new(),
            Some(node) => self.context(node, &format!("{request_path}.context"))?,
        };
        let ownership = match field(members, "same_account") {
            None => Ownership::SameAccount,
            Some(Node {
                value: Value::Bool(true),
                ..
            }) => Ownership::SameAccount,
            Some(Node {
                value: Value::Bool(false),
                ..
            }) => Ownership::CrossAccount,
            Some(node) => {
                return Err(self.error(
                    &format!("{path}.same_account"),
                    node,
                    "`same_account` is `true` or `false`",
                ));
            }
        };
        let expected_node = self.required(node, members, path, "expected")?;
        let expected = match expected_node.as_str() {
            Some("Allow") => Outcome::Allow,
            Some("ImplicitDeny") => Outcome::ImplicitDeny,
            Some("ExplicitDeny") => Outcome::ExplicitDeny,
            _ => {
                return Err(self.error(
                    &format!("{path}.expected"),
                    expected_node,
                    "`expected` is `\"Allow\"`, `\"ImplicitDeny\"` or `\"ExplicitDeny\"`",
                ));
            }
        };
        let mut set = PolicySet::new().resource_kind(resource_kind);
        if let Some(policies) = field(members, "policies") {
            let policies_path = format!("{path}.policies");
            let kinds = self.object(
                policies,
                &policies_path,
                &["identity", "resource", "boundary", "session"],
            )?;
            for member in kinds {
                let kind = match member.key.as_str() {
                    "identity" => PolicyKind::Identity,
                    "boundary" => PolicyKind::Boundary,
                    "session" => PolicyKind::Session,
                    _ => resource_kind,
                };
                let list_path = format!("{policies_path}.{}", member.key);
                let Value::Array(docs) = &member.value.value else {
                    return Err(self.error(
                        &list_path,
                        &member.value,
                        "expected an array of policy documents",
                    ));
                };
                for (i, doc) in docs.iter().enumerate() {
                    let doc_path = format!("{list_path}[{i}]");
                    let policy = Policy::from_json(
                        self.text,
                        self.lines,
                        doc,
                        &doc_path,
                        ParseOptions::simulation(kind),
                    )
                    .map_err(|errors| {
                        let first = errors.first();
                        CaseFileError {
                            path: first.path().to_owned(),
                            position: first.position(),
                            message: format!("invalid {} policy: {}", kind.as_str(), first.kind()),
                        }
                    })?;
                    let named = NamedPolicy::new(format!("{}[{i}]", member.key), policy);
                    set = set.with(kind, named);
                }
            }
        }
        for optional in ["source", "confidence", "notes"] {
            if let Some(node) = field(members, optional)
                && node.as_str().is_none()
            {
                return Err(self.error(&format!("{path}.{optional}"), node, "expected a string"));
            }
        }
        Ok(Case {
            name,
            set,
            principal,
            action,
            resource,
            context,
            ownership,
            expected,
            position: self.lines.position(self.text, node.span.start),
        })
    }

    fn principal(
        &self,
        request: &Node,
        members: &[Member],
        request_path: &str,
    ) -> Result<Principal, CaseFileError> {
        let path = format!("{request_path}.principal");
        let node = self.required(request, members, request_path, "principal")?;
        let fields = self.object(
            node,
            &path,
            &[
                "type",
                "arn",
                "account",
                "user_id",
                "role_arn",
                "role_id",
                "service",
                "federated",
            ],
        )?;
        let get = |name: &str| -> Result<Option<&str>, CaseFileError> {
            match field(fields, name) {
                None => Ok(None),
                Some(n) => n
                    .as_str()
                    .map(Some)
                    .ok_or_else(|| self.error(&format!("{path}.{name}"), n, "expected a string")),
            }
        };
        let need = |name: &str| -> Result<&str, CaseFileError> {
            get(name)?.ok_or_else(|| {
                self.error(&path, node, &format!("this principal type needs `{name}`"))
            })
        };
        let invalid = |e: crate::InvalidCaller| self.error(&path, node, &e.to_string());
        let principal = match need("type")? {
            "User" => Principal::user(need("arn")?, get("user_id")?.unwrap_or_default())
                .map_err(invalid)?,
            "AssumedRole" => {
                // The role id may be given, or read from `user_id` (`ROLEID:SESSION`).
                let user_id = get("user_id")?;
                let role_id = match (get("role_id")?, user_id.and_then(|u| u.split_once(':'))) {
                    (Some(id), _) => id,
                    (None, Some((id, _))) => id,
                    (None, None) => "",
                };
                let principal = Principal::assumed_role(need("arn")?, need("role_arn")?, role_id)
                    .map_err(invalid)?;
                if let (Some(given), Some(derived)) = (user_id, principal.user_id())
                    && given != derived
                {
                    return Err(self.error(
                            &format!("{path}.user_id"),
                            field(fields, "user_id").unwrap_or(node),
                            &format!("`user_id` is `{given}` but the role id and session name make `{derived}`"),
                        ));
                }
                principal
            }
            "FederatedUser" => Principal::federated_user(need("arn")?).map_err(invalid)?,
            "Root" => Principal::root(need("account")?.parse().map_err(
                |e: podid_types::InvalidAccountId| self.error(&path, node, &e.to_string()),
            )?),
            "Service" => Principal::service(need("service")?),
            "WebIdentity" => Principal::web_identity(need("federated")?),
            "Anonymous" => Principal::anonymous(),
            other => {
                return Err(self.error(
                    &format!("{path}.type"),
                    field(fields, "type").unwrap_or(node),
                    &format!("unknown principal type `{other}`: use User, AssumedRole, FederatedUser, Root, Service, WebIdentity or Anonymous"),
                ));
            }
        };
        if let (Some(account), Some(actual)) = (get("account")?, principal.account())
            && account != actual.as_str()
        {
            return Err(self.error(
                &format!("{path}.account"),
                field(fields, "account").unwrap_or(node),
                &format!(
                    "`account` is `{account}` but the principal's ARN is in account `{actual}`"
                ),
            ));
        }
        Ok(principal)
    }

    fn context(&self, node: &Node, path: &str) -> Result<Context, CaseFileError> {
        let Value::Object(members) = &node.value else {
            return Err(self.error(path, node, "`context` is an object of condition keys"));
        };
        let mut pairs = Vec::with_capacity(members.len());
        for member in members {
            let key_path = format!("{path}.{}", member.key);
            let scalar = |v: &Value| match v {
                Value::String(s) | Value::Number(s) => Some(s.clone()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            };
            let value = match &member.value.value {
                Value::Array(items) => {
                    let mut values = Vec::with_capacity(items.len());
                    for (i, item) in items.iter().enumerate() {
                        values.push(scalar(&item.value).ok_or_else(|| {
                            self.error(
                                &format!("{key_path}[{i}]"),
                                item,
                                "expected a string, number or boolean",
                            )
                        })?);
                    }
                    ContextValue::Many(values)
                }
                v => ContextValue::One(scalar(v).ok_or_else(|| {
                    self.error(
                        &key_path,
                        &member.value,
                        "expected a string, number, boolean or an array of them",
                    )
                })?),
            };
            let size = match &value {
                ContextValue::One(v) => v.len(),
                ContextValue::Many(vs) => vs.iter().map(String::len).sum(),
            };
            if size > MAX_CONTEXT_VALUE {
                return Err(self.error(
                    &key_path,
                    &member.value,
                    &format!("the value is {size} bytes; request-context values are at most {MAX_CONTEXT_VALUE}"),
                ));
            }
            pairs.push((member.key.clone(), value));
        }
        Ok(Context::from_pairs(pairs))
    }

    fn object<'n>(
        &self,
        node: &'n Node,
        path: &str,
        allowed: &[&str],
    ) -> Result<&'n [Member], CaseFileError> {
        let Value::Object(members) = &node.value else {
            return Err(self.error(
                path,
                node,
                &format!("expected an object, found {}", node.value.kind()),
            ));
        };
        if let Some(unknown) = members.iter().find(|m| !allowed.contains(&m.key.as_str())) {
            return Err(CaseFileError {
                path: format!("{path}.{}", unknown.key),
                position: Some(self.lines.position(self.text, unknown.key_span.start)),
                message: format!(
                    "unknown field `{}`: expected one of {}",
                    unknown.key,
                    allowed.join(", ")
                ),
            });
        }
        Ok(members)
    }

    fn required<'n>(
        &self,
        node: &'n Node,
        members: &'n [Member],
        path: &str,
        name: &str,
    ) -> Result<&'n Node, CaseFileError> {
        field(members, name)
            .ok_or_else(|| self.error(path, node, &format!("missing field `{name}`")))
    }

    fn string_field<'n>(
        &self,
        node: &'n Node,
        members: &'n [Member],
        path: &str,
        name: &str,
    ) -> Result<&'n str, CaseFileError> {
        let value = self.required(node, members, path, name)?;
        value.as_str().ok_or_else(|| {
            self.error(
                &format!("{path}.{name}"),
                value,
                &format!("`{name}` must be a string"),
            )
        })
    }

    fn error(&self, path: &str, node: &Node, message: &str) -> CaseFileError {
        CaseFileError {
            path: path.to_owned(),
            position: Some(self.lines.position(self.text, node.span.start)),
            message: message.to_owned(),
        }
    }
}

fn field<'n>(members: &'n [Member], name: &str) -> Option<&'n Node> {
    members.iter().find(|m| m.key == name).map(|m| &m.value)
}

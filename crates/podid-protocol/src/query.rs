//! awsQuery requests: `Action=CreateRole&Version=2010-05-08&RoleName=r&Tags.member.1.Key=k...`,
//! decoded into a JSON value of the operation's input shape and validated against the model.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::model::{Model, Operation, Shape, StringRules};

/// A decoded, validated request.
#[derive(Clone, Debug)]
pub struct QueryRequest {
    /// The operation.
    pub operation: Operation,
    /// The input, shaped like the model's input structure (member names as in the model).
    pub input: Value,
}

/// The parameters of a form body or query string, percent-decoded, `+` as space.
pub fn form_params(text: &str) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    for part in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        params.insert(decode(k), decode(v));
    }
    params
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |j: usize| bytes.get(j).and_then(|c| char::from(*c).to_digit(16));
                if let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) {
                    out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Constraint violations, in AWS's `N validation errors detected: ...` form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationErrors {
    errors: Vec<String>,
    /// IAM's own wording for some violations, which replaces the generic message.
    special: Option<String>,
}

impl ValidationErrors {
    /// The individual violations, such as `Value at 'roleName' failed to satisfy constraint: ...`.
    pub fn violations(&self) -> &[String] {
        &self.errors
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(special) = &self.special {
            return f.write_str(special);
        }
        let n = self.errors.len();
        write!(
            f,
            "{n} validation error{} detected: {}",
            if n == 1 { "" } else { "s" },
            self.errors.join("; ")
        )
    }
}

impl std::error::Error for ValidationErrors {}

impl QueryRequest {
    /// Decodes the parameters of `operation` and checks them against the model.
    pub fn decode(
        model: &Model,
        operation: &Operation,
        params: &BTreeMap<String, String>,
    ) -> Result<Self, ValidationErrors> {
        let mut errors = Vec::new();
        let input = match &operation.input {
            Some(shape) => {
                let decoder = Decoder { model, params };
                let value = decoder
                    .structure(shape, "")
                    .unwrap_or(Value::Object(Map::new()));
                check(model, shape, &value, "", &mut errors);
                value
            }
            None => Value::Object(Map::new()),
        };
        if errors.is_empty() {
            Ok(Self {
                operation: operation.clone(),
                input,
            })
        } else {
            errors.sort_by(|a, b| a.0.cmp(&b.0));
            let special = match errors.as_slice() {
                [(member, e)]
                    if !model.echo_values
                        && e.contains("Member must satisfy regular expression pattern") =>
                {
                    iam_wording(member)
                }
                _ => None,
            };
            Err(ValidationErrors {
                errors: errors.into_iter().map(|(_, e)| e).collect(),
                special,
            })
        }
    }

    /// A string member of the input.
    pub fn str(&self, member: &str) -> Option<&str> {
        self.input.get(member).and_then(Value::as_str)
    }
}

struct Decoder<'a> {
    model: &'a Model,
    params: &'a BTreeMap<String, String>,
}

impl Decoder<'_> {
    fn value(&self, shape_name: &str, prefix: &str) -> Option<Value> {
        match self.model.shape(shape_name)? {
            Shape::Structure { .. } => self.structure(shape_name, prefix),
            Shape::List { member, .. } => {
                // `Prefix.member.N`; an empty `Prefix=` is an empty list.
                let base = format!("{prefix}.member.");
                let mut items: BTreeMap<u64, Value> = BTreeMap::new();
                for key in self
                    .params
                    .range(base.clone()..)
                    .map(|(k, _)| k)
                    .take_while(|k| k.starts_with(&base))
                {
                    let rest = key.get(base.len()..).unwrap_or_default();
                    let index = rest.split('.').next().unwrap_or_default();
                    let Ok(n) = index.parse::<u64>() else {
                        continue;
                    };
                    if items.contains_key(&n) {
                        continue;
                    }
                    if let Some(v) = self.value(member, &format!("{base}{n}")) {
                        items.insert(n, v);
                    }
                }
                if items.is_empty() {
                    return self
                        .params
                        .contains_key(prefix)
                        .then(|| Value::Array(Vec::new()));
                }
                Some(Value::Array(items.into_values().collect()))
            }
            Shape::Map { key, value } => {
                let base = format!("{prefix}.entry.");
                let mut out = Map::new();
                let indexes: Vec<String> = self
                    .params
                    .range(base.clone()..)
                    .map(|(k, _)| k)
                    .take_while(|k| k.starts_with(&base))
                    .filter_map(|k| {
                        k.get(base.len()..)
                            .and_then(|r| r.split('.').next())
                            .map(str::to_owned)
                    })
                    .collect();
                for n in indexes {
                    let k = self.value(key, &format!("{base}{n}.key"));
                    let v = self.value(value, &format!("{base}{n}.value"));
                    if let (Some(Value::String(k)), Some(v)) = (k, v) {
                        out.insert(k, v);
                    }
                }
                (!out.is_empty()).then_some(Value::Object(out))
            }
            Shape::Integer { .. } => {
                self.params
                    .get(prefix)
                    .map(|v| match v.trim().parse::<i64>() {
                        Ok(n) => Value::from(n),
                        Err(_) => Value::String(v.clone()),
                    })
            }
            Shape::Boolean => self.params.get(prefix).map(|v| match v.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                other => Value::String(other.to_owned()),
            }),
            Shape::String(_) | Shape::Timestamp | Shape::Other => {
                self.params.get(prefix).map(|v| Value::String(v.clone()))
            }
        }
    }

    fn structure(&self, shape_name: &str, prefix: &str) -> Option<Value> {
        let Some(Shape::Structure { members, .. }) = self.model.shape(shape_name) else {
            return None;
        };
        let mut out = Map::new();
        for member in members {
            let name = member.location_name.as_deref().unwrap_or(&member.name);
            let path = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}.{name}")
            };
            if let Some(v) = self.value(&member.shape, &path) {
                out.insert(member.name.clone(), v);
            }
        }
        if prefix.is_empty() || !out.is_empty() {
            Some(Value::Object(out))
        } else {
            None
        }
    }
}

/// IAM's wording for a name or path that breaks its pattern.
fn iam_wording(member: &str) -> Option<String> {
    match member {
        "roleName" | "userName" | "policyName" | "groupName" | "instanceProfileName" => Some(format!(
            "The specified value for {member} is invalid. It must contain only alphanumeric characters and/or the following: +=,.@_-"
        )),
        "path" => Some(
            "The specified value for path is invalid. It must begin and end with / and contain only alphanumeric characters and/or / characters."
                .to_owned(),
        ),
        "pathPrefix" => Some(
            "The specified value for pathPrefix is invalid. It must begin with the / character and contain only alphanumeric characters and/or / characters."
                .to_owned(),
        ),
        _ => None,
    }
}

/// `RoleName` → `roleName`, as AWS names members in validation messages.
fn lower_camel(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Checks `value` against `shape_name`; errors are (sort key, message).
fn check(
    model: &Model,
    shape_name: &str,
    value: &Value,
    path: &str,
    errors: &mut Vec<(String, String)>,
) {
    let Some(shape) = model.shape(shape_name) else {
        return;
    };
    match shape {
        Shape::Structure { members, required } => {
            for member in members {
                let member_path = if path.is_empty() {
                    lower_camel(&member.name)
                } else {
                    format!("{path}.{}", lower_camel(&member.name))
                };
                match value.get(&member.name) {
                    Some(v) => check(model, &member.shape, v, &member_path, errors),
                    None if required.contains(&member.name) => errors.push((
                        member_path.clone(),
                        format!("Value null at '{member_path}' failed to satisfy constraint: Member must not be null"),
                    )),
                    None => {}
                }
            }
        }
        Shape::List { member, min, max } => {
            let Some(items) = value.as_array() else {
                return;
            };
            let n = items.len() as u64;
            if max.is_some_and(|m| n > m) {
                errors.push((
                    path.to_owned(),
                    format!(
                        "Value at '{path}' failed to satisfy constraint: Member must have length less than or equal to {}",
                        max.unwrap_or_default()
                    ),
                ));
            }
            if min.is_some_and(|m| n < m) {
                errors.push((
                    path.to_owned(),
                    format!(
                        "Value at '{path}' failed to satisfy constraint: Member must have length greater than or equal to {}",
                        min.unwrap_or_default()
                    ),
                ));
            }
            // Scalar members are reported together for the list; structures member by member.
            let scalar = matches!(
                model.shape(member),
                Some(Shape::String(_) | Shape::Integer { .. })
            );
            if scalar {
                let mut failed: Vec<String> = Vec::new();
                for item in items {
                    for violation in scalar_violations(model, member, item) {
                        if !failed.contains(&violation) {
                            failed.push(violation);
                        }
                    }
                }
                if !failed.is_empty() {
                    errors.push((
                        path.to_owned(),
                        format!(
                            "Value at '{path}' failed to satisfy constraint: Member must satisfy constraint: [{}]",
                            failed.join(", ")
                        ),
                    ));
                }
            } else {
                for (i, item) in items.iter().enumerate() {
                    check(
                        model,
                        member,
                        item,
                        &format!("{path}.{}.member", i + 1),
                        errors,
                    );
                }
            }
        }
        Shape::String(_) | Shape::Integer { .. } | Shape::Boolean => {
            let echo = match value {
                Value::String(s) if model.echo_values || matches!(shape, Shape::Integer { .. }) => {
                    format!("Value '{s}' at")
                }
                Value::Number(n) => format!("Value '{n}' at"),
                _ => "Value at".to_owned(),
            };
            for violation in scalar_violations(model, shape_name, value) {
                errors.push((
                    path.to_owned(),
                    format!("{echo} '{path}' failed to satisfy constraint: {violation}"),
                ));
            }
        }
        Shape::Map { .. } | Shape::Timestamp | Shape::Other => {}
    }
}

/// The constraints a scalar value breaks, as AWS words them.
fn scalar_violations(model: &Model, shape_name: &str, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    match (model.shape(shape_name), value) {
        (
            Some(Shape::String(StringRules {
                min,
                max,
                pattern,
                enumeration,
            })),
            Value::String(s),
        ) => {
            if let Some(values) = enumeration {
                if !values.contains(s) {
                    out.push(format!(
                        "Member must satisfy enum value set: [{}]",
                        values.join(", ")
                    ));
                }
                return out;
            }
            if let Some((text, Some(regex))) = pattern
                && !regex.is_match(s)
            {
                out.push(format!(
                    "Member must satisfy regular expression pattern: {text}"
                ));
            }
            let len = s.chars().count() as u64;
            if let Some(max) = max
                && len > *max
            {
                out.push(format!(
                    "Member must have length less than or equal to {max}"
                ));
            }
            if let Some(min) = min
                && len < *min
            {
                out.push(format!(
                    "Member must have length greater than or equal to {min}"
                ));
            }
        }
        (Some(Shape::Integer { min, max }), Value::Number(n)) => {
            let n = n.as_i64().unwrap_or(i64::MAX);
            if let Some(max) = max
                && n > *max
            {
                out.push(format!(
                    "Member must have value less than or equal to {max}"
                ));
            }
            if let Some(min) = min
                && n < *min
            {
                out.push(format!(
                    "Member must have value greater than or equal to {min}"
                ));
            }
        }
        (Some(Shape::Integer { .. }), Value::String(_)) => {
            out.push("Member must be a number".to_owned())
        }
        (Some(Shape::Boolean), Value::String(_)) => {
            out.push("Member must be true or false".to_owned())
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Service;

    fn decode(action: &str, query: &str) -> Result<QueryRequest, ValidationErrors> {
        let model = Service::Iam.model();
        QueryRequest::decode(model, model.operation(action).unwrap(), &form_params(query))
    }

    #[test]
    fn decodes_scalars_lists_and_structures() {
        let request = decode(
            "CreateRole",
            "Action=CreateRole&RoleName=app&AssumeRolePolicyDocument=%7B%7D&MaxSessionDuration=7200&Tags.member.1.Key=team&Tags.member.1.Value=blue&Tags.member.2.Key=env&Tags.member.2.Value=",
        )
        .unwrap();
        assert_eq!(request.str("RoleName"), Some("app"));
        assert_eq!(request.str("AssumeRolePolicyDocument"), Some("{}"));
        assert_eq!(request.input["MaxSessionDuration"], 7200);
        assert_eq!(request.input["Tags"][0]["Key"], "team");
        assert_eq!(request.input["Tags"][1]["Value"], "");
        let empty = decode("UntagRole", "RoleName=r&TagKeys=").unwrap();
        assert_eq!(empty.input["TagKeys"], Value::Array(Vec::new()));
    }

    #[test]
    fn reports_violations_as_aws_does() {
        let err = decode("CreateRole", "AssumeRolePolicyDocument=%7B%7D").unwrap_err();
        assert_eq!(
            err.to_string(),
            "1 validation error detected: Value null at 'roleName' failed to satisfy constraint: Member must not be null"
        );
        let long = "r".repeat(65);
        let err = decode(
            "CreateRole",
            &format!("RoleName={long}&AssumeRolePolicyDocument=x&MaxSessionDuration=43201"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "2 validation errors detected: Value '43201' at 'maxSessionDuration' failed to satisfy constraint: Member must have value less than or equal to 43200; Value at 'roleName' failed to satisfy constraint: Member must have length less than or equal to 64"
        );
        let err = decode("ListPolicies", "Scope=Foo&MaxItems=0").unwrap_err();
        assert_eq!(
            err.to_string(),
            "2 validation errors detected: Value '0' at 'maxItems' failed to satisfy constraint: Member must have value greater than or equal to 1; Value at 'scope' failed to satisfy constraint: Member must satisfy enum value set: [All, AWS, Local]"
        );
        let err = decode(
            "CreateRole",
            "RoleName=r&AssumeRolePolicyDocument=x&Tags.member.1.Key=a*b&Tags.member.1.Value=v",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            r"1 validation error detected: Value at 'tags.1.member.key' failed to satisfy constraint: Member must satisfy regular expression pattern: [\p{L}\p{Z}\p{N}_.:/=+\-@]+"
        );
        let err = decode(
            "CreateOpenIDConnectProvider",
            "Url=https://x&ClientIDList.member.1=&ThumbprintList.member.1=abc",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "2 validation errors detected: Value at 'clientIDList' failed to satisfy constraint: Member must satisfy constraint: [Member must have length greater than or equal to 1]; Value at 'thumbprintList' failed to satisfy constraint: Member must satisfy constraint: [Member must have length greater than or equal to 40]"
        );
    }

    #[test]
    fn iam_words_name_and_path_violations_its_own_way() {
        let err = decode(
            "CreateRole",
            "RoleName=my%20role&AssumeRolePolicyDocument=x",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "The specified value for roleName is invalid. It must contain only alphanumeric characters and/or the following: +=,.@_-"
        );
        let err = decode(
            "CreateRole",
            "RoleName=r&Path=team&AssumeRolePolicyDocument=x",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("The specified value for path is invalid."),
            "{err}"
        );
    }

    #[test]
    fn sts_echoes_values() {
        let model = Service::Sts.model();
        let err = QueryRequest::decode(
            model,
            model.operation("AssumeRole").unwrap(),
            &form_params(
                "RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fr&RoleSessionName=a%3Ab",
            ),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            r"1 validation error detected: Value 'a:b' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\w+=,.@-]*"
        );
    }

    #[test]
    fn form_decoding() {
        let p = form_params("a=1+2&b=%E2%9C%93&c&d=%zz");
        assert_eq!(p["a"], "1 2");
        assert_eq!(p["b"], "✓");
        assert_eq!(p["c"], "");
        assert_eq!(p["d"], "%zz");
    }
}

//! XML responses of the query protocol, shaped by the model.

use std::fmt::Write as _;

use serde_json::Value;

use crate::model::{Model, Operation, Shape};

/// The XML response of `operation`: `<OpResponse xmlns=…><OpResult>…</OpResult><ResponseMetadata>…`.
/// `output` is a JSON value of the operation's output shape (member names as in the model);
/// members are written in the model's order; members absent from `output` are left out.
pub fn query_response(
    model: &Model,
    operation: &Operation,
    output: &Value,
    request_id: &str,
) -> String {
    let mut out = String::with_capacity(512);
    let name = &operation.name;
    let _ = write!(out, "<{name}Response xmlns=\"{}\">", model.xml_namespace);
    if let (Some(wrapper), Some(shape)) = (&operation.result_wrapper, &operation.output) {
        let _ = write!(out, "<{wrapper}>");
        write_members(model, shape, output, &mut out);
        let _ = write!(out, "</{wrapper}>");
    }
    let _ = write!(
        out,
        "<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{name}Response>",
        escape(request_id)
    );
    out
}

/// The query protocol's error envelope.
pub fn error_response(
    model: &Model,
    sender_fault: bool,
    code: &str,
    message: &str,
    request_id: &str,
) -> String {
    format!(
        "<ErrorResponse xmlns=\"{}\"><Error><Type>{}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
        model.xml_namespace,
        if sender_fault { "Sender" } else { "Receiver" },
        escape(code),
        escape(message),
        escape(request_id)
    )
}

fn write_members(model: &Model, shape_name: &str, value: &Value, out: &mut String) {
    let Some(Shape::Structure { members, .. }) = model.shape(shape_name) else {
        return;
    };
    for member in members {
        if let Some(v) = value.get(&member.name) {
            let element = member.location_name.as_deref().unwrap_or(&member.name);
            write_value(model, &member.shape, element, v, out);
        }
    }
}

fn write_value(model: &Model, shape_name: &str, element: &str, value: &Value, out: &mut String) {
    match model.shape(shape_name) {
        Some(Shape::Structure { .. }) => {
            let _ = write!(out, "<{element}>");
            write_members(model, shape_name, value, out);
            let _ = write!(out, "</{element}>");
        }
        Some(Shape::List { member, .. }) => {
            let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
            if items.is_empty() {
                let _ = write!(out, "<{element}/>");
                return;
            }
            let _ = write!(out, "<{element}>");
            for item in items {
                write_value(model, member, "member", item, out);
            }
            let _ = write!(out, "</{element}>");
        }
        Some(Shape::Map {
            key,
            value: value_shape,
        }) => {
            let _ = write!(out, "<{element}>");
            if let Some(map) = value.as_object() {
                for (k, v) in map {
                    out.push_str("<entry>");
                    write_value(model, key, "key", &Value::String(k.clone()), out);
                    write_value(model, value_shape, "value", v, out);
                    out.push_str("</entry>");
                }
            }
            let _ = write!(out, "</{element}>");
        }
        _ => {
            let text = match value {
                Value::String(s) => escape(s),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                Value::Null => String::new(),
                other => escape(&other.to_string()),
            };
            let _ = write!(out, "<{element}>{text}</{element}>");
        }
    }
}

/// Escapes text for XML element content (quotes need no escaping there, and AWS leaves them).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n') => {
                let _ = write!(out, "&#x{:X};", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Service;

    #[test]
    fn responses_follow_the_model() {
        let model = Service::Iam.model();
        let op = model.operation("ListRoleTags").unwrap();
        let xml = query_response(
            model,
            op,
            &json!({"IsTruncated": false, "Tags": [{"Key": "a&b", "Value": "<v>"}]}),
            "req-1",
        );
        assert_eq!(
            xml,
            "<ListRoleTagsResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><ListRoleTagsResult><Tags><member><Key>a&amp;b</Key><Value>&lt;v&gt;</Value></member></Tags><IsTruncated>false</IsTruncated></ListRoleTagsResult><ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></ListRoleTagsResponse>"
        );
        let delete = model.operation("DeleteRole").unwrap();
        assert_eq!(
            query_response(model, delete, &json!({}), "r"),
            "<DeleteRoleResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DeleteRoleResponse>"
        );
        let empty = query_response(
            model,
            model.operation("ListRolePolicies").unwrap(),
            &json!({"PolicyNames": [], "IsTruncated": false}),
            "r",
        );
        assert!(
            empty.contains("<PolicyNames/><IsTruncated>false</IsTruncated>"),
            "{empty}"
        );
    }

    #[test]
    fn errors_use_the_envelope() {
        let model = Service::Sts.model();
        assert_eq!(
            error_response(
                model,
                true,
                "AccessDenied",
                "User: a is not authorized",
                "id"
            ),
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: a is not authorized</Message></Error><RequestId>id</RequestId></ErrorResponse>"
        );
    }
}

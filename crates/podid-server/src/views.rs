//! Domain records as the API shows them: JSON values of the model's output shapes.

use podid_core::{
    AccessKeyRecord, OidcRecord, PolicyVersionRecord, PolicyView, RoleRecord, Tag, UserRecord,
};
use podid_types::Timestamp;
use serde_json::{Map, Value, json};

/// Which operation shows a role: they show different members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RoleView {
    /// CreateRole: no description, maximum session duration or last use.
    Create,
    /// GetRole: everything.
    Get,
    /// ListRoles: no boundary, tags or last use.
    List,
}

/// An ISO 8601 date with second precision, as IAM writes dates.
pub(crate) fn date(millis: i64) -> String {
    Timestamp::from_millis(millis).to_iso8601()
}

/// A policy document as IAM returns it: URL-encoded (RFC 3986).
pub(crate) fn encoded(document: &str) -> String {
    let mut out = String::with_capacity(document.len() * 2);
    for b in document.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) fn tags(tags: &[Tag]) -> Value {
    Value::Array(
        tags.iter()
            .map(|t| json!({"Key": t.key, "Value": t.value}))
            .collect(),
    )
}

fn boundary(arn: &str) -> Value {
    json!({"PermissionsBoundaryType": "Policy", "PermissionsBoundaryArn": arn})
}

pub(crate) fn role(role: &RoleRecord, view: RoleView) -> Value {
    let mut out = Map::new();
    out.insert("Path".into(), json!(role.path));
    out.insert("RoleName".into(), json!(role.name));
    out.insert("RoleId".into(), json!(role.id));
    out.insert("Arn".into(), json!(role.arn));
    out.insert("CreateDate".into(), json!(date(role.created)));
    out.insert(
        "AssumeRolePolicyDocument".into(),
        json!(encoded(&role.trust_policy)),
    );
    if view != RoleView::Create {
        if let Some(d) = &role.description {
            out.insert("Description".into(), json!(d));
        }
        out.insert(
            "MaxSessionDuration".into(),
            json!(role.max_session_duration),
        );
    }
    if view != RoleView::List {
        if let Some(b) = &role.policies.boundary {
            out.insert("PermissionsBoundary".into(), boundary(b));
        }
        if !role.tags.is_empty() {
            out.insert("Tags".into(), tags(&role.tags));
        }
    }
    if view == RoleView::Get {
        out.insert("RoleLastUsed".into(), json!({}));
    }
    Value::Object(out)
}

pub(crate) fn user(user: &UserRecord) -> Value {
    let mut out = Map::new();
    out.insert("Path".into(), json!(user.path));
    out.insert("UserName".into(), json!(user.name));
    out.insert("UserId".into(), json!(user.id));
    out.insert("Arn".into(), json!(user.arn));
    out.insert("CreateDate".into(), json!(date(user.created)));
    if let Some(b) = &user.policies.boundary {
        out.insert("PermissionsBoundary".into(), boundary(b));
    }
    if !user.tags.is_empty() {
        out.insert("Tags".into(), tags(&user.tags));
    }
    Value::Object(out)
}

/// A managed policy; `full` for GetPolicy/CreatePolicy (description and tags), not for lists.
pub(crate) fn policy(policy: &PolicyView, full: bool) -> Value {
    let mut out = Map::new();
    out.insert("PolicyName".into(), json!(policy.name));
    out.insert("PolicyId".into(), json!(policy.id));
    out.insert("Arn".into(), json!(policy.arn));
    out.insert("Path".into(), json!(policy.path));
    out.insert("DefaultVersionId".into(), json!(policy.default_version));
    out.insert("AttachmentCount".into(), json!(policy.attachment_count));
    out.insert(
        "PermissionsBoundaryUsageCount".into(),
        json!(policy.boundary_usage_count),
    );
    out.insert("IsAttachable".into(), json!(true));
    if full && let Some(d) = &policy.description {
        out.insert("Description".into(), json!(d));
    }
    out.insert("CreateDate".into(), json!(date(policy.created)));
    out.insert("UpdateDate".into(), json!(date(policy.updated)));
    if full {
        out.insert("Tags".into(), tags(&policy.tags));
    }
    Value::Object(out)
}

pub(crate) fn policy_version(
    version: &PolicyVersionRecord,
    is_default: bool,
    with_document: bool,
) -> Value {
    let mut out = Map::new();
    if with_document {
        out.insert("Document".into(), json!(encoded(&version.document)));
    }
    out.insert("VersionId".into(), json!(version.id));
    out.insert("IsDefaultVersion".into(), json!(is_default));
    out.insert("CreateDate".into(), json!(date(version.created)));
    Value::Object(out)
}

pub(crate) fn access_key(key: &AccessKeyRecord, secret: Option<&str>) -> Value {
    let mut out = Map::new();
    out.insert("UserName".into(), json!(key.user));
    out.insert("AccessKeyId".into(), json!(key.id));
    out.insert("Status".into(), json!(key.status));
    if let Some(secret) = secret {
        out.insert("SecretAccessKey".into(), json!(secret));
    }
    out.insert("CreateDate".into(), json!(date(key.created)));
    Value::Object(out)
}

pub(crate) fn oidc(provider: &OidcRecord) -> Value {
    json!({
        "Url": provider.url,
        "ClientIDList": provider.client_ids,
        "ThumbprintList": provider.thumbprints,
        "CreateDate": date(provider.created),
        "Tags": tags(&provider.tags),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_url_encoded() {
        assert_eq!(encoded(r#"{"a": "b/c"}"#), "%7B%22a%22%3A%20%22b%2Fc%22%7D");
        assert_eq!(date(1_714_557_600_123), "2024-05-01T10:00:00Z");
    }
}

//! Every STS operation: wire input → domain call → wire output.

use podid_core::{
    AssumeRole, AssumeRoleWithWebIdentity, AssumedRole, Caller, RequestAudit, SessionCredentials,
    UserIdentity,
};
use podid_protocol::QueryRequest;
use podid_types::Secret;
use serde_json::{Value, json};

use crate::AppState;
use crate::errors::ApiError;
use crate::iam_ops::{int, list, opt, string, tag_list};
use crate::views::date;

/// Runs the STS operation of `request` for `caller`.
pub(crate) async fn call(
    state: &AppState,
    caller: &Caller,
    request: &QueryRequest,
) -> Result<Value, ApiError> {
    let sts = state.core.sts();
    let input = &request.input;
    Ok(match request.operation.name.as_str() {
        "AssumeRole" => {
            let assumed = sts
                .assume_role(
                    caller,
                    AssumeRole {
                        role_arn: string(input, "RoleArn"),
                        session_name: string(input, "RoleSessionName"),
                        duration_seconds: int(input, "DurationSeconds"),
                        external_id: opt(input, "ExternalId"),
                        tags: tag_list(input),
                        transitive_tag_keys: list(input, "TransitiveTagKeys"),
                        source_identity: opt(input, "SourceIdentity"),
                        policy: opt(input, "Policy"),
                        policy_arns: policy_arns(input),
                    },
                )
                .await?;
            Value::Object(assumed_output(assumed))
        }
        "AssumeRoleWithWebIdentity" => web_identity(state, request, caller.audit()).await?,
        "GetCallerIdentity" => {
            let identity = sts.caller_identity(caller);
            json!({"UserId": identity.user_id, "Account": identity.account, "Arn": identity.arn})
        }
        "GetSessionToken" => {
            let session = sts
                .get_session_token(caller, int(input, "DurationSeconds"))
                .await?;
            json!({"Credentials": credentials(&session)})
        }
        other => {
            return Err(ApiError::sender(
                400,
                "InvalidAction",
                format!("Could not find operation {other} for version 2011-06-15"),
            ));
        }
    })
}

/// AssumeRoleWithWebIdentity, signed or not: the token is the credential, so no caller is needed.
pub(crate) async fn web_identity(
    state: &AppState,
    request: &QueryRequest,
    audit: Option<&RequestAudit>,
) -> Result<Value, ApiError> {
    let input = &request.input;
    let session = state
        .core
        .sts()
        .assume_role_with_web_identity(AssumeRoleWithWebIdentity {
            role_arn: string(input, "RoleArn"),
            session_name: string(input, "RoleSessionName"),
            token: Secret::new(string(input, "WebIdentityToken")),
            duration_seconds: int(input, "DurationSeconds"),
            policy: opt(input, "Policy"),
            policy_arns: policy_arns(input),
        })
        .await?;
    if let Some(audit) = audit {
        // CloudTrail's identity of a web identity caller: the provider, audience and subject.
        audit.set_identity(UserIdentity {
            kind: "WebIdentityUser".into(),
            principal_id: Some(format!(
                "{}:{}:{}",
                session.provider, session.audience, session.subject
            )),
            arn: None,
            account_id: None,
            access_key_id: None,
        });
    }
    let mut out = assumed_output(session.assumed);
    out.insert("SubjectFromWebIdentityToken".into(), json!(session.subject));
    out.insert("Provider".into(), json!(session.provider));
    out.insert("Audience".into(), json!(session.audience));
    Ok(Value::Object(out))
}

/// The members AssumeRole and AssumeRoleWithWebIdentity share.
fn assumed_output(assumed: AssumedRole) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    out.insert("Credentials".into(), credentials(&assumed.credentials));
    out.insert(
        "AssumedRoleUser".into(),
        json!({"AssumedRoleId": assumed.assumed_role_id, "Arn": assumed.arn}),
    );
    if let Some(size) = assumed.packed_policy_size {
        out.insert("PackedPolicySize".into(), json!(size));
    }
    if let Some(source) = assumed.source_identity {
        out.insert("SourceIdentity".into(), json!(source));
    }
    out
}

fn credentials(c: &SessionCredentials) -> Value {
    json!({
        "AccessKeyId": c.access_key_id,
        "SecretAccessKey": c.secret_access_key.expose(),
        "SessionToken": c.session_token.expose(),
        "Expiration": date(c.expiration.as_millis()),
    })
}

/// `PolicyArns.member.N.arn`.
fn policy_arns(input: &Value) -> Vec<String> {
    input
        .get("PolicyArns")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|p| p.get("arn").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

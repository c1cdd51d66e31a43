//! The audit of calls on the wire: which operations are audited, the request's audit started from
//! what arrived, its record finished before the answer leaves, and the trail's lookup
//! (`GET /podid/audit/events`).

use std::collections::BTreeMap;

use axum::http::header;
use podid_core::{AuditQuery, Caller, Ending, Outcome, RequestAudit, RequestEvent};
use podid_types::Timestamp;
use serde_json::{Value, json};

use crate::AppState;
use crate::errors::ApiError;

/// Whether `operation` is audited: every call that changes something or issues a credential
/// (STS's sessions, EKS Auth's credentials, a service-account token). Reads are not.
pub(crate) fn audited(operation: &str) -> bool {
    const ISSUES: [&str; 2] = ["GetSessionToken", "GetFederationToken"];
    const READS: [&str; 6] = ["Get", "List", "Describe", "Simulate", "Lookup", "Read"];
    ISSUES.contains(&operation) || !READS.iter().any(|p| operation.starts_with(p))
}

/// Starts the audit of a request that arrived with `parts`.
pub(crate) fn start(
    state: &AppState,
    parts: &axum::http::request::Parts,
    request_id: &str,
    source: &'static str,
    name: &str,
    source_ip: Option<&str>,
) -> RequestEvent {
    RequestEvent {
        request_id: request_id.to_owned(),
        time: state.core.clock().now(),
        source,
        name: name.to_owned(),
        source_ip: source_ip.map(str::to_owned),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(512).collect()),
        ..RequestEvent::default()
    }
}

/// Records how the call ended; a record that cannot be written turns a success into a
/// failure, so that no credential leaves without its record.
pub(crate) async fn finish(
    state: &AppState,
    audit: Option<&RequestAudit>,
    caller: Option<&Caller>,
    result: Result<Value, ApiError>,
    rest_json: bool,
) -> Result<Value, ApiError> {
    let Some(audit) = audit else {
        return result;
    };
    let failure = result.as_ref().err().map(|e| {
        if rest_json {
            e.clone().for_rest_json()
        } else {
            e.clone()
        }
    });
    let ending = match &failure {
        Some(e) => Ending::Failure {
            code: &e.code,
            message: &e.message,
        },
        None => Ending::Success(result.as_ref().ok()),
    };
    match state.core.audit().finish(audit, caller, ending).await {
        Ok(()) => result,
        Err(e) if result.is_ok() => Err(e.into()),
        Err(_) => result,
    }
}

/// `GET /podid/audit/events`: the trail's records the caller's account may see, oldest first.
/// Query parameters: `startTime` and `endTime` (epoch milliseconds, inclusive), `principal`
/// (part of the caller's ARN), `cluster`, `outcome` (`success`, `denied`, `failed`),
/// `eventName`, `maxResults` (1–1,000, default 100) and `nextToken`.
pub(crate) async fn lookup(
    state: &AppState,
    caller: &Caller,
    params: &BTreeMap<String, String>,
) -> Result<Value, ApiError> {
    let time = |name: &str| -> Result<Option<Timestamp>, ApiError> {
        params
            .get(name)
            .map(|v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|ms| *ms >= 0)
                    .map(Timestamp::from_millis)
                    .ok_or_else(|| {
                        invalid(format!("{name} `{v}` is not a time in epoch milliseconds."))
                    })
            })
            .transpose()
    };
    let outcome = params
        .get("outcome")
        .map(|o| {
            Outcome::parse(o).ok_or_else(|| {
                invalid(format!(
                    "outcome `{o}` is not one of success, denied, failed."
                ))
            })
        })
        .transpose()?;
    let max_results = match params.get("maxResults") {
        None => 100,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=podid_core::MAX_AUDIT_PAGE).contains(n))
            .ok_or_else(|| {
                invalid(format!(
                    "maxResults `{v}` must be a whole number from 1 to {}.",
                    podid_core::MAX_AUDIT_PAGE
                ))
            })?,
    };
    let query = AuditQuery {
        start: time("startTime")?,
        end: time("endTime")?,
        principal: params.get("principal").cloned(),
        cluster: params.get("cluster").cloned(),
        outcome,
        event_name: params.get("eventName").cloned(),
        max_results,
        next_token: params.get("nextToken").cloned(),
    };
    let page = state.core.audit().lookup(caller, &query).await?;
    let mut out = json!({"events": page.records});
    if let (Some(token), Some(map)) = (page.next_token, out.as_object_mut()) {
        map.insert("nextToken".into(), token.into());
    }
    Ok(out)
}

fn invalid(message: String) -> ApiError {
    ApiError::sender(400, "InvalidParameterException", message)
}

#[cfg(test)]
mod tests {
    use super::audited;

    #[test]
    fn changes_and_issuances_are_audited_and_reads_are_not() {
        for name in [
            "CreateRole",
            "PutRolePolicy",
            "AssumeRole",
            "AssumeRoleWithWebIdentity",
            "GetSessionToken",
            "AssumeRoleForPodIdentity",
            "CreateServiceAccountToken",
            "DeletePodIdentityAssociation",
            "RotateSigningKeys",
            "TagRole",
        ] {
            assert!(audited(name), "{name}");
        }
        for name in [
            "GetRole",
            "ListRoles",
            "DescribeCluster",
            "SimulatePrincipalPolicy",
            "GetCallerIdentity",
            "LookupAuditEvents",
        ] {
            assert!(!audited(name), "{name}");
        }
    }
}

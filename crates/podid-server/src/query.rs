//! The query protocol (IAM, STS): form parameters in, XML out, routed by `Action`.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use podid_core::{Caller, Identity, RequestAudit, RequestInfo};
use podid_protocol::{QueryRequest, Service, error_response, form_params, query_response};
use podid_sigv4::{HttpRequest, SigV4Error};
use tracing::Instrument as _;

use crate::errors::ApiError;
use crate::{AppState, MAX_BODY, audit, iam_ops, sts_ops};

pub(crate) async fn handle(State(state): State<AppState>, request: Request) -> Response {
    let request_id = state.core.ids().request_id();
    let started = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let source_ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let mut service = scope_service(&parts).unwrap_or(Service::Iam);
    let mut reason = None;
    let (status, body, action, account) = match read_body(body).await {
        Err(e) => (
            e.status,
            render_error(service, &e, &request_id),
            String::new(),
            String::new(),
        ),
        Ok(bytes) => {
            let mut context = Context {
                action: String::new(),
                account: String::new(),
                service,
            };
            let result = process(&state, &parts, &bytes, source_ip, &mut context, &request_id)
                .instrument(tracing::info_span!("request", request_id = %request_id))
                .await;
            service = context.service;
            match result {
                Ok(xml) => (200, xml, context.action, context.account),
                Err(e) => {
                    if e.status >= 500 {
                        tracing::error!(request_id = %request_id, code = %e.code, message = %e.message, "request failed");
                    }
                    reason = e.reason.clone();
                    (
                        e.status,
                        render_error(service, &e, &request_id),
                        context.action,
                        context.account,
                    )
                }
            }
        }
    };
    tracing::info!(
        request_id = %request_id,
        action = %action,
        account = %account,
        status,
        reason = reason.as_deref(),
        micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    respond(status, body, &request_id)
}

struct Context {
    action: String,
    account: String,
    service: Service,
}

/// The most read (and thrown away) of an oversized body, so that the client finishes sending it
/// and reads the error instead of a reset connection.
const MAX_DRAIN: usize = 64 * 1024 * 1024;

/// The body, or the error to answer with: 413 beyond [`MAX_BODY`]; 400 when the body cannot
/// be read in full (the client broke off, or stalled past the listener's body timeout).
pub(crate) async fn read_body(mut body: Body) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::sender(
            413,
            "RequestEntityTooLarge",
            format!("The request body is larger than the {MAX_BODY}-byte limit."),
        )
    };
    let mut bytes = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| {
            ApiError::sender(
                400,
                "IncompleteBody",
                "The request body was not received in full: the client stopped sending it before its length was reached.",
            )
        })?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen > MAX_DRAIN {
                return Err(too_large());
            }
            if seen <= MAX_BODY {
                bytes.extend_from_slice(&data);
            }
        }
    }
    if seen > MAX_BODY {
        Err(too_large())
    } else {
        Ok(bytes)
    }
}

async fn process(
    state: &AppState,
    parts: &axum::http::request::Parts,
    bytes: &[u8],
    source_ip: Option<String>,
    context: &mut Context,
    request_id: &str,
) -> Result<String, ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|_| {
        ApiError::sender(
            400,
            "MalformedQueryString",
            "The request body is not UTF-8 text.",
        )
    })?;
    let query = parts.uri.query().unwrap_or_default();
    // The URL's parameters as the signature reads them; the body's are covered byte for byte.
    let mut params = podid_sigv4::query_params(query)
        .map_err(|e| ApiError::sender(400, "MalformedQueryString", capitalized(&e.to_string())))?;
    if parts.method == Method::POST {
        params.extend(form_params(text));
    }
    let action = params.get("Action").cloned().ok_or_else(|| {
        ApiError::sender(
            400,
            "MissingAction",
            "The request is missing an action or a required parameter.",
        )
    })?;
    context.action.clone_from(&action);
    // The credential scope says which service was meant; unsigned requests say it by `Version`.
    let service = scope_service(parts).unwrap_or_else(|| {
        if params.get("Version").map(String::as_str)
            == Some(Service::Sts.model().api_version.as_str())
        {
            Service::Sts
        } else {
            Service::Iam
        }
    });
    context.service = service;
    let model = service.model();
    let version = params
        .get("Version")
        .map_or("NO_VERSION_SPECIFIED", String::as_str);
    let operation = model
        .operation(&action)
        .filter(|_| version == model.api_version)
        .ok_or_else(|| {
            ApiError::sender(
                400,
                "InvalidAction",
                format!("Could not find operation {action} for version {version}"),
            )
        })?;
    // AssumeRoleWithWebIdentity needs no signature: SDKs send it unsigned, the token being the
    // credential. A signed one is verified like any other request.
    let signed =
        parts.headers.contains_key(header::AUTHORIZATION) || params.contains_key("X-Amz-Signature");
    if service == Service::Sts && operation.name == "AssumeRoleWithWebIdentity" && !signed {
        // Unsigned: the caller is known by its address until the token is checked.
        let caller = format!("web-identity:{}", source_ip.as_deref().unwrap_or_default());
        if !state.throttles.sts(&caller) {
            return Err(throttled_sts());
        }
        let mut event = audit::start(
            state,
            parts,
            request_id,
            "sts.amazonaws.com",
            &operation.name,
            source_ip.as_deref(),
        );
        let decoded = QueryRequest::decode(model, operation, &params)
            .map_err(|e| ApiError::sender(400, "ValidationError", e.to_string()));
        event.parameters = parameters(decoded.as_ref().ok(), &params);
        let audit = RequestAudit::new(event);
        if let Some(role) = params.get("RoleArn") {
            audit.note_account_of(role);
        }
        let result = match decoded {
            Ok(request) => sts_ops::web_identity(state, &request, Some(&audit)).await,
            Err(e) => Err(e),
        };
        let output = audit::finish(state, Some(&audit), None, result, false).await?;
        return Ok(query_response(model, operation, &output, request_id));
    }
    let signing_name = match service {
        Service::Iam => "iam",
        Service::Sts => "sts",
    };
    let (caller, region, access_key_id) =
        authenticate(state, parts, query, bytes, signing_name).await?;
    context.account = caller.account().to_string();
    if service == Service::Sts && !state.throttles.sts(caller.arn()) {
        return Err(throttled_sts());
    }
    // GetSessionToken credentials (without MFA, which podid does not have) cannot call IAM.
    if service == Service::Iam
        && caller.session().is_some()
        && !matches!(caller.identity(), Identity::Role { .. })
    {
        return Err(ApiError::sender(
            403,
            "InvalidClientTokenId",
            "The security token included in the request is invalid",
        ));
    }
    let decoded = QueryRequest::decode(model, operation, &params)
        .map_err(|e| ApiError::sender(400, "ValidationError", e.to_string()));
    let audit = audit::audited(&operation.name).then(|| {
        let mut event = audit::start(
            state,
            parts,
            request_id,
            match service {
                Service::Iam => "iam.amazonaws.com",
                Service::Sts => "sts.amazonaws.com",
            },
            &operation.name,
            source_ip.as_deref(),
        );
        event.region = Some(region.clone());
        event.access_key_id = Some(access_key_id);
        event.parameters = parameters(decoded.as_ref().ok(), &params);
        RequestAudit::new(event)
    });
    let caller = caller.with_request(RequestInfo {
        source_ip,
        secure_transport: parts.extensions.get::<crate::SecureTransport>().is_some(),
        region: Some(region),
        audit: audit.clone(),
    });
    let result = match decoded {
        Ok(request) => match service {
            Service::Iam => iam_ops::call(state, &caller, &request).await,
            Service::Sts => sts_ops::call(state, &caller, &request).await,
        },
        Err(e) => Err(e),
    };
    let output = audit::finish(state, audit.as_ref(), Some(&caller), result, false).await?;
    Ok(query_response(model, operation, &output, request_id))
}

/// A request's parameters for its audit record: the decoded input, or when it could not be
/// decoded, the form's parameters as they came (the protocol's own are left out).
fn parameters(
    decoded: Option<&QueryRequest>,
    params: &std::collections::BTreeMap<String, String>,
) -> serde_json::Value {
    match decoded {
        Some(request) => request.input.clone(),
        None => params
            .iter()
            .filter(|(k, _)| {
                !matches!(k.as_str(), "Action" | "Version") && !k.starts_with("X-Amz-")
            })
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
    }
}

/// STS's answer to a caller over its rate (botocore retries `Throttling`).
fn throttled_sts() -> ApiError {
    ApiError::sender(400, "Throttling", "Rate exceeded")
}

/// The service a signed request's credential scope names, if it is one this server speaks.
fn scope_service(parts: &axum::http::request::Parts) -> Option<Service> {
    let credential = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .map(str::to_owned)
        .or_else(|| {
            podid_sigv4::query_params(parts.uri.query().unwrap_or_default())
                .ok()?
                .remove("X-Amz-Credential")
        })?;
    match credential.split('/').nth(3) {
        Some("iam") => Some(Service::Iam),
        Some("sts") => Some(Service::Sts),
        _ => None,
    }
}

/// Verifies the request's SigV4 signature against the store's access keys.
pub(crate) async fn authenticate(
    state: &AppState,
    parts: &axum::http::request::Parts,
    query: &str,
    body: &[u8],
    service: &str,
) -> Result<(Caller, String, String), ApiError> {
    let headers: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .filter_map(|(name, value)| value.to_str().ok().map(|v| (name.as_str(), v)))
        .collect();
    let request = HttpRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query,
        headers: &headers,
        body,
    };
    let signed = podid_sigv4::parse(&request)?;
    let now = state.core.clock().now();
    if let Some(token) = signed.security_token() {
        // Temporary credentials: the token carries the session and its secret.
        let session = state
            .core
            .open_session(token, signed.access_key_id())
            .await?;
        signed.verify(&request, session.secret_access_key().expose(), now)?;
        if signed.scope().service != service {
            return Err(SigV4Error::wrong_service(service).into());
        }
        let region = signed.scope().region.clone();
        let key = signed.access_key_id().to_owned();
        return Ok((state.core.session_caller(&session).await?, region, key));
    }
    let Some((key, secret)) = state.core.access_key(signed.access_key_id()).await? else {
        return Err(SigV4Error::unknown_key().into());
    };
    signed.verify(&request, secret.expose(), now)?;
    if signed.scope().service != service {
        return Err(SigV4Error::wrong_service(service).into());
    }
    let region = signed.scope().region.clone();
    let key_id = signed.access_key_id().to_owned();
    Ok((state.core.caller(&key).await?, region, key_id))
}

/// `the query string ...` → `The query string ...`, with a full stop, as AWS's messages read.
pub(crate) fn capitalized(message: &str) -> String {
    let mut chars = message.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

pub(crate) async fn not_found(request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let body = format!(
        "{{\"message\":\"No route for {} {path}\"}}",
        request.method()
    );
    let mut response = (StatusCode::NOT_FOUND, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn render_error(service: Service, e: &ApiError, request_id: &str) -> String {
    error_response(
        service.model(),
        e.sender_fault,
        &e.code,
        &e.message,
        request_id,
    )
}

fn respond(status: u16, body: String, request_id: &str) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

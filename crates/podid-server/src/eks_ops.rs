//! EKS over rest-json: clusters, Pod Identity associations and add-ons (AWS's paths and shapes), podid's
//! extensions under `/clusters/{name}/podid/...`, and the OIDC issuers of local clusters.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use podid_core::eks::{
    AssociationRecord, ClusterRecord, ClusterTokens, CreateAssociation, CreateCluster,
    ListAssociations, ServiceAccountToken, UpdateAssociation,
};
use podid_core::{Caller, RequestAudit, RequestInfo};
use serde_json::{Map, Value, json};
use tracing::Instrument as _;

use crate::AppState;
use crate::errors::ApiError;
use crate::query::{authenticate, capitalized, read_body};

/// Every EKS request: authenticated with SigV4 (`eks`), routed by method and path.
pub(crate) async fn handle(State(state): State<AppState>, request: Request) -> Response {
    let request_id = state.core.ids().request_id();
    let started = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let source_ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let mut operation = "";
    let result = match read_body(body).await {
        Err(e) => Err(e),
        Ok(bytes) => {
            process(
                &state,
                &parts,
                &bytes,
                source_ip,
                &mut operation,
                &request_id,
            )
            .instrument(tracing::info_span!("request", request_id = %request_id))
            .await
        }
    };
    // EKS Auth's model answers AccessDeniedException with 400, not 403.
    let result = result.map_err(|e| {
        let mut e = e.for_rest_json();
        if operation == "AssumeRoleForPodIdentity" && e.code == "AccessDeniedException" {
            e.status = 400;
        }
        e
    });
    let (status, body, code, reason) = match result {
        Ok(answer) => (200, answer.into_body(), None, None),
        Err(e) => {
            let e = e.for_rest_json();
            if e.status >= 500 {
                tracing::error!(request_id = %request_id, code = %e.code, message = %e.message, "request failed");
            }
            (e.status, error_body(&e), Some(e.code), e.reason)
        }
    };
    // The agents' long polls would fill the log with a line every few seconds.
    let quiet = operation == "ListChanges" && status == 200;
    if quiet {
        tracing::debug!(request_id = %request_id, action = %operation, status, "request");
    } else {
        tracing::info!(
        request_id = %request_id,
        action = %operation,
        status,
        reason = reason.as_deref(),
        micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
        );
    }
    json_response(status, body, &request_id, code.as_deref())
}

/// The longest a `ListChanges` long poll waits.
const MAX_WAIT_SECONDS: u64 = 20;

/// How often a waiting `ListChanges` looks at the store again (other replicas' changes arrive
/// only through it).
const CHANGE_POLL: std::time::Duration = std::time::Duration::from_millis(100);

async fn process(
    state: &AppState,
    parts: &axum::http::request::Parts,
    bytes: &[u8],
    source_ip: Option<String>,
    operation: &mut &'static str,
    request_id: &str,
) -> Result<Answer, ApiError> {
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or_default();
    let segments = podid_sigv4::path_segments(path);
    let method = &parts.method;
    *operation = match (method.clone(), segments.as_slice()) {
        (Method::POST, ["clusters"]) => "CreateCluster",
        (Method::GET, ["clusters"]) => "ListClusters",
        (Method::GET, ["clusters", _]) => "DescribeCluster",
        (Method::DELETE, ["clusters", _]) => "DeleteCluster",
        (Method::POST, ["clusters", _, "pod-identity-associations"]) => {
            "CreatePodIdentityAssociation"
        }
        (Method::GET, ["clusters", _, "pod-identity-associations"]) => {
            "ListPodIdentityAssociations"
        }
        (Method::GET, ["clusters", _, "pod-identity-associations", _]) => {
            "DescribePodIdentityAssociation"
        }
        (Method::POST, ["clusters", _, "pod-identity-associations", _]) => {
            "UpdatePodIdentityAssociation"
        }
        (Method::DELETE, ["clusters", _, "pod-identity-associations", _]) => {
            "DeletePodIdentityAssociation"
        }
        (Method::POST, ["clusters", _, "addons"]) => "CreateAddon",
        (Method::GET, ["clusters", _, "addons"]) => "ListAddons",
        (Method::GET, ["clusters", _, "addons", _]) => "DescribeAddon",
        (Method::POST, ["clusters", _, "addons", _, "update"]) => "UpdateAddon",
        (Method::DELETE, ["clusters", _, "addons", _]) => "DeleteAddon",
        (Method::GET, ["addons", "supported-versions"]) => "DescribeAddonVersions",
        (Method::GET, ["addons", "configuration-schemas"]) => "DescribeAddonConfiguration",
        (Method::POST, ["clusters", _, "podid", "service-account-token"]) => {
            "CreateServiceAccountToken"
        }
        (Method::POST, ["clusters", _, "podid", "rotate-signing-keys"]) => "RotateSigningKeys",
        (Method::GET, ["clusters", _, "podid", "upstream-trust-policy"]) => {
            "GetUpstreamTrustPolicy"
        }
        (Method::POST, ["clusters", _, "podid", "service-accounts"]) => "CreateServiceAccount",
        (Method::GET, ["clusters", _, "podid", "service-accounts"]) => "ListServiceAccounts",
        (Method::GET, ["clusters", _, "podid", "service-accounts", _, _]) => "GetServiceAccount",
        (Method::POST, ["clusters", _, "podid", "service-accounts", _, _]) => {
            "UpdateServiceAccount"
        }
        (Method::DELETE, ["clusters", _, "podid", "service-accounts", _, _]) => {
            "DeleteServiceAccount"
        }
        (Method::POST, ["clusters", _, "assume-role-for-pod-identity"]) => {
            "AssumeRoleForPodIdentity"
        }
        (Method::GET, ["podid", "audit", "events"]) => "LookupAuditEvents",
        (Method::GET, ["podid", "access-graph"]) => "GetAccessGraph",
        (Method::GET, ["clusters", _, "podid", "changes"]) => "ListChanges",
        _ => {
            return Err(ApiError::sender(
                404,
                "UnknownOperationException",
                format!("No EKS operation is {method} {path}."),
            ));
        }
    };
    // EKS Auth shares EKS's paths; the credential scope (`eks-auth`) is its own.
    let service = if *operation == "AssumeRoleForPodIdentity" {
        "eks-auth"
    } else {
        "eks"
    };
    let (caller, region, access_key_id) = authenticate(state, parts, query, bytes, service).await?;
    if service == "eks-auth" && !state.throttles.eks_auth(caller.arn()) {
        return Err(ApiError::sender(
            429,
            "ThrottlingException",
            "Rate exceeded",
        ));
    }
    let operation: &'static str = operation;
    let audit = crate::audit::audited(operation).then(|| {
        let mut event = crate::audit::start(
            state,
            parts,
            request_id,
            if service == "eks-auth" {
                "eks-auth.amazonaws.com"
            } else {
                "eks.amazonaws.com"
            },
            operation,
            source_ip.as_deref(),
        );
        event.region = Some(region.clone());
        event.access_key_id = Some(access_key_id);
        (event.cluster, event.parameters) = audit_parameters(&segments, bytes);
        RequestAudit::new(event)
    });
    let caller = caller.with_request(RequestInfo {
        source_ip,
        secure_transport: parts.extensions.get::<crate::SecureTransport>().is_some(),
        region: Some(region.clone()),
        audit: audit.clone(),
    });
    let result = dispatch(state, &caller, &region, operation, &segments, query, bytes).await;
    if audit.is_none() {
        return result;
    }
    let result = result.map(Answer::into_value);
    crate::audit::finish(state, audit.as_ref(), Some(&caller), result, true)
        .await
        .map(Answer::Value)
}

/// An answer: a JSON tree, or (for large reads) the JSON text written straight from typed views.
enum Answer {
    Value(Value),
    Text(String),
}

impl Answer {
    fn into_body(self) -> String {
        match self {
            // `serde_json::to_string`, not `Value`'s `Display`, which writes through `fmt`'s
            // machinery: a quarter slower on a page of a hundred associations.
            Self::Value(value) => serde_json::to_string(&value).unwrap_or_default(),
            Self::Text(text) => text,
        }
    }

    /// The tree, for an audit record's response elements.
    fn into_value(self) -> Value {
        match self {
            Self::Value(value) => value,
            Self::Text(text) => serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }
}

/// A page of ListPodIdentityAssociations as EKS writes it: written without building a JSON tree
/// (a page of a hundred allocated and hashed some 1,500 keys and values).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct AssociationsPage<'a> {
    associations: Vec<AssociationItem<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<&'a str>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct AssociationItem<'a> {
    cluster_name: &'a str,
    namespace: &'a str,
    service_account: &'a str,
    association_arn: &'a str,
    association_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner_arn: Option<&'a str>,
}

/// The cluster a request is about and its parameters, for its audit record: the body's members
/// and the path's names (the body's secrets are hidden when the audit starts).
fn audit_parameters(segments: &[&str], bytes: &[u8]) -> (Option<String>, Value) {
    let mut parameters = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let mut cluster = None;
    if let ["clusters", name, rest @ ..] = segments {
        cluster = Some((*name).to_owned());
        parameters.insert("clusterName".into(), json!(name));
        match rest {
            ["pod-identity-associations", id, ..] => {
                parameters.insert("associationId".into(), json!(id));
            }
            ["addons", addon, ..] => {
                parameters.insert("addonName".into(), json!(addon));
            }
            ["podid", "service-accounts", namespace, name] => {
                parameters.insert("namespace".into(), json!(namespace));
                parameters.insert("name".into(), json!(name));
            }
            _ => {}
        }
    } else if segments == ["clusters"] {
        cluster = parameters
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    (cluster, Value::Object(parameters))
}

/// Runs the EKS, EKS Auth or podid operation `operation` for an authenticated caller.
async fn dispatch(
    state: &AppState,
    caller: &Caller,
    region: &str,
    operation: &'static str,
    segments: &[&str],
    query: &str,
    bytes: &[u8],
) -> Result<Answer, ApiError> {
    let body: Map<String, Value> = if bytes.is_empty() {
        Map::new()
    } else {
        match serde_json::from_slice(bytes) {
            Ok(Value::Object(map)) => map,
            _ => {
                return Err(ApiError::sender(
                    400,
                    "InvalidRequestException",
                    "The request body is not a JSON object.",
                ));
            }
        }
    };
    let (params, lists) =
        podid_sigv4::query_params_with_lists(query, crate::addon_ops::LIST_PARAMS).map_err(
            |e| ApiError::sender(400, "InvalidRequestException", capitalized(&e.to_string())),
        )?;
    let cluster = segments.get(1).copied().unwrap_or_default();
    let id = segments.get(3).copied().unwrap_or_default();
    let eks = state.core.eks();
    Ok(Answer::Value(match operation {
        op @ ("CreateAddon"
        | "ListAddons"
        | "DescribeAddon"
        | "UpdateAddon"
        | "DeleteAddon"
        | "DescribeAddonVersions"
        | "DescribeAddonConfiguration") => {
            let call = crate::addon_ops::Call {
                operation: op,
                region,
                cluster,
                addon: segments.get(3).copied().unwrap_or_default(),
                params: &params,
                lists: &lists,
            };
            crate::addon_ops::call(eks, caller, call, &body).await?
        }
        op @ ("CreateServiceAccount"
        | "ListServiceAccounts"
        | "GetServiceAccount"
        | "UpdateServiceAccount"
        | "DeleteServiceAccount") => {
            let call = crate::service_accounts::Call {
                operation: op,
                region,
                cluster,
                path: segments.get(4).copied().zip(segments.get(5).copied()),
                namespace_filter: params.get("namespace").map(String::as_str),
            };
            crate::service_accounts::call(eks, caller, call, &body).await?
        }
        "CreateCluster" => {
            let cluster = eks
                .create_cluster(caller, create_cluster(region, body)?)
                .await?;
            json!({"cluster": cluster_view(&cluster)})
        }
        "ListClusters" => {
            let page = eks
                .list_clusters(
                    caller,
                    region,
                    max_results(&params)?,
                    params.get("nextToken").map(String::as_str),
                )
                .await?;
            let mut out = json!({"clusters": page.items});
            if let (Some(token), Some(map)) = (page.next_token, out.as_object_mut()) {
                map.insert("nextToken".into(), token.into());
            }
            out
        }
        "DescribeCluster" => {
            json!({"cluster": cluster_view(&eks.describe_cluster(caller, region, cluster).await?)})
        }
        "DeleteCluster" => {
            let mut view = cluster_view(&eks.delete_cluster(caller, region, cluster).await?);
            if let Some(map) = view.as_object_mut() {
                map.insert("status".into(), "DELETING".into());
            }
            json!({"cluster": view})
        }
        "CreatePodIdentityAssociation" => {
            let input = CreateAssociation {
                namespace: string(&body, "namespace"),
                service_account: string(&body, "serviceAccount"),
                role_arn: string(&body, "roleArn"),
                target_role_arn: opt(&body, "targetRoleArn"),
                disable_session_tags: body
                    .get("disableSessionTags")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                policy: opt(&body, "policy"),
                tags: tags(&body)?,
                client_request_token: opt(&body, "clientRequestToken"),
            };
            for (member, value) in [
                ("namespace", &input.namespace),
                ("serviceAccount", &input.service_account),
                ("roleArn", &input.role_arn),
            ] {
                if value.is_empty() && !body.contains_key(member) {
                    return Err(missing(member));
                }
            }
            let association = eks
                .create_association(caller, region, cluster, input)
                .await?;
            json!({"association": association_view(&association)})
        }
        "ListPodIdentityAssociations" => {
            let page = eks
                .list_associations(
                    caller,
                    region,
                    cluster,
                    &ListAssociations {
                        namespace: params.get("namespace").cloned(),
                        service_account: params.get("serviceAccount").cloned(),
                        max_results: max_results(&params)?,
                        next_token: params.get("nextToken").cloned(),
                    },
                )
                .await?;
            let page_view = AssociationsPage {
                associations: page
                    .items
                    .iter()
                    .map(|s| AssociationItem {
                        cluster_name: &s.cluster,
                        namespace: &s.namespace,
                        service_account: &s.service_account,
                        association_arn: &s.arn,
                        association_id: &s.id,
                        owner_arn: s.owner_arn.as_deref(),
                    })
                    .collect(),
                next_token: page.next_token.as_deref(),
            };
            return Ok(Answer::Text(
                serde_json::to_string(&page_view).unwrap_or_default(),
            ));
        }
        "DescribePodIdentityAssociation" => {
            let a = eks
                .describe_association(caller, region, cluster, id)
                .await?;
            json!({"association": association_view(&a)})
        }
        "UpdatePodIdentityAssociation" => {
            let input = UpdateAssociation {
                role_arn: opt(&body, "roleArn"),
                target_role_arn: opt(&body, "targetRoleArn"),
                disable_session_tags: body.get("disableSessionTags").and_then(Value::as_bool),
                policy: opt(&body, "policy"),
            };
            let a = eks
                .update_association(caller, region, cluster, id, input)
                .await?;
            json!({"association": association_view(&a)})
        }
        "DeletePodIdentityAssociation" => {
            let a = eks.delete_association(caller, region, cluster, id).await?;
            json!({"association": association_view(&a)})
        }
        "CreateServiceAccountToken" => {
            let pair = |name: &str, uid: &str| {
                opt(&body, name).map(|n| (n, opt(&body, uid).unwrap_or_default()))
            };
            let audiences = match body.get("audiences") {
                Some(Value::Array(list)) => list
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            };
            let token = eks
                .create_service_account_token(
                    caller,
                    region,
                    cluster,
                    ServiceAccountToken {
                        namespace: string(&body, "namespace"),
                        service_account: string(&body, "serviceAccount"),
                        audiences,
                        expiration_seconds: body.get("expirationSeconds").and_then(Value::as_i64),
                        pod: pair("podName", "podUid"),
                        node: pair("nodeName", "nodeUid"),
                    },
                )
                .await?;
            json!({"token": token})
        }
        "AssumeRoleForPodIdentity" => {
            let token = string(&body, "token");
            if token.is_empty() {
                return Err(missing("token"));
            }
            let pod = state
                .core
                .eks_auth()
                .assume_role_for_pod_identity(caller, region, cluster, &token)
                .await?;
            let c = &pod.assumed.credentials;
            json!({
                "subject": {"namespace": pod.namespace, "serviceAccount": pod.service_account},
                "audience": podid_core::eks::PODS_SERVICE,
                "podIdentityAssociation": {
                    "associationArn": pod.association_arn,
                    "associationId": pod.association_id,
                },
                "assumedRoleUser": {
                    "arn": pod.assumed.arn,
                    "assumeRoleId": pod.assumed.assumed_role_id,
                },
                "credentials": {
                    "sessionToken": c.session_token.expose(),
                    "secretAccessKey": c.secret_access_key.expose(),
                    "accessKeyId": c.access_key_id,
                    "expiration": c.expiration.as_secs(),
                },
            })
        }
        "LookupAuditEvents" => crate::audit::lookup(state, caller, &params).await?,
        "ListChanges" => {
            // A long poll: the answer waits up to `waitSeconds` for a change.
            let wait = match params.get("waitSeconds") {
                None => 0,
                Some(v) => v.parse::<u64>().ok().filter(|s| *s <= MAX_WAIT_SECONDS).ok_or_else(|| {
                    ApiError::sender(
                        400,
                        "InvalidParameterException",
                        format!("waitSeconds `{v}` must be a whole number from 0 to {MAX_WAIT_SECONDS}."),
                    )
                })?,
            };
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(wait);
            let mut cursor = params.get("cursor").cloned();
            loop {
                // Registered before the read: a change committed here meanwhile wakes it.
                let signal = state.core.change_signal().notified();
                tokio::pin!(signal);
                signal.as_mut().enable();
                let page = eks
                    .changes(caller, region, cluster, cursor.as_deref())
                    .await?;
                if cursor.is_none()
                    || !page.changes.is_empty()
                    || page.reset
                    || std::time::Instant::now() >= deadline
                {
                    break serde_json::to_value(&page).unwrap_or_default();
                }
                cursor = Some(page.cursor);
                let pause =
                    CHANGE_POLL.min(deadline.saturating_duration_since(std::time::Instant::now()));
                let _ = tokio::time::timeout(pause, signal).await;
            }
        }
        "GetAccessGraph" => {
            let max_depth = params
                .get("maxDepth")
                .map(|v| {
                    v.parse::<u32>().map_err(|_| {
                        ApiError::sender(
                            400,
                            "InvalidParameterException",
                            format!("maxDepth `{v}` is not a whole number of hops."),
                        )
                    })
                })
                .transpose()?;
            let graph = eks
                .access_graph(
                    caller,
                    &podid_core::eks::AccessQuery {
                        region: region.to_owned(),
                        cluster: params.get("cluster").cloned(),
                        namespace: params.get("namespace").cloned(),
                        service_account: params.get("serviceAccount").cloned(),
                        role: params.get("roleArn").cloned(),
                        max_depth,
                    },
                )
                .await?;
            serde_json::to_value(&graph).unwrap_or_default()
        }
        "RotateSigningKeys" => {
            let cluster = eks.rotate_cluster_keys(caller, region, cluster).await?;
            json!({"cluster": cluster_view(&cluster)})
        }
        "GetUpstreamTrustPolicy" => {
            let policy = eks
                .upstream_trust_policy(
                    caller,
                    region,
                    cluster,
                    podid_core::eks::TrustPin {
                        namespace: params.get("namespace").map(String::as_str),
                        service_account: params.get("serviceAccount").map(String::as_str),
                        role_arn: params.get("roleArn").map(String::as_str),
                    },
                )
                .await?;
            json!({"policyDocument": policy})
        }
        _ => json!({}),
    }))
}

/// `GET /id/{id}/.well-known/openid-configuration`: a local cluster's discovery document, as
/// EKS serves it (no authentication).
pub(crate) async fn openid_configuration(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    match local_cluster(&state, &id).await {
        Ok(cluster) => json_response(
            200,
            json!({
                "issuer": cluster.issuer,
                "jwks_uri": format!("{}/id/{id}/keys", state.public_url.trim_end_matches('/')),
                "authorization_endpoint": "urn:kubernetes:programmatic_authorization",
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "claims_supported": ["sub", "iss"],
                "id_token_signing_alg_values_supported": ["RS256"],
            })
            .to_string(),
            "",
            None,
        ),
        Err(response) => response,
    }
}

/// `GET /id/{id}/keys`: a local cluster's JWKS (current and retired keys).
pub(crate) async fn keys(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match local_cluster(&state, &id).await {
        Ok(cluster) => match state.core.eks().cluster_jwks(&cluster) {
            Ok(jwks) => json_response(
                200,
                serde_json::to_string(&jwks).unwrap_or_default(),
                "",
                None,
            ),
            Err(e) => json_response(
                500,
                json!({"message": e.to_string()}).to_string(),
                "",
                Some("ServerException"),
            ),
        },
        Err(response) => response,
    }
}

async fn local_cluster(state: &AppState, id: &str) -> Result<ClusterRecord, Response> {
    let not_found = || {
        json_response(
            404,
            json!({"message": format!("No issuer with id {id}.")}).to_string(),
            "",
            Some("ResourceNotFoundException"),
        )
    };
    match state.core.eks().cluster_by_id(id).await {
        Ok(Some(cluster))
            if matches!(cluster.tokens, podid_core::eks::TokenSource::Local { .. }) =>
        {
            Ok(cluster)
        }
        Ok(_) => Err(not_found()),
        Err(e) => Err(json_response(
            500,
            json!({"message": e.to_string()}).to_string(),
            "",
            Some("ServerException"),
        )),
    }
}

fn create_cluster(region: &str, mut body: Map<String, Value>) -> Result<CreateCluster, ApiError> {
    let name = string(&body, "name");
    if name.is_empty() && !body.contains_key("name") {
        return Err(missing("name"));
    }
    let tags = tags(&body)?;
    let version = opt(&body, "version");
    let role_arn = opt(&body, "roleArn");
    let external = body.remove("podidExternalIssuer");
    let credential_backend = match body.remove("podidCredentialBackend") {
        None => podid_core::eks::CredentialBackend::Embedded,
        Some(Value::Object(spec)) => match string(&spec, "type").as_str() {
            "embedded" => podid_core::eks::CredentialBackend::Embedded,
            "aws" => {
                let endpoint = opt(&spec, "upstreamStsEndpoint");
                if let Some(url) = &endpoint
                    && !(url.starts_with("https://") || url.starts_with("http://"))
                {
                    return Err(ApiError::sender(
                        400,
                        "InvalidParameterException",
                        "podidCredentialBackend.upstreamStsEndpoint must be an http(s) URL.",
                    ));
                }
                podid_core::eks::CredentialBackend::Aws {
                    upstream_sts_endpoint: endpoint,
                }
            }
            _ => {
                return Err(ApiError::sender(
                    400,
                    "InvalidParameterException",
                    "podidCredentialBackend.type must be `embedded` or `aws`.",
                ));
            }
        },
        Some(_) => {
            return Err(ApiError::sender(
                400,
                "InvalidParameterException",
                "podidCredentialBackend must be an object with `type` (`embedded` or `aws`) and, for `aws`, an optional `upstreamStsEndpoint`.",
            ));
        }
    };
    for member in ["name", "tags", "version", "roleArn", "clientRequestToken"] {
        body.remove(member);
    }
    let tokens = match external {
        None => ClusterTokens::Local,
        Some(Value::Object(spec)) => ClusterTokens::External {
            issuer: string(&spec, "issuer"),
            jwks: spec.get("jwks").map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            jwks_uri: opt(&spec, "jwksUri"),
        },
        Some(_) => {
            return Err(ApiError::sender(
                400,
                "InvalidParameterException",
                "podidExternalIssuer must be an object with `issuer` and `jwks` or `jwksUri`.",
            ));
        }
    };
    Ok(CreateCluster {
        name,
        region: region.to_owned(),
        version,
        role_arn,
        tags,
        extra: body,
        tokens,
        credential_backend,
    })
}

fn cluster_view(c: &ClusterRecord) -> Value {
    let extra = |name: &str, default: Value| c.extra.get(name).cloned().unwrap_or(default);
    let mut out = Map::new();
    out.insert("name".into(), c.name.clone().into());
    out.insert("arn".into(), c.arn.clone().into());
    out.insert("createdAt".into(), epoch(c.created));
    out.insert("version".into(), c.version.clone().into());
    if let Some(endpoint) = c.extra.get("endpoint") {
        out.insert("endpoint".into(), endpoint.clone());
    }
    if let Some(role) = &c.role_arn {
        out.insert("roleArn".into(), role.clone().into());
    }
    out.insert(
        "resourcesVpcConfig".into(),
        extra("resourcesVpcConfig", json!({})),
    );
    out.insert(
        "kubernetesNetworkConfig".into(),
        extra(
            "kubernetesNetworkConfig",
            json!({"serviceIpv4Cidr": "10.100.0.0/16", "ipFamily": "ipv4"}),
        ),
    );
    out.insert(
        "logging".into(),
        extra(
            "logging",
            json!({"clusterLogging": [{"types": ["api", "audit", "authenticator", "controllerManager", "scheduler"], "enabled": false}]}),
        ),
    );
    out.insert("identity".into(), json!({"oidc": {"issuer": c.issuer}}));
    out.insert("status".into(), "ACTIVE".into());
    out.insert(
        "certificateAuthority".into(),
        extra("certificateAuthority", json!({})),
    );
    out.insert("platformVersion".into(), "eks.1".into());
    out.insert("tags".into(), json!(c.tags));
    out.insert(
        "accessConfig".into(),
        extra(
            "accessConfig",
            json!({"authenticationMode": "API_AND_CONFIG_MAP"}),
        ),
    );
    for (key, value) in &c.extra {
        if !out.contains_key(key) {
            out.insert(key.clone(), value.clone());
        }
    }
    // podid's own: where the cluster's tokens come from (SDKs ignore members they do not know).
    let issuer = match &c.tokens {
        podid_core::eks::TokenSource::Local { keys } => json!({
            "type": "local",
            "signingKeys": keys.len(),
        }),
        podid_core::eks::TokenSource::External {
            jwks,
            jwks_uri,
            fetched,
        } => {
            let keys = podid_jwt_keys(jwks);
            let mut v = json!({"type": "external", "keys": keys});
            if let Some(map) = v.as_object_mut() {
                if let Some(uri) = jwks_uri {
                    map.insert("jwksUri".into(), uri.clone().into());
                }
                if let Some(at) = fetched {
                    map.insert("jwksFetchedAt".into(), epoch(*at));
                }
            }
            v
        }
    };
    out.insert("podidIssuer".into(), issuer);
    out.insert(
        "podidCredentialBackend".into(),
        serde_json::to_value(&c.credential_backend).unwrap_or_default(),
    );
    Value::Object(out)
}

fn association_view(a: &AssociationRecord) -> Value {
    let mut out = Map::new();
    out.insert("clusterName".into(), a.cluster.clone().into());
    out.insert("namespace".into(), a.namespace.clone().into());
    out.insert("serviceAccount".into(), a.service_account.clone().into());
    out.insert("roleArn".into(), a.role_arn.clone().into());
    out.insert("associationArn".into(), a.arn.clone().into());
    out.insert("associationId".into(), a.id.clone().into());
    out.insert("tags".into(), json!(a.tags));
    out.insert("createdAt".into(), epoch(a.created));
    out.insert("modifiedAt".into(), epoch(a.modified));
    out.insert("disableSessionTags".into(), a.disable_session_tags.into());
    if let Some(target) = &a.target_role_arn {
        out.insert("targetRoleArn".into(), target.clone().into());
    }
    if let Some(external) = &a.external_id {
        out.insert("externalId".into(), external.clone().into());
    }
    if let Some(policy) = &a.policy {
        out.insert("policy".into(), policy.clone().into());
    }
    if let Some(owner) = &a.owner_arn {
        out.insert("ownerArn".into(), owner.clone().into());
    }
    if let Some(checks) = &a.upstream_checks {
        out.insert(
            "podidUpstreamChecks".into(),
            json!({"checked": checks.checked, "skipped": checks.skipped}),
        );
    }
    Value::Object(out)
}

/// Epoch seconds with milliseconds, as EKS writes timestamps.
pub(crate) fn epoch(millis: i64) -> Value {
    #[expect(
        clippy::cast_precision_loss,
        reason = "epoch milliseconds fit an f64 exactly"
    )]
    let seconds = millis as f64 / 1000.0;
    json!(seconds)
}

pub(crate) fn string(body: &Map<String, Value>, member: &str) -> String {
    opt(body, member).unwrap_or_default()
}

pub(crate) fn opt(body: &Map<String, Value>, member: &str) -> Option<String> {
    body.get(member).and_then(Value::as_str).map(str::to_owned)
}

pub(crate) fn tags(body: &Map<String, Value>) -> Result<BTreeMap<String, String>, ApiError> {
    match body.get("tags") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(ApiError::sender(
                    400,
                    "InvalidParameterException",
                    format!("The value of tag `{k}` must be a string."),
                )),
            })
            .collect(),
        Some(_) => Err(ApiError::sender(
            400,
            "InvalidParameterException",
            "The parameter tags must be a map of strings.",
        )),
    }
}

pub(crate) fn max_results(
    params: &std::collections::BTreeMap<String, String>,
) -> Result<Option<u32>, ApiError> {
    match params.get("maxResults") {
        None => Ok(None),
        Some(text) => text.parse::<u32>().map(Some).map_err(|_| {
            ApiError::sender(
                400,
                "InvalidParameterException",
                "The parameter maxResults should be between 1 and 100.",
            )
        }),
    }
}

pub(crate) fn missing(member: &str) -> ApiError {
    ApiError::sender(
        400,
        "InvalidParameterException",
        format!("The parameter {member} is required."),
    )
}

fn error_body(e: &ApiError) -> String {
    json!({"message": e.message}).to_string()
}

/// A JSON response; errors carry their code in `x-amzn-ErrorType`, as rest-json services do.
fn json_response(status: u16, body: String, request_id: &str, error: Option<&str>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if !request_id.is_empty()
        && let Ok(id) = HeaderValue::from_str(request_id)
    {
        headers.insert("x-amzn-requestid", id);
    }
    if let Some(code) = error.and_then(|c| HeaderValue::from_str(c).ok()) {
        headers.insert("x-amzn-errortype", code);
    }
    response
}

/// How many keys a JWKS document lists.
fn podid_jwt_keys(jwks: &str) -> usize {
    serde_json::from_str::<Value>(jwks)
        .ok()
        .and_then(|v| v.get("keys").and_then(Value::as_array).map(Vec::len))
        .unwrap_or(0)
}

//! AdmissionReview: what the API server sends a mutating webhook and what it expects back
//! (`admission.k8s.io/v1`, and `v1beta1`, whose shape is the same), kept apart from HTTP so that
//! it is tested and fuzzed alone.
//!
//! A review is answered in its own `apiVersion`, with its `uid`. Only the creation of a pod is
//! mutated; any other object or operation is allowed unchanged (the webhook's configuration
//! should not send them; if it does, nothing breaks). A body that is not a review is answered
//! with an AdmissionReview whose response is `allowed: false` and a status naming the problem.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::Mutation;

/// The version the API server sends when the configuration lists `v1` first.
pub const API_VERSION: &str = "admission.k8s.io/v1";
/// The older version, served the same way.
const API_VERSION_BETA: &str = "admission.k8s.io/v1beta1";
/// The largest review read. Kubernetes objects are at most 1.5 MiB in etcd and a CREATE review
/// carries one; the rest is headroom.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// A review the webhook must answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// The creation of a pod: mutate it.
    CreatePod(PodReview),
    /// Anything else: allow it unchanged.
    Other {
        /// `request.uid`.
        uid: String,
        /// The review's `apiVersion`, for the answer.
        api_version: String,
        /// What it was, for the log (e.g. `UPDATE v1/Pod`).
        what: String,
    },
}

/// The creation of a pod.
#[derive(Clone, Debug, PartialEq)]
pub struct PodReview {
    /// `request.uid`, echoed in the answer.
    pub uid: String,
    /// The review's `apiVersion`, for the answer.
    pub api_version: String,
    /// The pod's namespace (`request.namespace`: a pod being created may not carry one).
    pub namespace: String,
    /// `spec.serviceAccountName` (or the deprecated `spec.serviceAccount`), else `default`.
    pub service_account: String,
    /// The pod's name, or its `generateName` prefix, for logs.
    pub name: String,
    /// `request.object`.
    pub pod: Value,
}

/// A body that cannot be answered as asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// `request.uid`, when it could be read.
    pub uid: Option<String>,
    /// The review's `apiVersion`, when it is one podid serves.
    pub api_version: Option<String>,
    /// HTTP status and `status.code`: 400, 413 or 415.
    pub code: u16,
    /// What is wrong and what to do.
    pub message: String,
}

impl Rejection {
    fn new(code: u16, message: impl Into<String>) -> Self {
        Self {
            uid: None,
            api_version: None,
            code,
            message: message.into(),
        }
    }
}

/// Reads a review.
///
/// # Errors
/// A body that is not a JSON AdmissionReview of a served version, lacks `request.uid`, or whose
/// pod is not an object.
pub fn parse(body: &[u8]) -> Result<Request, Rejection> {
    if body.len() > MAX_BODY {
        return Err(too_large(body.len()));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Rejection::new(
            400,
            "the body is empty: send an AdmissionReview (admission.k8s.io/v1)",
        ));
    }
    let review: Value = serde_json::from_slice(body).map_err(|e| {
        Rejection::new(
            400,
            format!("the body is not JSON ({e}): send an AdmissionReview (admission.k8s.io/v1)"),
        )
    })?;
    let Some(review) = review.as_object() else {
        return Err(Rejection::new(
            400,
            "the body is not a JSON object: send an AdmissionReview (admission.k8s.io/v1)",
        ));
    };
    let kind = review.get("kind").and_then(Value::as_str);
    if kind != Some("AdmissionReview") {
        return Err(Rejection::new(
            400,
            format!(
                "`kind` is {}, not `AdmissionReview`: send an AdmissionReview (admission.k8s.io/v1)",
                shown(review.get("kind"))
            ),
        ));
    }
    let api_version = match review.get("apiVersion").and_then(Value::as_str) {
        Some(v @ (API_VERSION | API_VERSION_BETA)) => v.to_owned(),
        _ => {
            return Err(Rejection::new(
                400,
                format!(
                    "AdmissionReview `apiVersion` {} is not served: list `v1` in the webhook configuration's admissionReviewVersions",
                    shown(review.get("apiVersion"))
                ),
            ));
        }
    };
    let mut rejection = Rejection::new(400, String::new());
    rejection.api_version = Some(api_version.clone());
    let Some(request) = review.get("request").and_then(Value::as_object) else {
        rejection.message = "the AdmissionReview has no `request` object".into();
        return Err(rejection);
    };
    let uid = match request.get("uid").and_then(Value::as_str) {
        Some(uid) if !uid.is_empty() && uid.len() <= 256 => uid.to_owned(),
        _ => {
            rejection.message =
                "the AdmissionReview's `request.uid` is missing or not a string of 1 to 256 characters"
                    .into();
            return Err(rejection);
        }
    };
    rejection.uid = Some(uid.clone());
    let text = |map: &Map<String, Value>, key: &str| {
        map.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let operation = text(request, "operation");
    let kind = request
        .get("kind")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let (group, version, kind) = (
        text(&kind, "group"),
        text(&kind, "version"),
        text(&kind, "kind"),
    );
    let sub_resource = text(request, "subResource");
    if operation != "CREATE" || !group.is_empty() || kind != "Pod" || !sub_resource.is_empty() {
        let resource = if group.is_empty() {
            format!("{version}/{kind}")
        } else {
            format!("{group}/{version}/{kind}")
        };
        let sub = if sub_resource.is_empty() {
            String::new()
        } else {
            format!(" ({sub_resource})")
        };
        return Ok(Request::Other {
            uid,
            api_version,
            what: format!("{operation} {resource}{sub}"),
        });
    }
    let Some(pod) = request.get("object").filter(|o| o.is_object()) else {
        rejection.message = "the review of a pod's creation has no `request.object` object".into();
        return Err(rejection);
    };
    if !pod.get("spec").is_some_and(Value::is_object) {
        rejection.message = "the pod in `request.object` has no `spec` object".into();
        return Err(rejection);
    }
    let namespace = Some(text(request, "namespace"))
        .filter(|n| !n.is_empty())
        .or_else(|| {
            pod.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .filter(|n| !n.is_empty());
    let Some(namespace) = namespace else {
        rejection.message = "the review names no namespace (`request.namespace`)".into();
        return Err(rejection);
    };
    let service_account = ["/spec/serviceAccountName", "/spec/serviceAccount"]
        .iter()
        .find_map(|p| {
            pod.pointer(p)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or("default")
        .to_owned();
    let name = ["/metadata/name", "/metadata/generateName"]
        .iter()
        .find_map(|p| {
            pod.pointer(p)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_default()
        .to_owned();
    Ok(Request::CreatePod(PodReview {
        uid,
        api_version,
        namespace,
        service_account,
        name,
        pod: pod.clone(),
    }))
}

/// The rejection of a body longer than [`MAX_BODY`] (`length` bytes, or more).
pub fn too_large(length: usize) -> Rejection {
    Rejection::new(
        413,
        format!(
            "the AdmissionReview is {length} bytes or more; at most {MAX_BODY} are read: is this an API server's review?"
        ),
    )
}

/// The rejection of a request whose `Content-Type` is not JSON.
pub fn wrong_content_type(content_type: &str) -> Rejection {
    Rejection::new(
        415,
        format!("Content-Type `{content_type}` is not served: send `application/json`"),
    )
}

/// The answer that allows the pod with `mutation` applied; `warnings` are shown to the user who
/// created it (`kubectl` prints them).
pub fn allow(uid: &str, api_version: &str, mutation: &Mutation, warnings: &[String]) -> Value {
    let mut response = Map::new();
    response.insert("uid".into(), json!(uid));
    response.insert("allowed".into(), json!(true));
    if !mutation.patch.is_empty() {
        let patch = serde_json::to_vec(&mutation.patch).unwrap_or_default();
        response.insert("patchType".into(), json!("JSONPatch"));
        response.insert(
            "patch".into(),
            json!(base64::engine::general_purpose::STANDARD.encode(patch)),
        );
    }
    if !warnings.is_empty() {
        response.insert("warnings".into(), json!(warnings));
    }
    json!({"apiVersion": api_version, "kind": "AdmissionReview", "response": response})
}

/// The answer to a body that could not be answered as asked: `allowed: false`, with a status.
pub fn reject(rejection: &Rejection) -> Value {
    let reason = match rejection.code {
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        _ => "BadRequest",
    };
    json!({
        "apiVersion": rejection.api_version.as_deref().unwrap_or(API_VERSION),
        "kind": "AdmissionReview",
        "response": {
            "uid": rejection.uid.as_deref().unwrap_or_default(),
            "allowed": false,
            "status": {
                "metadata": {},
                "status": "Failure",
                "message": rejection.message,
                "reason": reason,
                "code": rejection.code,
            },
        },
    })
}

/// A JSON value as a message shows it: `"text"` in backticks, absent as `missing`.
fn shown(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "missing".into(),
        Some(Value::String(s)) => format!("`{}`", s.chars().take(64).collect::<String>()),
        Some(other) => format!(
            "`{}`",
            other.to_string().chars().take(64).collect::<String>()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(request: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request,
        }))
        .unwrap_or_default()
    }

    fn pod_request() -> Value {
        json!({
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": "team-a",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"generateName": "app-7d9c-"},
                "spec": {"serviceAccountName": "app", "containers": [{"name": "app", "image": "x"}]},
            },
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        })
    }

    #[test]
    fn a_pod_creation_is_read_with_the_request_namespace() {
        let parsed = parse(&review(pod_request()));
        let Ok(Request::CreatePod(review)) = parsed else {
            panic!("{parsed:?}");
        };
        assert_eq!(review.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(review.namespace, "team-a");
        assert_eq!(review.service_account, "app");
        assert_eq!(review.name, "app-7d9c-");
        assert_eq!(review.api_version, API_VERSION);
    }

    #[test]
    fn other_operations_and_objects_are_allowed_unchanged() {
        let mut update = pod_request();
        update["operation"] = json!("UPDATE");
        assert!(matches!(
            parse(&review(update)),
            Ok(Request::Other { what, .. }) if what == "UPDATE v1/Pod"
        ));
        let mut deployment = pod_request();
        deployment["kind"] = json!({"group": "apps", "version": "v1", "kind": "Deployment"});
        assert!(matches!(
            parse(&review(deployment)),
            Ok(Request::Other { what, .. }) if what == "CREATE apps/v1/Deployment"
        ));
        let mut ephemeral = pod_request();
        ephemeral["subResource"] = json!("ephemeralcontainers");
        assert!(matches!(
            parse(&review(ephemeral)),
            Ok(Request::Other { .. })
        ));
    }

    #[test]
    fn malformed_reviews_are_rejected_with_what_is_wrong() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "the body is empty"),
            (b"{\"kind\":".to_vec(), "the body is not JSON"),
            (b"[1,2]".to_vec(), "not a JSON object"),
            (
                br#"{"kind":"Pod","apiVersion":"v1"}"#.to_vec(),
                "`kind` is `Pod`",
            ),
            (
                br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v2"}"#.to_vec(),
                "`admission.k8s.io/v2` is not served",
            ),
            (
                br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}"#.to_vec(),
                "no `request` object",
            ),
            (review(json!({"operation": "CREATE"})), "`request.uid`"),
        ];
        for (body, expected) in cases {
            let rejection = parse(&body).err().unwrap_or_else(|| Rejection::new(0, ""));
            assert_eq!(rejection.code, 400, "{expected}");
            assert!(
                rejection.message.contains(expected),
                "{expected}: {}",
                rejection.message
            );
        }
        let mut no_namespace = pod_request();
        no_namespace["namespace"] = json!("");
        let rejection = parse(&review(no_namespace)).err();
        assert_eq!(
            rejection.as_ref().and_then(|r| r.uid.as_deref()),
            Some("705ab4f5-6393-11e8-b7cc-42010a800002")
        );
        let answer = reject(&rejection.unwrap_or_else(|| Rejection::new(0, "")));
        assert_eq!(
            answer["response"]["uid"],
            "705ab4f5-6393-11e8-b7cc-42010a800002"
        );
        assert_eq!(answer["response"]["allowed"], false);
        assert_eq!(answer["response"]["status"]["code"], 400);
        let big = vec![b' '; MAX_BODY + 1];
        assert_eq!(parse(&big).err().map(|r| r.code), Some(413));
    }

    #[test]
    fn the_answer_carries_the_patch_in_base64_and_the_uid() {
        let mutation = Mutation {
            patch: vec![json!({"op": "add", "path": "/metadata/labels", "value": {}})],
            mode: Some("irsa"),
            skipped: None,
        };
        let answer = allow("u-1", API_VERSION_BETA, &mutation, &["note".into()]);
        assert_eq!(answer["apiVersion"], API_VERSION_BETA);
        assert_eq!(answer["kind"], "AdmissionReview");
        assert_eq!(answer["response"]["uid"], "u-1");
        assert_eq!(answer["response"]["allowed"], true);
        assert_eq!(answer["response"]["patchType"], "JSONPatch");
        assert_eq!(answer["response"]["warnings"], json!(["note"]));
        let patch = base64::engine::general_purpose::STANDARD
            .decode(answer["response"]["patch"].as_str().unwrap_or_default())
            .unwrap_or_default();
        let patch: Value = serde_json::from_slice(&patch).unwrap_or_default();
        assert_eq!(patch, json!(mutation.patch));
        let unchanged = allow("u-2", API_VERSION, &Mutation::default(), &[]);
        assert!(unchanged["response"].get("patch").is_none());
        assert!(unchanged["response"].get("patchType").is_none());
    }
}

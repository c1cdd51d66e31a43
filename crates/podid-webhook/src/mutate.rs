//! The mutation: (pod, service account, association or none, settings) → JSON patch.
//!
//! Names, defaults and rules are the reference webhook's (amazon-eks-pod-identity-webhook) and
//! EKS's, with two deliberate differences, both fixes of known pain points:
//! - container edits are field-level `add` operations (`…/env/-`, `…/volumeMounts/-`), never a
//!   re-serialized container, so fields podid does not know survive (a native sidecar's
//!   `restartPolicy: Always`);
//! - nothing that is already there is added again, so mutating the output yields an empty patch.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

/// The Pod Identity token volume, as EKS names it.
pub const POD_IDENTITY_VOLUME: &str = "eks-pod-identity-token";
/// Where EKS mounts it.
pub const POD_IDENTITY_MOUNT_PATH: &str = "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount";
/// The token's file in it.
pub const POD_IDENTITY_TOKEN_FILE: &str = "eks-pod-identity-token";
/// The audience of Pod Identity tokens.
pub const POD_IDENTITY_AUDIENCE: &str = "pods.eks.amazonaws.com";
/// The agent's URL on IPv4 nodes.
pub const POD_IDENTITY_URI: &str = "http://169.254.170.23/v1/credentials";
/// The label EKS puts on pods it gave Pod Identity.
pub const POD_IDENTITY_LABEL: &str = "eks.amazonaws.com/pod-identity";
/// The IRSA token volume, as the reference webhook names it.
pub const IRSA_VOLUME: &str = "aws-iam-token";
/// Where the reference webhook mounts it (`--token-mount-path`).
pub const IRSA_MOUNT_PATH: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount";

/// The shortest token lifetime; shorter ones are raised to it (the reference's rule).
const MIN_EXPIRATION: i64 = 600;
/// The default lifetime, which Pod Identity tokens get jittered down from.
const DEFAULT_EXPIRATION: i64 = 86_400;
/// The low end of that jitter.
const JITTER_FLOOR: i64 = 79_200;

/// The webhook's settings (its flags).
#[derive(Clone, Debug)]
pub struct Config {
    /// `--annotation-prefix`: `eks.amazonaws.com`.
    pub annotation_prefix: String,
    /// `--token-audience`: IRSA tokens' audience unless the service account says another.
    pub token_audience: String,
    /// `--token-expiration`, seconds.
    pub token_expiration: i64,
    /// `--token-mount-path`.
    pub irsa_mount_path: String,
    /// `--aws-default-region`: `AWS_REGION` and `AWS_DEFAULT_REGION` when set.
    pub region: Option<String>,
    /// `--sts-regional-endpoint`: `AWS_STS_REGIONAL_ENDPOINTS=regional`.
    pub sts_regional_endpoints: bool,
    /// `--container-credentials-full-uri`: the agent's URL
    /// (`http://[fd00:ec2::23]/v1/credentials` on IPv6 clusters).
    pub pod_identity_uri: String,
    /// An `fsGroup` set on pods that have none, so that non-root containers can read the token.
    pub fs_group: Option<i64>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            annotation_prefix: "eks.amazonaws.com".into(),
            token_audience: "sts.amazonaws.com".into(),
            token_expiration: DEFAULT_EXPIRATION,
            irsa_mount_path: IRSA_MOUNT_PATH.into(),
            region: None,
            sts_regional_endpoints: false,
            pod_identity_uri: POD_IDENTITY_URI.into(),
            fs_group: None,
        }
    }
}

/// What the mutation reads of a service account: its annotations.
#[derive(Clone, Debug, Default)]
pub struct ServiceAccount {
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
}

/// What to do to a pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mutation {
    /// RFC 6902 operations, all `add`; empty when the pod needs nothing.
    pub patch: Vec<Value>,
    /// `pod-identity` or `irsa` when the pod gets an identity (even if it already had it).
    pub mode: Option<&'static str>,
    /// Why a pod that should have been mutated was not.
    pub skipped: Option<String>,
}

/// The identity a pod gets.
enum Identity {
    PodIdentity,
    Irsa { role_arn: String, audience: String },
}

/// The mutation of `pod` (a `v1/Pod` as JSON), whose service account is `service_account` (if
/// it is known) and has a Pod Identity association when `associated`. `jitter(low, high)` picks
/// a lifetime in `[low, high]` (injected, for tests).
pub fn mutate(
    pod: &Value,
    service_account: Option<&ServiceAccount>,
    associated: bool,
    config: &Config,
    jitter: &mut dyn FnMut(i64, i64) -> i64,
) -> Mutation {
    let sa_annotation = |name: &str| {
        service_account.and_then(|sa| {
            sa.annotations
                .get(&format!("{}/{name}", config.annotation_prefix))
                .map(String::as_str)
        })
    };
    let pod_annotation = |name: &str| {
        pod.pointer("/metadata/annotations")
            .and_then(|a| a.get(format!("{}/{name}", config.annotation_prefix)))
            .and_then(Value::as_str)
    };
    // The label the webhook's object selector excludes; honoured here too, should the
    // configuration lack the selector.
    let opted_out = pod
        .pointer("/metadata/labels")
        .and_then(|l| {
            l.get(format!(
                "{}/skip-pod-identity-webhook",
                config.annotation_prefix
            ))
        })
        .is_some();
    if opted_out {
        return Mutation::default();
    }
    let identity = if associated {
        Identity::PodIdentity
    } else if let Some(role_arn) = sa_annotation("role-arn").filter(|a| !a.is_empty()) {
        Identity::Irsa {
            role_arn: role_arn.to_owned(),
            audience: sa_annotation("audience")
                .unwrap_or(&config.token_audience)
                .to_owned(),
        }
    } else {
        return Mutation::default();
    };
    let mode = match identity {
        Identity::PodIdentity => "pod-identity",
        Identity::Irsa { .. } => "irsa",
    };
    // Lifetime: the pod's annotation, the service account's, the flag; at least ten minutes;
    // Pod Identity's default jittered as EKS does, so that a node's pods do not all renew at once.
    let mut expiration = pod_annotation("token-expiration")
        .or_else(|| sa_annotation("token-expiration"))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(config.token_expiration)
        .max(MIN_EXPIRATION);
    if matches!(identity, Identity::PodIdentity) && expiration == DEFAULT_EXPIRATION {
        expiration =
            jitter(JITTER_FLOOR, DEFAULT_EXPIRATION).clamp(JITTER_FLOOR, DEFAULT_EXPIRATION);
    }
    let sts_regional = match sa_annotation("sts-regional-endpoints") {
        Some(v) => parse_bool(v).unwrap_or(config.sts_regional_endpoints),
        None => config.sts_regional_endpoints,
    };
    let (volume_name, mount_path, file, audience) = match &identity {
        Identity::PodIdentity => (
            POD_IDENTITY_VOLUME,
            POD_IDENTITY_MOUNT_PATH.to_owned(),
            POD_IDENTITY_TOKEN_FILE,
            POD_IDENTITY_AUDIENCE.to_owned(),
        ),
        Identity::Irsa { audience, .. } => (
            IRSA_VOLUME,
            config.irsa_mount_path.trim_end_matches('/').to_owned(),
            "token",
            audience.clone(),
        ),
    };
    let mut patch = Vec::new();
    // The volume, unless it is there; a volume of that name that is not this token is someone
    // else's: the pod is left alone rather than pointed at it.
    let volumes = pod.pointer("/spec/volumes").and_then(Value::as_array);
    match volumes.and_then(|v| {
        v.iter()
            .find(|v| v.get("name").and_then(Value::as_str) == Some(volume_name))
    }) {
        Some(existing) => {
            let source = existing.pointer("/projected/sources/0/serviceAccountToken");
            let ours = source
                .and_then(|s| s.get("audience"))
                .and_then(Value::as_str)
                == Some(audience.as_str())
                && source.and_then(|s| s.get("path")).and_then(Value::as_str) == Some(file);
            if !ours {
                return Mutation {
                    patch: Vec::new(),
                    mode: None,
                    skipped: Some(format!(
                        "the pod already has a volume named `{volume_name}` that is not a {audience} service-account token: rename it"
                    )),
                };
            }
        }
        None => {
            let volume = json!({
                "name": volume_name,
                "projected": {"sources": [{"serviceAccountToken": {
                    "audience": audience,
                    "expirationSeconds": expiration,
                    "path": file,
                }}]},
            });
            patch.push(match volumes {
                None => json!({"op": "add", "path": "/spec/volumes", "value": [volume]}),
                Some(_) => json!({"op": "add", "path": "/spec/volumes/0", "value": volume}),
            });
        }
    }
    if matches!(identity, Identity::PodIdentity) {
        match pod.pointer("/metadata/labels").and_then(Value::as_object) {
            None => patch.push(json!({"op": "add", "path": "/metadata/labels",
                                      "value": {POD_IDENTITY_LABEL: "enabled"}})),
            Some(labels) if labels.get(POD_IDENTITY_LABEL) != Some(&json!("enabled")) => {
                patch.push(json!({"op": "add",
                                  "path": format!("/metadata/labels/{}", pointer_escaped(POD_IDENTITY_LABEL)),
                                  "value": "enabled"}));
            }
            Some(_) => {}
        }
    }
    let windows = ["kubernetes.io/os", "beta.kubernetes.io/os"]
        .iter()
        .any(|k| {
            pod.pointer("/spec/nodeSelector")
                .and_then(|s| s.get(*k))
                .and_then(Value::as_str)
                == Some("windows")
        });
    let token_path = format!("{mount_path}/{file}");
    let token_path = if windows {
        format!("C:{}", token_path.replace('/', "\\"))
    } else {
        token_path
    };
    let skip: BTreeSet<&str> = pod_annotation("skip-containers")
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let identity_vars: [(&str, String); 2] = match &identity {
        Identity::PodIdentity => [
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                config.pod_identity_uri.clone(),
            ),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_path),
        ],
        Identity::Irsa { role_arn, .. } => [
            ("AWS_ROLE_ARN", role_arn.clone()),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token_path),
        ],
    };
    for kind in ["initContainers", "containers"] {
        let Some(containers) = pod
            .pointer(&format!("/spec/{kind}"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        for (index, container) in containers.iter().enumerate() {
            let name = container
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if skip.contains(name) {
                continue;
            }
            let base = format!("/spec/{kind}/{index}");
            container_ops(
                container,
                &base,
                &identity_vars,
                sts_regional,
                config.region.as_deref(),
                volume_name,
                &mount_path,
                &mut patch,
            );
        }
    }
    if let Some(group) = config.fs_group {
        match pod
            .pointer("/spec/securityContext")
            .and_then(Value::as_object)
        {
            None => patch.push(json!({"op": "add", "path": "/spec/securityContext",
                                      "value": {"fsGroup": group}})),
            Some(context) if !context.contains_key("fsGroup") => {
                patch.push(
                    json!({"op": "add", "path": "/spec/securityContext/fsGroup", "value": group}),
                );
            }
            Some(_) => {}
        }
    }
    Mutation {
        patch,
        mode: Some(mode),
        skipped: None,
    }
}

/// The operations for one container: the variables it lacks (never overwriting one it has, in
/// the reference's order) and the token's mount.
#[expect(
    clippy::too_many_arguments,
    reason = "one container's share of one decision"
)]
fn container_ops(
    container: &Value,
    base: &str,
    identity_vars: &[(&str, String); 2],
    sts_regional: bool,
    region: Option<&str>,
    volume_name: &str,
    mount_path: &str,
    patch: &mut Vec<Value>,
) {
    let env = container.get("env").and_then(Value::as_array);
    let has = |name: &str| {
        env.is_some_and(|e| {
            e.iter()
                .any(|v| v.get("name").and_then(Value::as_str) == Some(name))
        })
    };
    let identity_defined = identity_vars.iter().any(|(name, _)| has(name));
    let region_defined = has("AWS_REGION") || has("AWS_DEFAULT_REGION");
    let sts_defined = has("AWS_STS_REGIONAL_ENDPOINTS");
    // The reference leaves a container that defines all three alone, mount included.
    if identity_defined && region_defined && sts_defined {
        return;
    }
    let mut added: Vec<Value> = Vec::new();
    if sts_regional && !sts_defined {
        added.push(json!({"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"}));
    }
    if let (Some(region), false) = (region, region_defined) {
        added.push(json!({"name": "AWS_DEFAULT_REGION", "value": region}));
        added.push(json!({"name": "AWS_REGION", "value": region}));
    }
    if !identity_defined {
        for (name, value) in identity_vars {
            added.push(json!({"name": name, "value": value}));
        }
    }
    match env {
        None if !added.is_empty() => {
            patch.push(json!({"op": "add", "path": format!("{base}/env"), "value": added}));
        }
        _ => {
            for var in added {
                patch.push(json!({"op": "add", "path": format!("{base}/env/-"), "value": var}));
            }
        }
    }
    let mounts = container.get("volumeMounts").and_then(Value::as_array);
    let mounted = mounts.is_some_and(|m| {
        m.iter()
            .any(|m| m.get("name").and_then(Value::as_str) == Some(volume_name))
    });
    if !mounted {
        let mount = json!({"name": volume_name, "readOnly": true, "mountPath": mount_path});
        patch.push(match mounts {
            None => json!({"op": "add", "path": format!("{base}/volumeMounts"), "value": [mount]}),
            Some(_) => {
                json!({"op": "add", "path": format!("{base}/volumeMounts/-"), "value": mount})
            }
        });
    }
}

/// Go's `strconv.ParseBool`, which the reference reads `sts-regional-endpoints` with.
fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// `text` as one JSON pointer token (RFC 6901).
fn pointer_escaped(text: &str) -> String {
    text.replace('~', "~0").replace('/', "~1")
}

/// Applies `patch` (`add` operations only, as [`mutate`] makes them) to `value`: what the API
/// server does with the webhook's answer, and what `podid exec` does with its pod.
///
/// # Errors
/// An operation that is not an `add`, or whose parent does not exist, is named.
pub fn apply(value: &mut Value, patch: &[Value]) -> Result<(), String> {
    for op in patch {
        let path = op.get("path").and_then(Value::as_str).unwrap_or_default();
        if op.get("op").and_then(Value::as_str) != Some("add") {
            return Err(format!("only `add` operations can be applied, not `{op}`"));
        }
        let (parent, last) = path.rsplit_once('/').unwrap_or(("", path));
        let last = last.replace("~1", "/").replace("~0", "~");
        let new = op.get("value").cloned().unwrap_or(Value::Null);
        match value.pointer_mut(parent) {
            Some(Value::Array(items)) if last == "-" => items.push(new),
            Some(Value::Array(items)) => match last.parse::<usize>() {
                Ok(index) if index <= items.len() => items.insert(index, new),
                _ => return Err(format!("`{path}`: no such index")),
            },
            Some(Value::Object(map)) => {
                map.insert(last, new);
            }
            _ => return Err(format!("`{path}`: its parent is not an object or array")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply_ok(value: &mut Value, patch: &[Value]) {
        assert_eq!(apply(value, patch), Ok(()));
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "app-0", "namespace": "default"},
            "spec": {
                "serviceAccountName": "app",
                "volumes": [{"name": "kube-api-access-x", "projected": {"sources": []}}],
                "initContainers": [
                    {"name": "setup", "image": "busybox"},
                    {"name": "proxy", "image": "envoy", "restartPolicy": "Always",
                     "readinessProbe": {"tcpSocket": {"port": 15000}}}
                ],
                "containers": [
                    {"name": "app", "image": "app",
                     "env": [{"name": "LOG", "value": "debug"}],
                     "volumeMounts": [{"name": "kube-api-access-x", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]}
                ]
            }
        })
    }

    fn irsa_account() -> ServiceAccount {
        ServiceAccount {
            annotations: BTreeMap::from([(
                "eks.amazonaws.com/role-arn".to_owned(),
                "arn:aws:iam::111122223333:role/app".to_owned(),
            )]),
        }
    }

    fn run(
        pod: &Value,
        sa: Option<&ServiceAccount>,
        associated: bool,
        config: &Config,
    ) -> (Mutation, Value) {
        let mutation = mutate(pod, sa, associated, config, &mut |low, _| low);
        let mut out = pod.clone();
        apply_ok(&mut out, &mutation.patch);
        (mutation, out)
    }

    fn env(container: &Value) -> Vec<(String, String)> {
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["name"].as_str().unwrap().to_owned(),
                    v["value"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn pod_identity_as_eks_injects_it() {
        let config = Config {
            region: Some("us-west-2".into()),
            sts_regional_endpoints: true,
            ..Config::default()
        };
        let (mutation, out) = run(&pod(), None, true, &config);
        assert_eq!(mutation.mode, Some("pod-identity"));
        let volume = &out["spec"]["volumes"][0];
        assert_eq!(volume["name"], POD_IDENTITY_VOLUME);
        assert_eq!(
            volume["projected"]["sources"][0]["serviceAccountToken"],
            json!({"audience": "pods.eks.amazonaws.com", "expirationSeconds": 79_200, "path": "eks-pod-identity-token"})
        );
        assert_eq!(out["metadata"]["labels"][POD_IDENTITY_LABEL], "enabled");
        let app = &out["spec"]["containers"][0];
        assert_eq!(
            env(app),
            [
                ("LOG", "debug"),
                ("AWS_STS_REGIONAL_ENDPOINTS", "regional"),
                ("AWS_DEFAULT_REGION", "us-west-2"),
                ("AWS_REGION", "us-west-2"),
                (
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                    "http://169.254.170.23/v1/credentials"
                ),
                (
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                    "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token"
                ),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(
            app["volumeMounts"][1],
            json!({"name": POD_IDENTITY_VOLUME, "readOnly": true, "mountPath": POD_IDENTITY_MOUNT_PATH})
        );
        // The native sidecar keeps what podid does not know, and gets the identity too.
        let proxy = &out["spec"]["initContainers"][1];
        assert_eq!(proxy["restartPolicy"], "Always");
        assert!(proxy["readinessProbe"].is_object());
        assert!(
            env(proxy)
                .iter()
                .any(|(k, _)| k == "AWS_CONTAINER_CREDENTIALS_FULL_URI")
        );
        // A second mutation of the output is empty.
        assert_eq!(
            mutate(&out, None, true, &config, &mut |low, _| low).patch,
            Vec::<Value>::new()
        );
    }

    #[test]
    fn irsa_from_the_service_account_annotations() {
        let mut sa = irsa_account();
        sa.annotations.insert(
            "eks.amazonaws.com/audience".into(),
            "sts.podid.example".into(),
        );
        sa.annotations
            .insert("eks.amazonaws.com/token-expiration".into(), "3600".into());
        let (mutation, out) = run(&pod(), Some(&sa), false, &Config::default());
        assert_eq!(mutation.mode, Some("irsa"));
        assert_eq!(
            out["spec"]["volumes"][0],
            json!({"name": "aws-iam-token", "projected": {"sources": [{"serviceAccountToken":
                {"audience": "sts.podid.example", "expirationSeconds": 3600, "path": "token"}}]}})
        );
        let vars = env(&out["spec"]["containers"][0]);
        assert_eq!(
            vars[1],
            (
                "AWS_ROLE_ARN".to_owned(),
                "arn:aws:iam::111122223333:role/app".to_owned()
            )
        );
        assert_eq!(
            vars[2],
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE".to_owned(),
                "/var/run/secrets/eks.amazonaws.com/serviceaccount/token".to_owned()
            )
        );
        assert!(
            out["metadata"].get("labels").is_none(),
            "the label is Pod Identity's"
        );
        assert!(
            mutate(&out, Some(&sa), false, &Config::default(), &mut |l, _| l)
                .patch
                .is_empty()
        );
    }

    #[test]
    fn pod_identity_wins_over_irsa_and_nothing_without_either() {
        let (mutation, out) = run(&pod(), Some(&irsa_account()), true, &Config::default());
        assert_eq!(mutation.mode, Some("pod-identity"));
        assert!(
            !env(&out["spec"]["containers"][0])
                .iter()
                .any(|(k, _)| k == "AWS_ROLE_ARN")
        );
        let nothing = mutate(
            &pod(),
            Some(&ServiceAccount::default()),
            false,
            &Config::default(),
            &mut |l, _| l,
        );
        assert_eq!(nothing, Mutation::default());
    }

    #[test]
    fn existing_variables_are_kept_and_skipped_containers_untouched() {
        let mut pod = pod();
        pod["metadata"]["annotations"] =
            json!({"eks.amazonaws.com/skip-containers": "setup, proxy"});
        pod["spec"]["containers"][0]["env"] = json!([
            {"name": "AWS_REGION", "value": "eu-west-1"},
            {"name": "AWS_ROLE_ARN", "value": "arn:aws:iam::111122223333:role/mine"}
        ]);
        let config = Config {
            region: Some("us-west-2".into()),
            ..Config::default()
        };
        let (_, out) = run(&pod, Some(&irsa_account()), false, &config);
        assert_eq!(
            env(&out["spec"]["containers"][0]),
            [
                ("AWS_REGION", "eu-west-1"),
                ("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/mine")
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
            "nothing overwritten, and a container with its own identity keeps it"
        );
        assert_eq!(out["spec"]["initContainers"], pod["spec"]["initContainers"]);
    }

    #[test]
    fn lifetimes_windows_fs_group_and_foreign_volumes() {
        let mut windows = pod();
        windows["metadata"]["annotations"] = json!({"eks.amazonaws.com/token-expiration": "60"});
        windows["spec"]["nodeSelector"] = json!({"kubernetes.io/os": "windows"});
        let config = Config {
            fs_group: Some(65_534),
            ..Config::default()
        };
        let (_, out) = run(&windows, Some(&irsa_account()), false, &config);
        assert_eq!(
            out["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            600
        );
        assert!(env(&out["spec"]["containers"][0]).contains(&(
            "AWS_WEB_IDENTITY_TOKEN_FILE".to_owned(),
            "C:\\var\\run\\secrets\\eks.amazonaws.com\\serviceaccount\\token".to_owned()
        )));
        assert_eq!(out["spec"]["securityContext"]["fsGroup"], 65_534);
        // A user's fsGroup is theirs.
        let mut own = windows.clone();
        own["spec"]["securityContext"] = json!({"fsGroup": 1000});
        let (_, out) = run(&own, Some(&irsa_account()), false, &config);
        assert_eq!(out["spec"]["securityContext"]["fsGroup"], 1000);
        // Jitter stays within EKS's range.
        let m = mutate(&pod(), None, true, &Config::default(), &mut |_, _| 5);
        assert_eq!(
            m.patch[0]["value"]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            79_200
        );
        // A volume of that name that is someone else's: no mutation, and why.
        let mut foreign = pod();
        foreign["spec"]["volumes"] =
            json!([{"name": "aws-iam-token", "hostPath": {"path": "/tmp"}}]);
        let m = mutate(
            &foreign,
            Some(&irsa_account()),
            false,
            &Config::default(),
            &mut |l, _| l,
        );
        assert!(m.patch.is_empty());
        assert!(m.skipped.unwrap().contains("`aws-iam-token`"));
    }

    #[test]
    fn a_pod_without_volumes_labels_or_env_gets_them_created() {
        let bare = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}});
        let (_, out) = run(&bare, None, true, &Config::default());
        assert_eq!(out["spec"]["volumes"].as_array().unwrap().len(), 1);
        assert_eq!(env(&out["spec"]["containers"][0]).len(), 2);
        assert_eq!(
            out["spec"]["containers"][0]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert!(
            mutate(&out, None, true, &Config::default(), &mut |l, _| l)
                .patch
                .is_empty()
        );
    }
}

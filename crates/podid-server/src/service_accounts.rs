//! podid's service-account API (an extension beside EKS, same rest-json framing): Kubernetes'
//! ServiceAccount objects of a cluster, for IRSA's annotations.
//!
//! - `POST /clusters/{c}/podid/service-accounts` `{"metadata": {"namespace", "name", "labels",
//!   "annotations"}}`: CreateServiceAccount;
//! - `GET /clusters/{c}/podid/service-accounts[?namespace=N]`: ListServiceAccounts
//!   (`{"kind": "ServiceAccountList", "items": [...]}`);
//! - `GET|POST|DELETE /clusters/{c}/podid/service-accounts/{namespace}/{name}`: Get, Update (a
//!   JSON merge patch of `metadata.labels` and `metadata.annotations`: `null` removes), Delete.

use std::collections::BTreeMap;

use podid_core::Caller;
use podid_core::eks::{Eks, MetadataChange, ServiceAccountName, ServiceAccountRecord};
use serde_json::{Map, Value, json};

use crate::errors::ApiError;
use crate::views::date;

/// What one call of the service-account API names.
pub(crate) struct Call<'a> {
    pub(crate) operation: &'a str,
    pub(crate) region: &'a str,
    pub(crate) cluster: &'a str,
    /// `namespace` and `name` from the path (Get, Update, Delete).
    pub(crate) path: Option<(&'a str, &'a str)>,
    pub(crate) namespace_filter: Option<&'a str>,
}

/// Runs a service-account operation.
pub(crate) async fn call(
    eks: Eks<'_>,
    caller: &Caller,
    call: Call<'_>,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let metadata = match body.get("metadata") {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(invalid("`metadata` must be an object")),
    };
    let (namespace, name) = match call.path {
        Some(pair) => pair,
        None => (
            text(&metadata, "namespace").unwrap_or("default"),
            text(&metadata, "name").unwrap_or_default(),
        ),
    };
    let sa = ServiceAccountName {
        region: call.region,
        cluster: call.cluster,
        namespace,
        name,
    };
    Ok(match call.operation {
        "CreateServiceAccount" => {
            if name.is_empty() {
                return Err(invalid("`metadata.name` is required"));
            }
            view(
                &eks.create_service_account(
                    caller,
                    sa,
                    strings(&metadata, "labels")?,
                    strings(&metadata, "annotations")?,
                )
                .await?,
            )
        }
        "GetServiceAccount" => view(&eks.describe_service_account(caller, sa).await?),
        "UpdateServiceAccount" => {
            let change = MetadataChange {
                labels: patch(&metadata, "labels")?,
                annotations: patch(&metadata, "annotations")?,
            };
            view(&eks.update_service_account(caller, sa, change).await?)
        }
        "DeleteServiceAccount" => view(&eks.delete_service_account(caller, sa).await?),
        _ => {
            let items = eks
                .list_service_accounts(caller, call.region, call.cluster, call.namespace_filter)
                .await?;
            json!({"apiVersion": "v1", "kind": "ServiceAccountList",
                   "items": items.iter().map(view).collect::<Vec<_>>()})
        }
    })
}

/// A service account as Kubernetes shows it.
fn view(sa: &ServiceAccountRecord) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": sa.name,
            "namespace": sa.namespace,
            "uid": sa.uid,
            "creationTimestamp": date(sa.created),
            "labels": sa.labels,
            "annotations": sa.annotations,
        },
    })
}

fn text<'a>(map: &'a Map<String, Value>, member: &str) -> Option<&'a str> {
    map.get(member).and_then(Value::as_str)
}

fn invalid(why: &str) -> ApiError {
    ApiError::sender(400, "InvalidParameterException", format!("{why}."))
}

/// `metadata.labels` or `metadata.annotations`: an object of strings.
fn strings(
    metadata: &Map<String, Value>,
    member: &str,
) -> Result<BTreeMap<String, String>, ApiError> {
    patch(metadata, member)?
        .into_iter()
        .map(|(k, v)| {
            v.map(|v| (k.clone(), v))
                .ok_or_else(|| invalid(&format!("`metadata.{member}.{k}` must be a string")))
        })
        .collect()
}

/// A merge patch of `metadata.labels` or `metadata.annotations`: strings set, `null` removes.
fn patch(
    metadata: &Map<String, Value>,
    member: &str,
) -> Result<BTreeMap<String, Option<String>>, ApiError> {
    let Some(value) = metadata.get(member) else {
        return Ok(BTreeMap::new());
    };
    let Value::Object(map) = value else {
        return Err(invalid(&format!(
            "`metadata.{member}` must be an object of strings"
        )));
    };
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), Some(s.clone()))),
            Value::Null => Ok((k.clone(), None)),
            _ => Err(invalid(&format!(
                "`metadata.{member}.{k}` must be a string (or null to remove it)"
            ))),
        })
        .collect()
}

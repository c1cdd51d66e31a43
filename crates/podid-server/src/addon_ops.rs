//! EKS add-ons over rest-json, with the EKS model's paths and shapes:
//! `/clusters/{name}/addons[/{addonName}[/update]]`, `/addons/supported-versions` and
//! `/addons/configuration-schemas`.

use std::collections::BTreeMap;

use podid_core::Caller;
use podid_core::eks::catalogue::{AddonSpec, CLUSTER_VERSIONS};
use podid_core::eks::{
    AddonAssociation, AddonRecord, AddonUpdate, CreateAddon, Eks, ListAddonVersions, UpdateAddon,
};
use serde_json::{Map, Value, json};

use crate::eks_ops::{epoch, max_results, missing, opt, string, tags};
use crate::errors::ApiError;

/// The query parameters of these operations that are lists (DescribeAddonVersions' filters).
pub(crate) const LIST_PARAMS: &[&str] = &["types", "publishers", "owners"];

/// What one add-on call names.
pub(crate) struct Call<'a> {
    pub(crate) operation: &'a str,
    pub(crate) region: &'a str,
    pub(crate) cluster: &'a str,
    /// The add-on's name from the path (Describe, Update, Delete).
    pub(crate) addon: &'a str,
    pub(crate) params: &'a BTreeMap<String, String>,
    pub(crate) lists: &'a BTreeMap<String, Vec<String>>,
}

/// Runs an add-on operation.
pub(crate) async fn call(
    eks: Eks<'_>,
    caller: &Caller,
    call: Call<'_>,
    body: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let Call {
        region,
        cluster,
        addon,
        params,
        ..
    } = call;
    Ok(match call.operation {
        "CreateAddon" => {
            let name = string(body, "addonName");
            if name.is_empty() {
                return Err(missing("addonName"));
            }
            let input = CreateAddon {
                name,
                version: opt(body, "addonVersion"),
                service_account_role_arn: opt(body, "serviceAccountRoleArn"),
                resolve_conflicts: opt(body, "resolveConflicts"),
                configuration_values: opt(body, "configurationValues"),
                tags: tags(body)?,
                pod_identity_associations: associations(body)?.unwrap_or_default(),
                namespace: body
                    .get("namespaceConfig")
                    .and_then(|c| c.get("namespace"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            };
            // EKS answers CREATING; podid has nothing to install, so DescribeAddon says ACTIVE at once.
            json!({"addon": addon_view(&eks.create_addon(caller, region, cluster, input).await?, "CREATING")})
        }
        "ListAddons" => {
            let page = eks
                .list_addons(
                    caller,
                    region,
                    cluster,
                    max_results(params)?,
                    params.get("nextToken").map(String::as_str),
                )
                .await?;
            let mut out = json!({"addons": page.items});
            if let (Some(token), Some(map)) = (page.next_token, out.as_object_mut()) {
                map.insert("nextToken".into(), token.into());
            }
            out
        }
        "DescribeAddon" => {
            json!({"addon": addon_view(&eks.describe_addon(caller, region, cluster, addon).await?, "ACTIVE")})
        }
        "UpdateAddon" => {
            let input = UpdateAddon {
                version: opt(body, "addonVersion"),
                service_account_role_arn: opt(body, "serviceAccountRoleArn"),
                resolve_conflicts: opt(body, "resolveConflicts"),
                configuration_values: opt(body, "configurationValues"),
                pod_identity_associations: associations(body)?,
            };
            let (_, update) = eks
                .update_addon(caller, region, cluster, addon, input)
                .await?;
            json!({"update": update_view(&update)})
        }
        "DeleteAddon" => {
            let preserve = params.get("preserve").is_some_and(|p| p == "true");
            json!({"addon": addon_view(&eks.delete_addon(caller, region, cluster, addon, preserve).await?, "DELETING")})
        }
        "DescribeAddonVersions" => {
            let list = |name: &str| call.lists.get(name).cloned().unwrap_or_default();
            let input = ListAddonVersions {
                name: params.get("addonName").cloned(),
                kubernetes_version: params.get("kubernetesVersion").cloned(),
                types: list("types"),
                publishers: list("publishers"),
                owners: list("owners"),
                max_results: max_results(params)?,
                next_token: params.get("nextToken").cloned(),
            };
            let page = eks.addon_versions(caller, &input)?;
            let addons: Vec<Value> = page
                .items
                .iter()
                .map(|spec| addon_info(spec, input.kubernetes_version.as_deref()))
                .collect();
            let mut out = json!({"addons": addons});
            if let (Some(token), Some(map)) = (page.next_token, out.as_object_mut()) {
                map.insert("nextToken".into(), token.into());
            }
            out
        }
        "DescribeAddonConfiguration" => {
            let name = params.get("addonName").cloned().unwrap_or_default();
            let version = params.get("addonVersion").cloned().unwrap_or_default();
            if name.is_empty() {
                return Err(missing("addonName"));
            }
            if version.is_empty() {
                return Err(missing("addonVersion"));
            }
            let spec = eks.addon_configuration(caller, &name, &version)?;
            let pod_identity: Vec<Value> = spec
                .pod_identity
                .iter()
                .map(|(sa, policies)| {
                    json!({"serviceAccount": sa, "recommendedManagedPolicies": policies})
                })
                .collect();
            json!({
                "addonName": name,
                "addonVersion": version,
                "configurationSchema": CONFIGURATION_SCHEMA,
                "podIdentityConfiguration": pod_identity,
            })
        }
        other => {
            return Err(ApiError::sender(
                404,
                "UnknownOperationException",
                format!("No EKS add-on operation is {other}."),
            ));
        }
    })
}

/// podid keeps `configurationValues` as given and applies none: any JSON object is accepted.
const CONFIGURATION_SCHEMA: &str =
    r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object"}"#;

/// `podIdentityAssociations`, if the body has the member.
fn associations(body: &Map<String, Value>) -> Result<Option<Vec<AddonAssociation>>, ApiError> {
    let Some(value) = body.get("podIdentityAssociations") else {
        return Ok(None);
    };
    let Value::Array(list) = value else {
        return Err(ApiError::sender(
            400,
            "InvalidParameterException",
            "The parameter podIdentityAssociations must be a list of {serviceAccount, roleArn}.",
        ));
    };
    let mut out = Vec::with_capacity(list.len());
    for item in list {
        let Value::Object(member) = item else {
            return Err(ApiError::sender(
                400,
                "InvalidParameterException",
                "Each of podIdentityAssociations must be an object {serviceAccount, roleArn}.",
            ));
        };
        let service_account = string(member, "serviceAccount");
        let role_arn = string(member, "roleArn");
        if service_account.is_empty() {
            return Err(missing("podIdentityAssociations.serviceAccount"));
        }
        if role_arn.is_empty() {
            return Err(missing("podIdentityAssociations.roleArn"));
        }
        out.push(AddonAssociation {
            service_account,
            role_arn,
        });
    }
    Ok(Some(out))
}

/// The `Addon` shape.
fn addon_view(a: &AddonRecord, status: &str) -> Value {
    let mut out = Map::new();
    out.insert("addonName".into(), a.name.clone().into());
    out.insert("clusterName".into(), a.cluster.clone().into());
    out.insert("status".into(), status.into());
    out.insert("addonVersion".into(), a.version.clone().into());
    out.insert("health".into(), json!({"issues": []}));
    out.insert("addonArn".into(), a.arn.clone().into());
    out.insert("createdAt".into(), epoch(a.created));
    out.insert("modifiedAt".into(), epoch(a.modified));
    if let Some(role) = &a.service_account_role_arn {
        out.insert("serviceAccountRoleArn".into(), role.clone().into());
    }
    out.insert("tags".into(), json!(a.tags));
    if let Some(values) = &a.configuration_values {
        out.insert("configurationValues".into(), values.clone().into());
    }
    out.insert("podIdentityAssociations".into(), json!(a.associations));
    out.insert("namespaceConfig".into(), json!({"namespace": a.namespace}));
    Value::Object(out)
}

/// The `Update` shape of an `AddonUpdate`.
fn update_view(u: &AddonUpdate) -> Value {
    let params: Vec<Value> = u
        .params
        .iter()
        .map(|(kind, value)| json!({"type": kind, "value": value}))
        .collect();
    json!({
        "id": u.id,
        "status": "Successful",
        "type": "AddonUpdate",
        "params": params,
        "createdAt": epoch(u.created),
        "errors": [],
    })
}

/// The `AddonInfo` shape: every version, each compatible with the cluster versions (or the one
/// asked for), the first being the default.
fn addon_info(spec: &AddonSpec, kubernetes_version: Option<&str>) -> Value {
    let cluster_versions: Vec<&str> = CLUSTER_VERSIONS
        .iter()
        .copied()
        .filter(|v| kubernetes_version.is_none_or(|k| k == *v))
        .collect();
    let versions: Vec<Value> = spec
        .versions
        .iter()
        .enumerate()
        .map(|(i, version)| {
            let compatibilities: Vec<Value> = cluster_versions
                .iter()
                .map(|cv| {
                    json!({"clusterVersion": cv, "platformVersions": ["*"], "defaultVersion": i == 0})
                })
                .collect();
            json!({
                "addonVersion": version,
                "architecture": ["amd64", "arm64"],
                "computeTypes": ["ec2"],
                "compatibilities": compatibilities,
                "requiresConfiguration": false,
                "requiresIamPermissions": !spec.pod_identity.is_empty(),
            })
        })
        .collect();
    json!({
        "addonName": spec.name,
        "type": spec.kind,
        "addonVersions": versions,
        "publisher": spec.publisher,
        "owner": spec.owner,
        "defaultNamespace": spec.namespace,
    })
}

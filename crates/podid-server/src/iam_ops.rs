//! Every IAM operation: wire input → domain call → wire output.

use podid_core::{
    Caller, CreateOidcProvider, CreatePolicy, CreateRole, CreateUser, Entity, ListPolicies, Page,
    PageRequest, SimulateInput, Tag,
};
use podid_protocol::QueryRequest;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::errors::ApiError;
use crate::views::{self, RoleView};

/// Runs the operation of `request` for `caller`; the output is a JSON value of the operation's
/// output shape.
pub(crate) async fn call(
    state: &AppState,
    caller: &Caller,
    request: &QueryRequest,
) -> Result<Value, ApiError> {
    let iam = state.core.iam();
    let input = &request.input;
    let name = |member: &str| string(input, member);
    Ok(match request.operation.name.as_str() {
        // Roles.
        "CreateRole" => {
            let role = iam
                .create_role(
                    caller,
                    CreateRole {
                        name: name("RoleName"),
                        path: opt(input, "Path"),
                        trust_policy: name("AssumeRolePolicyDocument"),
                        description: opt(input, "Description"),
                        max_session_duration: int(input, "MaxSessionDuration"),
                        permissions_boundary: opt(input, "PermissionsBoundary"),
                        tags: tag_list(input),
                    },
                )
                .await?;
            json!({"Role": views::role(&role, RoleView::Create)})
        }
        "GetRole" => {
            json!({"Role": views::role(&iam.get_role(caller, &name("RoleName")).await?, RoleView::Get)})
        }
        "UpdateAssumeRolePolicy" => {
            iam.update_assume_role_policy(caller, &name("RoleName"), name("PolicyDocument"))
                .await?;
            json!({})
        }
        "UpdateRole" => {
            iam.update_role(
                caller,
                &name("RoleName"),
                opt(input, "Description"),
                int(input, "MaxSessionDuration"),
            )
            .await?;
            json!({})
        }
        "DeleteRole" => {
            iam.delete_role(caller, &name("RoleName")).await?;
            json!({})
        }
        "ListRoles" => {
            let page = iam
                .list_roles(caller, opt(input, "PathPrefix").as_deref(), &page(input))
                .await?;
            paged(page, "Roles", |r| views::role(&r, RoleView::List))
        }
        "PutRolePermissionsBoundary" => {
            iam.put_role_permissions_boundary(
                caller,
                &name("RoleName"),
                &name("PermissionsBoundary"),
            )
            .await?;
            json!({})
        }
        "DeleteRolePermissionsBoundary" => {
            iam.delete_role_permissions_boundary(caller, &name("RoleName"))
                .await?;
            json!({})
        }
        "TagRole" => {
            iam.tag_role(caller, &name("RoleName"), tag_list(input))
                .await?;
            json!({})
        }
        "UntagRole" => {
            iam.untag_role(caller, &name("RoleName"), &list(input, "TagKeys"))
                .await?;
            json!({})
        }
        "ListRoleTags" => {
            let page = iam
                .list_role_tags(caller, &name("RoleName"), &page(input))
                .await?;
            paged(page, "Tags", |t| json!({"Key": t.key, "Value": t.value}))
        }
        // Inline and attached policies of roles and users.
        "PutRolePolicy" | "PutUserPolicy" => {
            let (entity, holder) = entity_of(request, input);
            iam.put_entity_policy(
                caller,
                entity,
                &holder,
                &name("PolicyName"),
                name("PolicyDocument"),
            )
            .await?;
            json!({})
        }
        "GetRolePolicy" | "GetUserPolicy" => {
            let (entity, holder) = entity_of(request, input);
            let policy_name = name("PolicyName");
            let document = iam
                .get_entity_policy(caller, entity, &holder, &policy_name)
                .await?;
            let holder_member = if entity == Entity::Role {
                "RoleName"
            } else {
                "UserName"
            };
            let mut out = Map::new();
            out.insert(holder_member.into(), json!(holder));
            out.insert("PolicyName".into(), json!(policy_name));
            out.insert("PolicyDocument".into(), json!(views::encoded(&document)));
            Value::Object(out)
        }
        "DeleteRolePolicy" | "DeleteUserPolicy" => {
            let (entity, holder) = entity_of(request, input);
            iam.delete_entity_policy(caller, entity, &holder, &name("PolicyName"))
                .await?;
            json!({})
        }
        "ListRolePolicies" | "ListUserPolicies" => {
            let (entity, holder) = entity_of(request, input);
            let page = iam
                .list_entity_policies(caller, entity, &holder, &page(input))
                .await?;
            paged(page, "PolicyNames", |n| json!(n))
        }
        "AttachRolePolicy" | "AttachUserPolicy" => {
            let (entity, holder) = entity_of(request, input);
            iam.attach_entity_policy(caller, entity, &holder, &name("PolicyArn"))
                .await?;
            json!({})
        }
        "DetachRolePolicy" | "DetachUserPolicy" => {
            let (entity, holder) = entity_of(request, input);
            iam.detach_entity_policy(caller, entity, &holder, &name("PolicyArn"))
                .await?;
            json!({})
        }
        "ListAttachedRolePolicies" | "ListAttachedUserPolicies" => {
            let (entity, holder) = entity_of(request, input);
            let page = iam
                .list_attached_entity_policies(
                    caller,
                    entity,
                    &holder,
                    opt(input, "PathPrefix").as_deref(),
                    &page(input),
                )
                .await?;
            paged(
                page,
                "AttachedPolicies",
                |p| json!({"PolicyName": p.name, "PolicyArn": p.arn}),
            )
        }
        // Managed policies.
        "CreatePolicy" => {
            let policy = iam
                .create_policy(
                    caller,
                    CreatePolicy {
                        name: name("PolicyName"),
                        path: opt(input, "Path"),
                        document: name("PolicyDocument"),
                        description: opt(input, "Description"),
                        tags: tag_list(input),
                    },
                )
                .await?;
            let mut shown = views::policy(&policy, true);
            if policy.tags.is_empty()
                && let Some(map) = shown.as_object_mut()
            {
                map.remove("Tags");
            }
            json!({"Policy": shown})
        }
        "GetPolicy" => {
            json!({"Policy": views::policy(&iam.get_policy(caller, &name("PolicyArn")).await?, true)})
        }
        "DeletePolicy" => {
            iam.delete_policy(caller, &name("PolicyArn")).await?;
            json!({})
        }
        "ListPolicies" => {
            let page = iam
                .list_policies(
                    caller,
                    &ListPolicies {
                        scope: opt(input, "Scope"),
                        only_attached: boolean(input, "OnlyAttached"),
                        path_prefix: opt(input, "PathPrefix"),
                        usage_filter: opt(input, "PolicyUsageFilter"),
                        page: page(input),
                    },
                )
                .await?;
            paged(page, "Policies", |p| views::policy(&p, false))
        }
        "GetPolicyVersion" => {
            let (version, is_default) = iam
                .get_policy_version(caller, &name("PolicyArn"), &name("VersionId"))
                .await?;
            json!({"PolicyVersion": views::policy_version(&version, is_default, true)})
        }
        "CreatePolicyVersion" => {
            let version = iam
                .create_policy_version(
                    caller,
                    &name("PolicyArn"),
                    name("PolicyDocument"),
                    boolean(input, "SetAsDefault"),
                )
                .await?;
            let is_default = boolean(input, "SetAsDefault");
            json!({"PolicyVersion": views::policy_version(&version, is_default, false)})
        }
        "DeletePolicyVersion" => {
            iam.delete_policy_version(caller, &name("PolicyArn"), &name("VersionId"))
                .await?;
            json!({})
        }
        "SetDefaultPolicyVersion" => {
            iam.set_default_policy_version(caller, &name("PolicyArn"), &name("VersionId"))
                .await?;
            json!({})
        }
        "ListPolicyVersions" => {
            let page = iam
                .list_policy_versions(caller, &name("PolicyArn"), &page(input))
                .await?;
            paged(page, "Versions", |(v, d)| {
                views::policy_version(&v, d, false)
            })
        }
        // OIDC providers.
        "CreateOpenIDConnectProvider" => {
            let provider = iam
                .create_oidc_provider(
                    caller,
                    CreateOidcProvider {
                        url: name("Url"),
                        client_ids: list(input, "ClientIDList"),
                        thumbprints: list(input, "ThumbprintList"),
                        tags: tag_list(input),
                    },
                )
                .await?;
            let mut out = Map::new();
            out.insert("OpenIDConnectProviderArn".into(), json!(provider.arn));
            if !provider.tags.is_empty() {
                out.insert("Tags".into(), views::tags(&provider.tags));
            }
            Value::Object(out)
        }
        "GetOpenIDConnectProvider" => views::oidc(
            &iam.get_oidc_provider(caller, &name("OpenIDConnectProviderArn"))
                .await?,
        ),
        "DeleteOpenIDConnectProvider" => {
            iam.delete_oidc_provider(caller, &name("OpenIDConnectProviderArn"))
                .await?;
            json!({})
        }
        "ListOpenIDConnectProviders" => {
            let arns = iam.list_oidc_providers(caller).await?;
            json!({"OpenIDConnectProviderList": arns.iter().map(|a| json!({"Arn": a})).collect::<Vec<_>>()})
        }
        // Users and access keys.
        "CreateUser" => {
            let user = iam
                .create_user(
                    caller,
                    CreateUser {
                        name: name("UserName"),
                        path: opt(input, "Path"),
                        permissions_boundary: opt(input, "PermissionsBoundary"),
                        tags: tag_list(input),
                    },
                )
                .await?;
            json!({"User": views::user(&user)})
        }
        "GetUser" => {
            json!({"User": views::user(&iam.get_user(caller, opt(input, "UserName").as_deref()).await?)})
        }
        "DeleteUser" => {
            iam.delete_user(caller, &name("UserName")).await?;
            json!({})
        }
        "ListUsers" => {
            let page = iam
                .list_users(caller, opt(input, "PathPrefix").as_deref(), &page(input))
                .await?;
            paged(page, "Users", |u| views::user(&u))
        }
        "CreateAccessKey" => {
            let key = iam
                .create_access_key(caller, opt(input, "UserName").as_deref())
                .await?;
            json!({"AccessKey": views::access_key(&key.record, Some(key.secret.expose()))})
        }
        "DeleteAccessKey" => {
            iam.delete_access_key(
                caller,
                opt(input, "UserName").as_deref(),
                &name("AccessKeyId"),
            )
            .await?;
            json!({})
        }
        "ListAccessKeys" => {
            let page = iam
                .list_access_keys(caller, opt(input, "UserName").as_deref(), &page(input))
                .await?;
            paged(page, "AccessKeyMetadata", |k| views::access_key(&k, None))
        }
        // The simulator.
        "SimulatePrincipalPolicy" | "SimulateCustomPolicy" => {
            let results = iam
                .simulate(
                    caller,
                    SimulateInput {
                        source_arn: opt(input, "PolicySourceArn"),
                        policies: list(input, "PolicyInputList"),
                        boundaries: list(input, "PermissionsBoundaryPolicyInputList"),
                        actions: list(input, "ActionNames"),
                        resources: list(input, "ResourceArns"),
                        resource_policy: opt(input, "ResourcePolicy"),
                        resource_owner: opt(input, "ResourceOwner"),
                        caller_arn: opt(input, "CallerArn"),
                        context: context_entries(input),
                    },
                )
                .await?;
            let page = paged_list(results, &page(input));
            paged(page, "EvaluationResults", |r| {
                json!({
                    "EvalActionName": r.action,
                    "EvalResourceName": r.resource,
                    "EvalDecision": r.decision,
                    "MatchedStatements": r.matched.iter().map(|m| json!({
                        "SourcePolicyId": m.source_policy_id,
                        "SourcePolicyType": m.source_policy_type,
                        "StartPosition": {"Line": m.start.0, "Column": m.start.1},
                        "EndPosition": {"Line": m.end.0, "Column": m.end.1},
                    })).collect::<Vec<_>>(),
                    "MissingContextValues": [],
                })
            })
        }
        other => {
            return Err(ApiError::sender(
                400,
                "InvalidAction",
                format!("Could not find operation {other} for version 2010-05-08"),
            ));
        }
    })
}

fn entity_of(request: &QueryRequest, input: &Value) -> (Entity, String) {
    if request.operation.name.contains("Role") {
        (Entity::Role, string(input, "RoleName"))
    } else {
        (Entity::User, string(input, "UserName"))
    }
}

/// A required string member (the model's validation has checked it is there).
pub(crate) fn string(input: &Value, member: &str) -> String {
    opt(input, member).unwrap_or_default()
}

pub(crate) fn opt(input: &Value, member: &str) -> Option<String> {
    input.get(member).and_then(Value::as_str).map(str::to_owned)
}

pub(crate) fn int(input: &Value, member: &str) -> Option<u32> {
    input
        .get(member)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
}

fn boolean(input: &Value, member: &str) -> bool {
    input.get(member).and_then(Value::as_bool).unwrap_or(false)
}

pub(crate) fn list(input: &Value, member: &str) -> Vec<String> {
    input
        .get(member)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn tag_list(input: &Value) -> Vec<Tag> {
    input
        .get("Tags")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|t| Tag {
                    key: t
                        .get("Key")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    value: t
                        .get("Value")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn context_entries(input: &Value) -> Vec<(String, Vec<String>, bool)> {
    input
        .get("ContextEntries")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    let key = e
                        .get("ContextKeyName")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let values = e
                        .get("ContextKeyValues")
                        .and_then(Value::as_array)
                        .map(|v| {
                            v.iter()
                                .filter_map(|x| x.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    let list = e
                        .get("ContextKeyType")
                        .and_then(Value::as_str)
                        .is_some_and(|t| t.ends_with("List"));
                    (key, values, list)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn page(input: &Value) -> PageRequest {
    PageRequest {
        marker: opt(input, "Marker"),
        max_items: int(input, "MaxItems"),
    }
}

fn paged_list<T: Clone>(items: Vec<T>, page: &PageRequest) -> Page<T> {
    let start = page
        .marker
        .as_deref()
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(0);
    let limit = usize::try_from(page.max_items.unwrap_or(100).clamp(1, 1000)).unwrap_or(100);
    let slice: Vec<T> = items.iter().skip(start).take(limit).cloned().collect();
    let next = start + slice.len();
    Page {
        items: slice,
        marker: (next < items.len()).then(|| next.to_string()),
    }
}

/// A page as IAM lists: the items under `member`, `IsTruncated`, and `Marker` when truncated.
fn paged<T>(page: Page<T>, member: &str, show: impl Fn(T) -> Value) -> Value {
    let mut out = Map::new();
    out.insert(
        member.into(),
        Value::Array(page.items.into_iter().map(show).collect()),
    );
    out.insert("IsTruncated".into(), json!(page.marker.is_some()));
    if let Some(marker) = page.marker {
        out.insert("Marker".into(), json!(marker));
    }
    Value::Object(out)
}

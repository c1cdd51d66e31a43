//! The IAM roles eksctl makes with CloudFormation, made here with IAM's API: the trust, the
//! inline policy, managed policies (given and well-known), the boundary and the tags, with an
//! ownership tag so that `update` and `delete` know the roles they made. A role half made is
//! removed again.

use std::collections::BTreeMap;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::config::WellKnownPolicies;
use crate::aws_client::{ApiFailure, Client, xml_all, xml_first};

/// The tag eksctl puts on what it makes for a cluster.
pub(crate) const CLUSTER_TAG: &str = "alpha.eksctl.io/cluster-name";
/// The same, in eksctl's older spelling (it puts both).
pub(crate) const CLUSTER_TAG_OLD: &str = "eksctl.cluster.k8s.io/v1alpha1/cluster-name";
/// The tag of a role made for a Pod Identity association: `NAMESPACE/SERVICE_ACCOUNT`.
pub(crate) const ASSOCIATION_TAG: &str = "alpha.eksctl.io/podidentityassociation-name";

/// EKS Pod Identity's trust statement, as eksctl writes it.
pub(crate) fn pod_identity_trust_statement() -> Value {
    json!({
        "Effect": "Allow",
        "Principal": {"Service": "pods.eks.amazonaws.com"},
        "Action": ["sts:AssumeRole", "sts:TagSession"],
    })
}

/// A role to make.
#[derive(Clone, Debug, Default)]
pub(crate) struct RoleSpec {
    /// The name asked for; otherwise one is generated from `stack`.
    pub(crate) name: Option<String>,
    /// eksctl's stack name for the role (`eksctl-CLUSTER-podidentityrole-NS-SA`): the prefix of
    /// generated role names and of inline policy names.
    pub(crate) stack: String,
    /// The trust policy.
    pub(crate) trust: Value,
    /// The inline policy (`permissionPolicy`) and its name (default `Policy1`).
    pub(crate) inline: Option<(String, Value)>,
    /// Managed policy ARNs.
    pub(crate) managed: Vec<String>,
    /// The well-known policy families.
    pub(crate) well_known: WellKnownPolicies,
    /// A role the role may assume (cross-account `targetRoleARN`).
    pub(crate) assume: Option<String>,
    /// The permissions boundary.
    pub(crate) boundary: Option<String>,
    /// Tags (ownership included).
    pub(crate) tags: BTreeMap<String, String>,
}

impl RoleSpec {
    /// Every inline policy, by its name: the permission policy, the well-known families', and
    /// the right to assume the target role.
    fn inline_policies(&self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        if let Some((name, document)) = &self.inline {
            out.push((format!("{}-{name}", self.stack), document.clone()));
        }
        for (name, statements) in well_known_inline(self.well_known) {
            out.push((
                format!("{}-{name}", self.stack),
                json!({"Version": "2012-10-17", "Statement": statements}),
            ));
        }
        if let Some(target) = &self.assume {
            out.push((
                format!("{}-PolicyAssumeTargetRole", self.stack),
                json!({"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow",
                    "Action": ["sts:AssumeRole", "sts:TagSession"],
                    "Resource": target,
                }]}),
            ));
        }
        out
    }

    /// Every managed policy: the given ones, then the well-known families'.
    fn managed_policies(&self) -> Vec<String> {
        let mut out = self.managed.clone();
        out.extend(well_known_managed(self.well_known));
        out
    }
}

/// Makes the role; its ARN. If a step fails, what was made is removed, and the error says
/// which step failed.
pub(crate) fn create_role(iam: &Client, spec: &RoleSpec) -> anyhow::Result<String> {
    let name = spec
        .name
        .clone()
        .unwrap_or_else(|| generated_name(&spec.stack));
    let trust = spec.trust.to_string();
    let mut params: Vec<(String, String)> = vec![
        ("Action".into(), "CreateRole".into()),
        ("Version".into(), "2010-05-08".into()),
        ("RoleName".into(), name.clone()),
        ("AssumeRolePolicyDocument".into(), trust),
    ];
    if let Some(boundary) = &spec.boundary {
        params.push(("PermissionsBoundary".into(), boundary.clone()));
    }
    for (i, (key, value)) in spec.tags.iter().enumerate() {
        params.push((format!("Tags.member.{}.Key", i + 1), key.clone()));
        params.push((format!("Tags.member.{}.Value", i + 1), value.clone()));
    }
    let created = call(iam, &params).with_context(|| format!("creating IAM role {name:?}"))?;
    let arn = xml_first(&created, "Arn").context("CreateRole answered without an Arn")?;
    let finish = || -> anyhow::Result<()> {
        for (policy, document) in spec.inline_policies() {
            call(
                iam,
                &[
                    ("Action".into(), "PutRolePolicy".into()),
                    ("Version".into(), "2010-05-08".into()),
                    ("RoleName".into(), name.clone()),
                    ("PolicyName".into(), policy.clone()),
                    ("PolicyDocument".into(), document.to_string()),
                ],
            )
            .with_context(|| format!("putting inline policy {policy:?} on role {name:?}"))?;
        }
        for policy in spec.managed_policies() {
            call(
                iam,
                &[
                    ("Action".into(), "AttachRolePolicy".into()),
                    ("Version".into(), "2010-05-08".into()),
                    ("RoleName".into(), name.clone()),
                    ("PolicyArn".into(), policy.clone()),
                ],
            )
            .with_context(|| format!("attaching policy {policy:?} to role {name:?}"))?;
        }
        Ok(())
    };
    if let Err(e) = finish() {
        if let Err(undo) = delete_role(iam, &name) {
            return Err(e.context(format!(
                "and role {name:?} could not be removed again ({undo:#}): delete it by hand"
            )));
        }
        return Err(e);
    }
    Ok(arn)
}

/// Makes an existing role's policies those of `spec`: inline policies put (and others
/// removed), managed policies attached (and others detached), the boundary set.
pub(crate) fn replace_policies(iam: &Client, name: &str, spec: &RoleSpec) -> anyhow::Result<()> {
    let wanted_inline = spec.inline_policies();
    let listed = call(iam, &role_params("ListRolePolicies", name))?;
    for policy in xml_all(&listed, "member") {
        if !wanted_inline.iter().any(|(n, _)| *n == policy) {
            let mut params = role_params("DeleteRolePolicy", name);
            params.push(("PolicyName".into(), policy));
            call(iam, &params)?;
        }
    }
    for (policy, document) in wanted_inline {
        let mut params = role_params("PutRolePolicy", name);
        params.push(("PolicyName".into(), policy));
        params.push(("PolicyDocument".into(), document.to_string()));
        call(iam, &params)?;
    }
    let wanted_managed = spec.managed_policies();
    let attached = xml_all(
        &call(iam, &role_params("ListAttachedRolePolicies", name))?,
        "PolicyArn",
    );
    for policy in &attached {
        if !wanted_managed.contains(policy) {
            let mut params = role_params("DetachRolePolicy", name);
            params.push(("PolicyArn".into(), policy.clone()));
            call(iam, &params)?;
        }
    }
    for policy in wanted_managed {
        if !attached.contains(&policy) {
            let mut params = role_params("AttachRolePolicy", name);
            params.push(("PolicyArn".into(), policy));
            call(iam, &params)?;
        }
    }
    if let Some(boundary) = &spec.boundary {
        let mut params = role_params("PutRolePermissionsBoundary", name);
        params.push(("PermissionsBoundary".into(), boundary.clone()));
        call(iam, &params)?;
    }
    Ok(())
}

/// Removes a role: its inline and attached policies, then the role. A role already gone is
/// fine.
pub(crate) fn delete_role(iam: &Client, name: &str) -> anyhow::Result<()> {
    let listed = match call(iam, &role_params("ListRolePolicies", name)) {
        Ok(text) => text,
        Err(e) if is_code(&e, "NoSuchEntity") => return Ok(()),
        Err(e) => return Err(e),
    };
    for policy in xml_all(&listed, "member") {
        let mut params = role_params("DeleteRolePolicy", name);
        params.push(("PolicyName".into(), policy));
        call(iam, &params)?;
    }
    let attached = call(iam, &role_params("ListAttachedRolePolicies", name))?;
    for policy in xml_all(&attached, "PolicyArn") {
        let mut params = role_params("DetachRolePolicy", name);
        params.push(("PolicyArn".into(), policy));
        call(iam, &params)?;
    }
    match call(iam, &role_params("DeleteRole", name)) {
        Ok(_) => Ok(()),
        Err(e) if is_code(&e, "NoSuchEntity") => Ok(()),
        Err(e) => Err(e),
    }
}

/// A role's tags, or `None` if there is no such role.
pub(crate) fn role_tags(
    iam: &Client,
    name: &str,
) -> anyhow::Result<Option<BTreeMap<String, String>>> {
    let text = match call(iam, &role_params("ListRoleTags", name)) {
        Ok(text) => text,
        Err(e) if is_code(&e, "NoSuchEntity") => return Ok(None),
        Err(e) => return Err(e),
    };
    let keys = xml_all(&text, "Key");
    let values = xml_all(&text, "Value");
    Ok(Some(keys.into_iter().zip(values).collect()))
}

/// Whether podid or eksctl made `role_arn` for `cluster` and for what `tag` names (`key`,
/// `value`): its tags say so. A role that does not exist is not.
pub(crate) fn made_for(
    iam: &Client,
    role_arn: &str,
    cluster: &str,
    (key, value): (&str, &str),
) -> anyhow::Result<bool> {
    let Some(tags) = role_tags(iam, role_name_of(role_arn))? else {
        return Ok(false);
    };
    Ok(tags.get(CLUSTER_TAG).map(String::as_str) == Some(cluster)
        && tags.get(key).map(String::as_str) == Some(value))
}

/// A role's trust policy document, or `None` if there is no such role.
pub(crate) fn role_trust(iam: &Client, name: &str) -> anyhow::Result<Option<Value>> {
    let text = match call(iam, &role_params("GetRole", name)) {
        Ok(text) => text,
        Err(e) if is_code(&e, "NoSuchEntity") => return Ok(None),
        Err(e) => return Err(e),
    };
    let document = xml_first(&text, "AssumeRolePolicyDocument").unwrap_or_default();
    // IAM returns policy documents URL-encoded.
    let decoded = podid_sigv4::percent_decoded(&document);
    Ok(Some(
        serde_json::from_str(&decoded).context("the role's trust policy is not JSON")?,
    ))
}

/// Replaces a role's trust policy.
pub(crate) fn update_trust(iam: &Client, name: &str, trust: &Value) -> anyhow::Result<()> {
    let mut params = role_params("UpdateAssumeRolePolicy", name);
    params.push(("PolicyDocument".into(), trust.to_string()));
    call(iam, &params).map(|_| ())
}

/// Adds (or changes) tags of a role, and removes the keys of `remove`.
pub(crate) fn retag_role(
    iam: &Client,
    name: &str,
    add: &BTreeMap<String, String>,
    remove: &[&str],
) -> anyhow::Result<()> {
    if !add.is_empty() {
        let mut params = role_params("TagRole", name);
        for (i, (key, value)) in add.iter().enumerate() {
            params.push((format!("Tags.member.{}.Key", i + 1), key.clone()));
            params.push((format!("Tags.member.{}.Value", i + 1), value.clone()));
        }
        call(iam, &params)?;
    }
    if !remove.is_empty() {
        let mut params = role_params("UntagRole", name);
        for (i, key) in remove.iter().enumerate() {
            params.push((format!("TagKeys.member.{}", i + 1), (*key).to_owned()));
        }
        call(iam, &params)?;
    }
    Ok(())
}

/// The roles tagged for `cluster` (eksctl's cluster tag) created at or after `since`: what a
/// failed `create cluster` made.
pub(crate) fn roles_tagged_since(
    iam: &Client,
    cluster: &str,
    since: podid_types::Timestamp,
) -> anyhow::Result<Vec<String>> {
    let since = since.to_iso8601();
    let since = since.get(..19).unwrap_or(&since).to_owned();
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut params = vec![
            ("Action".to_owned(), "ListRoles".to_owned()),
            ("Version".to_owned(), "2010-05-08".to_owned()),
        ];
        if let Some(m) = &marker {
            params.push(("Marker".into(), m.clone()));
        }
        let text = call(iam, &params)?;
        for block in text.split("<member>").skip(1) {
            let (Some(name), Some(created)) =
                (xml_first(block, "RoleName"), xml_first(block, "CreateDate"))
            else {
                continue;
            };
            if created.get(..19).unwrap_or(&created) < since.as_str() {
                continue;
            }
            let tagged = role_tags(iam, &name)?
                .is_some_and(|tags| tags.get(CLUSTER_TAG).map(String::as_str) == Some(cluster));
            if tagged {
                out.push(name);
            }
        }
        match (
            xml_first(&text, "IsTruncated").as_deref(),
            xml_first(&text, "Marker"),
        ) {
            (Some("true"), Some(next)) => marker = Some(next),
            _ => return Ok(out),
        }
    }
}

/// Whether `e` is the server's refusal with `code`.
pub(crate) fn is_code(e: &anyhow::Error, code: &str) -> bool {
    e.downcast_ref::<ApiFailure>()
        .is_some_and(|f| f.code == code)
}

/// The role name of a role ARN.
pub(crate) fn role_name_of(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

fn role_params(action: &str, name: &str) -> Vec<(String, String)> {
    vec![
        ("Action".into(), action.into()),
        ("Version".into(), "2010-05-08".into()),
        ("RoleName".into(), name.into()),
    ]
}

fn call(iam: &Client, params: &[(String, String)]) -> anyhow::Result<String> {
    let borrowed: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    iam.query(&borrowed)
}

/// A role name like the ones CloudFormation generates for eksctl's stacks: the stack name
/// (cut to fit), `-Role1-` and 12 random characters, 64 characters at most. The random part
/// makes names of different service accounts distinct even where the stack names are not
/// (eksctl's `a-b`/`c` and `a`/`b-c` ambiguity).
fn generated_name(stack: &str) -> String {
    let suffix = random_suffix(12);
    let room = 64 - "-Role1-".len() - suffix.len();
    let prefix: String = stack.chars().take(room).collect();
    format!("{prefix}-Role1-{suffix}")
}

fn random_suffix(len: usize) -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    for i in 0..len {
        hasher.write_usize(i);
        let n = usize::try_from(hasher.finish() % 62).unwrap_or(0);
        out.push(char::from(ALPHABET.get(n).copied().unwrap_or(b'A')));
    }
    out
}

/// The managed policies of the well-known families that eksctl attaches by ARN.
pub(crate) fn well_known_managed(families: WellKnownPolicies) -> Vec<String> {
    let mut out = Vec::new();
    if families.image_builder {
        out.push("arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser".to_owned());
    }
    if families.ebs_csi_controller {
        out.push("arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy".to_owned());
    }
    out
}

/// The inline policies of the well-known families, by eksctl's resource names, with the
/// statements eksctl generates (`pkg/cfn/builder/statement.go`).
pub(crate) fn well_known_inline(families: WellKnownPolicies) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    if families.auto_scaler {
        out.push((
            "PolicyAutoScaling",
            json!([
                allow(
                    &[
                        "autoscaling:DescribeAutoScalingGroups",
                        "autoscaling:DescribeAutoScalingInstances",
                        "autoscaling:DescribeLaunchConfigurations",
                        "autoscaling:DescribeScalingActivities",
                        "autoscaling:DescribeTags",
                        "ec2:DescribeInstanceTypes",
                        "ec2:DescribeLaunchTemplateVersions"
                    ],
                    json!("*")
                ),
                allow(
                    &[
                        "autoscaling:SetDesiredCapacity",
                        "autoscaling:TerminateInstanceInAutoScalingGroup",
                        "ec2:DescribeImages",
                        "ec2:GetInstanceTypesFromInstanceRequirements",
                        "eks:DescribeNodegroup"
                    ],
                    json!("*")
                ),
            ]),
        ));
    }
    if families.aws_load_balancer_controller {
        out.push((
            "PolicyAWSLoadBalancerController",
            load_balancer_controller(),
        ));
    }
    if families.external_dns {
        out.push((
            "PolicyExternalDNSChangeSet",
            json!([allow(
                &["route53:ChangeResourceRecordSets"],
                json!("arn:aws:route53:::hostedzone/*")
            ),]),
        ));
        out.push((
            "PolicyExternalDNSHostedZones",
            json!([allow(
                &[
                    "route53:ListHostedZones",
                    "route53:ListResourceRecordSets",
                    "route53:ListTagsForResource"
                ],
                json!("*")
            ),]),
        ));
    }
    if families.cert_manager {
        out.push((
            "PolicyCertManagerChangeSet",
            json!([allow(
                &["route53:ChangeResourceRecordSets"],
                json!("arn:aws:route53:::hostedzone/*")
            ),]),
        ));
        out.push((
            "PolicyCertManagerGetChange",
            json!([allow(
                &["route53:GetChange"],
                json!("arn:aws:route53:::change/*")
            ),]),
        ));
        out.push((
            "PolicyCertManagerHostedZones",
            json!([allow(
                &[
                    "route53:ListResourceRecordSets",
                    "route53:ListHostedZonesByName"
                ],
                json!("*")
            ),]),
        ));
    }
    if families.efs_csi_controller {
        let tagged = |key: &str| json!({"StringLike": {key: "true"}});
        out.push((
            "PolicyEFSCSIController",
            json!([
                allow(
                    &[
                        "elasticfilesystem:DescribeAccessPoints",
                        "elasticfilesystem:DescribeFileSystems",
                        "elasticfilesystem:DescribeMountTargets",
                        "ec2:DescribeAvailabilityZones"
                    ],
                    json!("*")
                ),
                with_condition(
                    allow(&["elasticfilesystem:CreateAccessPoint"], json!("*")),
                    tagged("aws:RequestTag/efs.csi.aws.com/cluster")
                ),
                with_condition(
                    allow(&["elasticfilesystem:TagResource"], json!("*")),
                    tagged("aws:RequestTag/efs.csi.aws.com/cluster")
                ),
                with_condition(
                    allow(&["elasticfilesystem:DeleteAccessPoint"], json!("*")),
                    tagged("aws:ResourceTag/efs.csi.aws.com/cluster")
                ),
            ]),
        ));
    }
    out
}

fn allow(actions: &[&str], resource: Value) -> Value {
    json!({"Effect": "Allow", "Action": actions, "Resource": resource})
}

fn with_condition(mut statement: Value, condition: Value) -> Value {
    if let Some(map) = statement.as_object_mut() {
        map.insert("Condition".into(), condition);
    }
    statement
}

/// eksctl's `awsLoadBalancerController` statements (the controller's published policy).
fn load_balancer_controller() -> Value {
    let cluster_request_tag = "aws:RequestTag/elbv2.k8s.aws/cluster";
    let cluster_resource_tag = "aws:ResourceTag/elbv2.k8s.aws/cluster";
    let untagged_request = json!({"Null": {cluster_request_tag: "false"}});
    let owned_resource = json!({"Null": {cluster_resource_tag: "false"}});
    let retag = json!({"Null": {cluster_request_tag: "true", cluster_resource_tag: "false"}});
    let lb_resources = json!([
        "arn:aws:elasticloadbalancing:*:*:targetgroup/*/*",
        "arn:aws:elasticloadbalancing:*:*:loadbalancer/net/*/*",
        "arn:aws:elasticloadbalancing:*:*:loadbalancer/app/*/*",
    ]);
    json!([
        with_condition(
            allow(&["iam:CreateServiceLinkedRole"], json!("*")),
            json!({"StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}})
        ),
        allow(
            &[
                "ec2:DescribeAccountAttributes",
                "ec2:DescribeAddresses",
                "ec2:DescribeAvailabilityZones",
                "ec2:DescribeInternetGateways",
                "ec2:DescribeVpcs",
                "ec2:DescribeVpcPeeringConnections",
                "ec2:DescribeSubnets",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeInstances",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeTags",
                "ec2:GetCoipPoolUsage",
                "ec2:DescribeCoipPools",
                "elasticloadbalancing:DescribeLoadBalancers",
                "elasticloadbalancing:DescribeLoadBalancerAttributes",
                "elasticloadbalancing:DescribeListeners",
                "elasticloadbalancing:DescribeListenerCertificates",
                "elasticloadbalancing:DescribeSSLPolicies",
                "elasticloadbalancing:DescribeRules",
                "elasticloadbalancing:DescribeTargetGroups",
                "elasticloadbalancing:DescribeTargetGroupAttributes",
                "elasticloadbalancing:DescribeTargetHealth",
                "elasticloadbalancing:DescribeTags"
            ],
            json!("*")
        ),
        allow(
            &[
                "cognito-idp:DescribeUserPoolClient",
                "acm:ListCertificates",
                "acm:DescribeCertificate",
                "iam:ListServerCertificates",
                "iam:GetServerCertificate",
                "waf-regional:GetWebACL",
                "waf-regional:GetWebACLForResource",
                "waf-regional:AssociateWebACL",
                "waf-regional:DisassociateWebACL",
                "wafv2:GetWebACL",
                "wafv2:GetWebACLForResource",
                "wafv2:AssociateWebACL",
                "wafv2:DisassociateWebACL",
                "shield:GetSubscriptionState",
                "shield:DescribeProtection",
                "shield:CreateProtection",
                "shield:DeleteProtection"
            ],
            json!("*")
        ),
        allow(
            &[
                "ec2:AuthorizeSecurityGroupIngress",
                "ec2:RevokeSecurityGroupIngress"
            ],
            json!("*")
        ),
        allow(&["ec2:CreateSecurityGroup"], json!("*")),
        with_condition(
            allow(
                &["ec2:CreateTags"],
                json!("arn:aws:ec2:*:*:security-group/*")
            ),
            json!({"StringEquals": {"ec2:CreateAction": "CreateSecurityGroup"}, "Null": {cluster_request_tag: "false"}})
        ),
        with_condition(
            allow(
                &["ec2:CreateTags", "ec2:DeleteTags"],
                json!("arn:aws:ec2:*:*:security-group/*")
            ),
            retag.clone()
        ),
        with_condition(
            allow(
                &[
                    "ec2:AuthorizeSecurityGroupIngress",
                    "ec2:RevokeSecurityGroupIngress",
                    "ec2:DeleteSecurityGroup"
                ],
                json!("*")
            ),
            owned_resource.clone()
        ),
        with_condition(
            allow(
                &[
                    "elasticloadbalancing:CreateLoadBalancer",
                    "elasticloadbalancing:CreateTargetGroup"
                ],
                json!("*")
            ),
            untagged_request.clone()
        ),
        allow(
            &[
                "elasticloadbalancing:CreateListener",
                "elasticloadbalancing:DeleteListener",
                "elasticloadbalancing:CreateRule",
                "elasticloadbalancing:DeleteRule"
            ],
            json!("*")
        ),
        with_condition(
            allow(
                &[
                    "elasticloadbalancing:AddTags",
                    "elasticloadbalancing:RemoveTags"
                ],
                lb_resources.clone()
            ),
            retag
        ),
        allow(
            &[
                "elasticloadbalancing:AddTags",
                "elasticloadbalancing:RemoveTags"
            ],
            json!([
                "arn:aws:elasticloadbalancing:*:*:listener/net/*/*/*",
                "arn:aws:elasticloadbalancing:*:*:listener/app/*/*/*",
                "arn:aws:elasticloadbalancing:*:*:listener-rule/net/*/*/*",
                "arn:aws:elasticloadbalancing:*:*:listener-rule/app/*/*/*",
            ])
        ),
        with_condition(
            allow(
                &[
                    "elasticloadbalancing:ModifyLoadBalancerAttributes",
                    "elasticloadbalancing:SetIpAddressType",
                    "elasticloadbalancing:SetSecurityGroups",
                    "elasticloadbalancing:SetSubnets",
                    "elasticloadbalancing:DeleteLoadBalancer",
                    "elasticloadbalancing:ModifyTargetGroup",
                    "elasticloadbalancing:ModifyTargetGroupAttributes",
                    "elasticloadbalancing:DeleteTargetGroup"
                ],
                json!("*")
            ),
            owned_resource
        ),
        with_condition(
            allow(&["elasticloadbalancing:AddTags"], lb_resources),
            json!({"StringEquals": {"elasticloadbalancing:CreateAction": ["CreateTargetGroup", "CreateLoadBalancer"]},
                "Null": {cluster_request_tag: "false"}})
        ),
        allow(
            &[
                "elasticloadbalancing:RegisterTargets",
                "elasticloadbalancing:DeregisterTargets"
            ],
            json!("arn:aws:elasticloadbalancing:*:*:targetgroup/*/*")
        ),
        allow(
            &[
                "elasticloadbalancing:SetWebAcl",
                "elasticloadbalancing:ModifyListener",
                "elasticloadbalancing:AddListenerCertificates",
                "elasticloadbalancing:RemoveListenerCertificates",
                "elasticloadbalancing:ModifyRule"
            ],
            json!("*")
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_fit_iam_and_differ() {
        let stack = format!("eksctl-cluster-podidentityrole-{}-sa", "n".repeat(60));
        let a = generated_name(&stack);
        let b = generated_name(&stack);
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(a.contains("-Role1-"));
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }

    #[test]
    fn every_well_known_family_is_a_valid_policy() {
        let all = WellKnownPolicies {
            image_builder: true,
            auto_scaler: true,
            aws_load_balancer_controller: true,
            external_dns: true,
            cert_manager: true,
            ebs_csi_controller: true,
            efs_csi_controller: true,
        };
        assert_eq!(well_known_managed(all).len(), 2);
        let inline = well_known_inline(all);
        assert_eq!(inline.len(), 8);
        for (name, statements) in inline {
            let document = json!({"Version": "2012-10-17", "Statement": statements}).to_string();
            let parsed = podid_policy::Policy::parse(&document, podid_policy::PolicyKind::Identity);
            assert!(parsed.is_ok(), "{name}: {document}");
        }
    }

    #[test]
    fn xml_is_read() {
        let text = "<Tags><member><Key>a&amp;b</Key><Value>1</Value></member></Tags>";
        assert_eq!(xml_all(text, "Key"), ["a&b"]);
        assert_eq!(
            podid_sigv4::percent_decoded("%7B%22a%22%3A1%7D+"),
            "{\"a\":1}+"
        );
    }
}

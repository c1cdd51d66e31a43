//! `podid utils migrate-to-pod-identity`: eksctl's migration from IRSA to Pod Identity. It
//! finds the service accounts annotated with a role and the add-ons with an IRSA role, prints
//! the plan, and with `--approve` installs the agent add-on if missing, adds EKS Pod Identity's
//! statement to each role's trust policy, optionally drops the OIDC statements and the
//! annotations, and creates the associations. A rerun after success changes nothing and says
//! so (eksctl#7753 made it fail).

use serde_json::{Value, json};

use super::irsa::{self, IAMSERVICEACCOUNT_TAG, ROLE_ANNOTATION};
use super::roles;
use super::tasks::{self, Level, Tree, info, log};
use super::{AGENT_ADDON, Failure, General, Target, agent_installed};

/// `utils migrate-to-pod-identity`.
#[derive(Debug, clap::Args)]
pub(crate) struct MigrateArgs {
    #[command(flatten)]
    general: General,
    /// Apply the changes.
    #[arg(long)]
    approve: bool,
    /// Also remove the OIDC provider's statements from the roles' trust policies, and IRSA's
    /// annotation from the service accounts.
    #[arg(long)]
    remove_oidc_provider_trust_relationship: bool,
}

/// One service account or add-on to migrate, and what it still needs.
struct Candidate {
    /// `NAMESPACE/NAME` of the service account.
    who: String,
    namespace: String,
    service_account: String,
    role_arn: String,
    owned: bool,
    /// The add-on, for an add-on's role.
    addon: Option<String>,
    /// The trust policy to write, if it changes.
    new_trust: Option<Value>,
    remove_annotation: bool,
    create_association: bool,
}

impl Candidate {
    fn role_name(&self) -> &str {
        roles::role_name_of(&self.role_arn)
    }

    fn needs_work(&self) -> bool {
        self.new_trust.is_some() || self.remove_annotation || self.create_association
    }
}

pub(crate) fn run(args: MigrateArgs) -> Result<(), Failure> {
    let target = args.general.target(&[], false)?;
    let remove_oidc = args.remove_oidc_provider_trust_relationship;
    let provider = irsa::provider(&target)?;
    if !provider.exists {
        log(
            Level::Warning,
            "no IAM OIDC provider associated with cluster, hence no iamserviceaccounts to be migrated",
        );
        return Ok(());
    }
    let mut candidates = Vec::new();
    for sa in irsa::annotated(&target, None)? {
        let field = |path: &str| {
            sa.pointer(path)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (namespace, service_account) = (field("/metadata/namespace"), field("/metadata/name"));
        let role_arn = field("/metadata/annotations/eks.amazonaws.com~1role-arn");
        info(&format!(
            "found IAM role for service account {namespace}/{service_account}"
        ));
        candidates.push(candidate(
            &target,
            namespace,
            service_account,
            role_arn,
            None,
            remove_oidc,
        )?);
    }
    for (addon, role_arn, service_account, namespace) in addons_with_irsa(&target)? {
        info(&format!(
            "found IAM role for service account {service_account} associated with EKS addon {addon}"
        ));
        // An add-on's role always loses its OIDC trust, as eksctl does it.
        candidates.push(candidate(
            &target,
            namespace,
            service_account,
            role_arn,
            Some(addon),
            true,
        )?);
    }
    let install_agent = !agent_installed(&target)?;
    let (sas, addons) = (
        candidates.iter().filter(|c| c.addon.is_none()).count(),
        candidates.iter().filter(|c| c.addon.is_some()).count(),
    );
    if candidates.is_empty() {
        info("no iamserviceaccounts or addons found to migrate to pod identity");
        return Ok(());
    }
    let pending: Vec<&Candidate> = candidates.iter().filter(|c| c.needs_work()).collect();
    if pending.is_empty() && !install_agent {
        info(&format!(
            "all {sas} iamserviceaccount(s) and {addons} addon(s) are already migrated to pod identity; nothing to do"
        ));
        return Ok(());
    }
    let plan = plan(&pending, install_agent);
    let header = format!(
        "would migrate {} iamserviceaccount(s) and {} addon(s) to pod identity association(s) by executing the following tasks",
        pending.iter().filter(|c| c.addon.is_none()).count(),
        pending.iter().filter(|c| c.addon.is_some()).count()
    );
    if !args.approve {
        info(&format!("(plan) {header}"));
        info(&format!("(plan) {}", plan.describe()));
        info("all tasks were skipped");
        tasks::plan_warning();
        return Ok(());
    }
    info(&header.replacen("would migrate", "will migrate", 1));
    info(&plan.describe());
    if install_agent {
        info(&format!("creating addon: {AGENT_ADDON}"));
        target.eks.json(
            "POST",
            &format!("/clusters/{}/addons", target.cluster),
            "",
            Some(&json!({"addonName": AGENT_ADDON})),
        )?;
        info(&format!("successfully created addon: {AGENT_ADDON}"));
    }
    let stage = |work: &(dyn Fn(&Candidate) -> anyhow::Result<()> + Sync)| -> Result<(), Failure> {
        let errors: Vec<String> = tasks::run_parallel(&pending, 8, |c| work(c))
            .into_iter()
            .filter_map(|r| r.err().map(|e| format!("{e:#}")))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Failure::Refused(errors.join("\n")))
        }
    };
    stage(&|c| update_trust(&target, c))?;
    stage(&|c| remove_annotation(&target, c))?;
    stage(&|c| create_association(&target, c))?;
    info("all tasks were completed successfully");
    Ok(())
}

/// What a service account's migration still needs.
fn candidate(
    target: &Target,
    namespace: String,
    service_account: String,
    role_arn: String,
    addon: Option<String>,
    remove_oidc: bool,
) -> Result<Candidate, Failure> {
    let who = format!("{namespace}/{service_account}");
    let name = roles::role_name_of(&role_arn).to_owned();
    let owned = roles::made_for(
        &target.iam,
        &role_arn,
        &target.cluster,
        (IAMSERVICEACCOUNT_TAG, &who),
    )?;
    let trust = roles::role_trust(&target.iam, &name)?.ok_or_else(|| {
        Failure::Refused(format!(
            "the role {role_arn:?} of service account {who:?} does not exist: fix the annotation first"
        ))
    })?;
    let new_trust = migrated_trust(&trust, remove_oidc);
    let existing = super::podidentity::list_associations(
        &target.eks,
        &target.cluster,
        Some(&namespace),
        Some(&service_account),
    )?;
    Ok(Candidate {
        who,
        namespace,
        service_account,
        role_arn,
        owned,
        remove_annotation: remove_oidc && addon.is_none(),
        create_association: existing.is_empty(),
        addon,
        new_trust: (new_trust != trust).then_some(new_trust),
    })
}

/// The trust policy with EKS Pod Identity's statement (added once), without the statements of
/// a single OIDC provider principal when `remove_oidc`.
fn migrated_trust(trust: &Value, remove_oidc: bool) -> Value {
    let mut out = trust.clone();
    let statements = match trust.get("Statement") {
        Some(Value::Array(list)) => list.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => Vec::new(),
    };
    let is_oidc = |s: &Value| {
        s.pointer("/Principal/Federated")
            .and_then(Value::as_str)
            .is_some_and(|p| p.contains("oidc-provider"))
    };
    let is_pods = |s: &Value| {
        let service = s.pointer("/Principal/Service");
        let names_pods = match service {
            Some(Value::String(v)) => v == "pods.eks.amazonaws.com",
            Some(Value::Array(list)) => list.iter().any(|v| v == "pods.eks.amazonaws.com"),
            _ => false,
        };
        names_pods && s.get("Effect").and_then(Value::as_str) == Some("Allow")
    };
    let mut kept: Vec<Value> = statements
        .into_iter()
        .filter(|s| !(remove_oidc && is_oidc(s)))
        .collect();
    if !kept.iter().any(is_pods) {
        kept.push(roles::pod_identity_trust_statement());
    }
    if let Some(map) = out.as_object_mut() {
        map.insert("Statement".into(), Value::Array(kept));
    }
    out
}

fn plan(pending: &[&Candidate], install_agent: bool) -> Tree {
    let mut steps = Vec::new();
    if install_agent {
        steps.push(Tree::Task(format!("install {AGENT_ADDON} addon")));
    }
    let group = |tasks: Vec<Tree>| -> Option<Tree> {
        match tasks.len() {
            0 => None,
            1 => tasks.into_iter().next(),
            _ => Some(Tree::Parallel(tasks)),
        }
    };
    let trusts = pending
        .iter()
        .filter(|c| c.new_trust.is_some())
        .map(|c| {
            Tree::Task(format!(
                "update trust policy for {} role {:?}",
                if c.owned { "owned" } else { "unowned" },
                c.role_name()
            ))
        })
        .collect();
    let annotations = pending
        .iter()
        .filter(|c| c.remove_annotation)
        .map(|c| {
            Tree::Task(format!(
                "remove iamserviceaccount EKS role annotation for {:?}",
                c.who
            ))
        })
        .collect();
    let associations = pending
        .iter()
        .filter(|c| c.create_association)
        .map(|c| {
            Tree::Task(match &c.addon {
                Some(addon) => format!("migrate addon {addon} to pod identity"),
                None => format!(
                    "create pod identity association for service account {:?}",
                    c.who
                ),
            })
        })
        .collect();
    steps.extend(
        [trusts, annotations, associations]
            .into_iter()
            .filter_map(group),
    );
    Tree::Sequential(steps)
}

fn update_trust(target: &Target, c: &Candidate) -> anyhow::Result<()> {
    let Some(trust) = &c.new_trust else {
        return Ok(());
    };
    roles::update_trust(&target.iam, c.role_name(), trust)?;
    if c.owned {
        // The role is now the association's: `delete podidentityassociation` removes it.
        let add = [(roles::ASSOCIATION_TAG.to_owned(), c.who.clone())]
            .into_iter()
            .collect();
        let remove: &[&str] = if c.new_trust.as_ref().is_some_and(|t| !has_oidc(t)) {
            &[IAMSERVICEACCOUNT_TAG]
        } else {
            &[]
        };
        roles::retag_role(&target.iam, c.role_name(), &add, remove)?;
    }
    info(&format!("updated trust policy for role {}", c.role_name()));
    Ok(())
}

fn has_oidc(trust: &Value) -> bool {
    trust.to_string().contains("oidc-provider")
}

fn remove_annotation(target: &Target, c: &Candidate) -> anyhow::Result<()> {
    if !c.remove_annotation {
        return Ok(());
    }
    target.eks.json(
        "POST",
        &format!(
            "/clusters/{}/podid/service-accounts/{}/{}",
            target.cluster, c.namespace, c.service_account
        ),
        "",
        Some(&json!({"metadata": {"annotations": {ROLE_ANNOTATION: null}}})),
    )?;
    info(&format!(
        "removed iamserviceaccount annotation with key {ROLE_ANNOTATION:?} for {:?}",
        c.who
    ));
    Ok(())
}

fn create_association(target: &Target, c: &Candidate) -> anyhow::Result<()> {
    if !c.create_association {
        return Ok(());
    }
    let result = match &c.addon {
        Some(addon) => {
            info(&format!(
                "creating a pod identity for addon {addon} with service account {}",
                c.service_account
            ));
            target.eks.json(
                "POST",
                &format!("/clusters/{}/addons/{addon}/update", target.cluster),
                "",
                Some(&json!({"podIdentityAssociations": [
                    {"serviceAccount": c.service_account, "roleArn": c.role_arn}
                ]})),
            )
        }
        None => target.eks.json(
            "POST",
            &format!("/clusters/{}/pod-identity-associations", target.cluster),
            "",
            Some(&json!({
                "namespace": c.namespace,
                "serviceAccount": c.service_account,
                "roleArn": c.role_arn,
            })),
        ),
    };
    match result {
        Ok(_) => {
            info(&format!(
                "created pod identity association for service account {:?} in namespace {:?}",
                c.service_account, c.namespace
            ));
            Ok(())
        }
        Err(e) if roles::is_code(&e, "ResourceInUseException") => {
            info(&format!(
                "pod identity association {} already exists",
                c.who
            ));
            Ok(())
        }
        Err(e) => Err(e.context(format!(
            "creating pod identity association for service account {:?} in namespace {:?}",
            c.service_account, c.namespace
        ))),
    }
}

/// The cluster's add-ons with an IRSA role: (add-on, role ARN, its service account, its
/// namespace). The service account is the first one DescribeAddonConfiguration names for
/// Pod Identity; add-ons that support none are skipped, as eksctl skips them.
fn addons_with_irsa(target: &Target) -> anyhow::Result<Vec<(String, String, String, String)>> {
    let listed = target.eks.json(
        "GET",
        &format!("/clusters/{}/addons", target.cluster),
        "",
        None,
    )?;
    let mut out = Vec::new();
    for name in listed
        .get("addons")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let addon = target.eks.json(
            "GET",
            &format!("/clusters/{}/addons/{name}", target.cluster),
            "",
            None,
        )?;
        let field = |path: &str| {
            addon
                .pointer(path)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let role = field("/addon/serviceAccountRoleArn");
        if role.is_empty() {
            continue;
        }
        let has_associations = addon
            .pointer("/addon/podIdentityAssociations")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if has_associations {
            info(&format!(
                "addon {name} is already using pod identity; skipping migration to pod identity"
            ));
            continue;
        }
        let configuration =
            super::addons::configuration(target, name, &field("/addon/addonVersion"))?;
        let Some(sa) = configuration
            .pointer("/podIdentityConfiguration/0/serviceAccount")
            .and_then(Value::as_str)
        else {
            info(&format!(
                "addon {name} does not support pod identity; skipping migration to pod identity"
            ));
            continue;
        };
        let namespace = addon
            .pointer("/addon/namespaceConfig/namespace")
            .and_then(Value::as_str)
            .unwrap_or("kube-system");
        out.push((name.to_owned(), role, sa.to_owned(), namespace.to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trust_gains_pod_identity_once_and_may_lose_oidc() {
        let irsa = json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/AB"},
            "Action": "sts:AssumeRoleWithWebIdentity",
        }]});
        let both = migrated_trust(&irsa, false);
        assert_eq!(both["Statement"].as_array().map(Vec::len), Some(2));
        assert_eq!(migrated_trust(&both, false), both);
        let pods_only = migrated_trust(&both, true);
        assert_eq!(
            pods_only["Statement"],
            json!([roles::pod_identity_trust_statement()])
        );
        assert_eq!(migrated_trust(&pods_only, true), pods_only);
    }
}

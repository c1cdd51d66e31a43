//! `podid create cluster -f`: a local cluster with what its ClusterConfig asks for, in eksctl's
//! order: the cluster, its OIDC provider (`iam.withOIDC`), its add-ons (the agent first), its
//! iamserviceaccounts, its Pod Identity associations. If a step fails, what was made is removed.

use super::tasks::{Level, info, log};
use super::{Failure, General, Target, agent_installed, irsa, roles};

/// `create cluster`.
#[derive(Debug, clap::Args)]
pub(crate) struct CreateClusterArgs {
    #[command(flatten)]
    general: General,
    /// How many associations are made at once.
    #[arg(long, default_value_t = 8, value_name = "N")]
    concurrency: usize,
}

pub(crate) fn run(args: CreateClusterArgs) -> Result<(), Failure> {
    if args.general.config_file.is_none() {
        return Err(Failure::Usage(
            "podid create cluster reads a ClusterConfig file: give it with -f (a cluster from flags alone is `podid cluster create NAME`)".into(),
        ));
    }
    let target = args.general.target(&[], false)?;
    let config = target.config.clone().unwrap_or_default();
    let (cluster, region) = (target.cluster.clone(), config.region().to_owned());
    let metadata = config.metadata.clone().unwrap_or_default();
    let tags = metadata
        .tags
        .as_ref()
        .map(super::config::texts)
        .unwrap_or_default();
    // Check everything the file asks for before making anything.
    let iam = config.iam.clone().unwrap_or_default();
    let service_accounts = iam.service_accounts.clone().unwrap_or_default();
    irsa::validate(&service_accounts, iam.with_oidc)?;
    let associations = iam.pod_identity_associations.clone().unwrap_or_default();
    if !associations.is_empty() {
        super::podidentity::validate(&associations, true)?;
    }
    let addons = config.addons.clone().unwrap_or_default();
    for addon in &addons {
        super::addons::validate(addon)?;
    }
    info(&format!("using region {region}"));
    info(&format!(
        "creating EKS cluster {cluster:?} in {region:?} region"
    ));
    let mut body = serde_json::json!({"name": cluster, "tags": tags});
    if let (Some(version), Some(map)) = (&metadata.version, body.as_object_mut()) {
        map.insert("version".into(), version.0.clone().into());
    }
    target
        .eks
        .json("POST", "/clusters", "", Some(&body))
        .map_err(|e| Failure::Other(e.context(format!("creating cluster {cluster:?}"))))?;
    let started = podid_types::Clock::now(&podid_types::SystemClock);
    let mut made_provider = false;
    let result = (|| -> Result<(), Failure> {
        if iam.with_oidc == Some(true) {
            let provider = irsa::provider(&target)?;
            if !provider.exists {
                irsa::create_provider(&target, &provider)?;
                made_provider = true;
                info(&format!(
                    "created IAM Open ID Connect provider for cluster {cluster:?} in {region:?}"
                ));
            }
        }
        if !addons.is_empty() {
            let auto_apply = config
                .addons_config
                .as_ref()
                .is_some_and(|c| c.auto_apply_pod_identity_associations);
            super::addons::create_addons(&target, addons.clone(), auto_apply, &tags)?;
        }
        if !service_accounts.is_empty() {
            irsa::create_service_accounts(&target, &service_accounts, &tags, true, true)?;
        }
        if !associations.is_empty() {
            if !agent_installed(&target)? {
                return Err(Failure::Refused(format!(
                    "the \"{agent}\" addon must be installed to create pod identity associations; add it to `addons` in the config file",
                    agent = super::AGENT_ADDON
                )));
            }
            super::podidentity::create_associations(
                &target,
                &associations,
                &tags,
                args.concurrency,
            )?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => {
            info(&format!(
                "EKS cluster {cluster:?} in {region:?} region is ready"
            ));
            Ok(())
        }
        Err(e) => {
            log(
                Level::Warning,
                &format!("creating cluster {cluster:?} failed; removing what was made"),
            );
            undo(&target, made_provider, started);
            Err(e)
        }
    }
}

/// Removes the cluster (its add-ons, associations and service accounts go with it), the roles
/// made for it since `since`, and the OIDC provider if this command made it.
fn undo(target: &Target, made_provider: bool, since: podid_types::Timestamp) {
    if made_provider && let Ok(provider) = irsa::provider(target) {
        let _ = target.iam.query(&[
            ("Action", "DeleteOpenIDConnectProvider"),
            ("Version", "2010-05-08"),
            ("OpenIDConnectProviderArn", &provider.arn),
        ]);
    }
    match roles::roles_tagged_since(&target.iam, &target.cluster, since) {
        Ok(names) => {
            for name in names {
                if let Err(e) = roles::delete_role(&target.iam, &name) {
                    log(
                        Level::Warning,
                        &format!("could not remove role {name:?}: {e:#}"),
                    );
                }
            }
        }
        Err(e) => log(
            Level::Warning,
            &format!("could not list the roles made: {e:#}"),
        ),
    }
    if let Err(e) = target
        .eks
        .json("DELETE", &format!("/clusters/{}", target.cluster), "", None)
    {
        log(
            Level::Warning,
            &format!("could not remove the cluster: {e:#}"),
        );
    }
}

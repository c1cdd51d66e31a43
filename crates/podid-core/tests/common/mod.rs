//! Set-up shared by the EKS and Pod Identity tests.

use podid_core::{Caller, Core, CreateRole};

/// Creates the role `name` with the trust policy `trust`, as `caller`.
pub(crate) async fn create_role(core: &Core, caller: &Caller, name: &str, trust: &str) {
    core.iam()
        .create_role(
            caller,
            CreateRole {
                name: name.into(),
                trust_policy: trust.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
}

//! OpenID Connect identity providers.

use podid_store::Op;

use super::roles::tag_context;
use super::{is_conflict, merge_tags};
use crate::auth::Caller;
use crate::error::Error;
use crate::records::{OidcRecord, Tag, ns};
use crate::{Iam, encode};

/// The most OIDC providers an account may have.
const MAX_PROVIDERS: usize = 100;

/// The parameters of CreateOpenIDConnectProvider.
#[derive(Clone, Debug, Default)]
pub struct CreateOidcProvider {
    /// `Url`: `https://host[/path]`.
    pub url: String,
    /// `ClientIDList`.
    pub client_ids: Vec<String>,
    /// `ThumbprintList`.
    pub thumbprints: Vec<String>,
    /// `Tags`.
    pub tags: Vec<Tag>,
}

impl Iam<'_> {
    /// CreateOpenIDConnectProvider.
    pub async fn create_oidc_provider(
        self,
        caller: &Caller,
        input: CreateOidcProvider,
    ) -> Result<OidcRecord, Error> {
        let account = caller.account().to_string();
        let host_and_path = input
            .url
            .strip_prefix("https://")
            .filter(|rest| {
                let host = rest.split('/').next().unwrap_or_default();
                !host.is_empty() && !host.contains(':') && !rest.contains(['?', '#', ' '])
            })
            .map(|rest| rest.trim_end_matches('/'))
            .ok_or_else(|| Error::Validation("Invalid Open ID Connect Provider URL".into()))?;
        let provider_arn = format!("arn:aws:iam::{account}:oidc-provider/{host_and_path}");
        self.core.authorize(
            caller,
            "iam:CreateOpenIDConnectProvider",
            &provider_arn,
            &tag_context(&input.tags),
        )?;
        if input.thumbprints.len() > 5 {
            return Err(Error::InvalidInput(
                "Thumbprint list must contain fewer than 5 entries.".into(),
            ));
        }
        if input.client_ids.len() > 100 {
            return Err(Error::LimitExceeded(
                "Cannot exceed quota for ClientIdsPerOpenIdConnectProvider: 100".into(),
            ));
        }
        let mut tags = Vec::new();
        merge_tags(&mut tags, input.tags, false)?;
        if self
            .core
            .store
            .scan(ns::OIDC, &format!("{account}/"), None, MAX_PROVIDERS + 1)
            .await?
            .len()
            >= MAX_PROVIDERS
        {
            return Err(Error::LimitExceeded(
                "Cannot exceed quota for OpenIdConnectProvidersPerAccount: 100".into(),
            ));
        }
        let mut client_ids: Vec<String> = Vec::new();
        for id in input.client_ids {
            if !client_ids.contains(&id) {
                client_ids.push(id);
            }
        }
        let record = OidcRecord {
            arn: provider_arn,
            url: host_and_path.to_owned(),
            client_ids,
            thumbprints: input.thumbprints.iter().map(|t| t.to_lowercase()).collect(),
            tags,
            created: self.core.now(),
        };
        match self
            .core
            .commit_as(
                caller,
                vec![Op::create(
                    ns::OIDC,
                    format!("{account}/{host_and_path}"),
                    encode(&record),
                )],
            )
            .await
        {
            Ok(()) => Ok(record),
            Err(e) if is_conflict(&e) => Err(Error::EntityAlreadyExists(format!(
                "Provider with url https://{host_and_path} already exists."
            ))),
            Err(e) => Err(e.into()),
        }
    }

    fn oidc_key(arn: &str) -> Option<String> {
        let rest = arn.strip_prefix("arn:aws:iam::")?;
        let (account, resource) = rest.split_once(':')?;
        let url = resource.strip_prefix("oidc-provider/")?;
        Some(format!("{account}/{url}"))
    }

    /// GetOpenIDConnectProvider.
    pub async fn get_oidc_provider(
        self,
        caller: &Caller,
        provider_arn: &str,
    ) -> Result<OidcRecord, Error> {
        self.core
            .authorize(caller, "iam:GetOpenIDConnectProvider", provider_arn, &[])?;
        let not_found = || {
            Error::NoSuchEntity(format!(
                "OpenIDConnect Provider not found for arn {provider_arn}"
            ))
        };
        let key = Self::oidc_key(provider_arn)
            .ok_or_else(|| Error::InvalidInput(format!("ARN {provider_arn} is not valid.")))?;
        if !key.starts_with(&format!("{}/", caller.account())) {
            return Err(not_found());
        }
        Ok(self
            .core
            .load::<OidcRecord>(ns::OIDC, &key)
            .await?
            .ok_or_else(not_found)?
            .0)
    }

    /// DeleteOpenIDConnectProvider.
    pub async fn delete_oidc_provider(
        self,
        caller: &Caller,
        provider_arn: &str,
    ) -> Result<(), Error> {
        self.core
            .authorize(caller, "iam:DeleteOpenIDConnectProvider", provider_arn, &[])?;
        let not_found = || {
            Error::NoSuchEntity(format!(
                "OpenId connect Provider {provider_arn} cannot be found."
            ))
        };
        let key = Self::oidc_key(provider_arn)
            .ok_or_else(|| Error::InvalidInput(format!("ARN {provider_arn} is not valid.")))?;
        if !key.starts_with(&format!("{}/", caller.account())) {
            return Err(not_found());
        }
        let (_, version) = self
            .core
            .load::<OidcRecord>(ns::OIDC, &key)
            .await?
            .ok_or_else(not_found)?;
        match self
            .core
            .commit_as(caller, vec![Op::delete(ns::OIDC, key, version)])
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_conflict(&e) => Err(not_found()),
            Err(e) => Err(e.into()),
        }
    }

    /// ListOpenIDConnectProviders: every provider's ARN (not paginated, as in AWS).
    pub async fn list_oidc_providers(self, caller: &Caller) -> Result<Vec<String>, Error> {
        let account = caller.account().to_string();
        self.core
            .authorize(caller, "iam:ListOpenIDConnectProviders", "*", &[])?;
        let items = self
            .core
            .store
            .scan(ns::OIDC, &format!("{account}/"), None, MAX_PROVIDERS * 2)
            .await?;
        Ok(items
            .iter()
            .filter_map(|i| crate::decode::<OidcRecord>(i).ok())
            .map(|r| r.arn)
            .collect())
    }
}

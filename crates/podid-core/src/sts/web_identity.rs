//! AssumeRoleWithWebIdentity: a token of an OpenID Connect issuer, checked against the IAM OIDC
//! provider of the role's account, exchanged for a role session through the one assume core
//! ([`Sts::assume`] with [`Assumer::WebIdentity`]).
//!
//! The order of checks is AWS's: the token must be a JWT with an `iss`; the role's account must
//! have a provider for that issuer; the token's `aud` must be one of the provider's client ids;
//! the signature must verify against the issuer's key set (an allow-list of algorithms) and the
//! time claims must hold; then the role's trust policy decides, with the provider's condition
//! keys (`HOST/PATH:sub`, `:aud`, `:amr`) and `aws:FederatedProvider`.

use podid_policy::{Context, ContextValue};
use podid_types::Secret;
use serde_json::{Map, Value};

use super::{AssumeRole, AssumedRole, Assumer, Sts};
use crate::error::Error;
use crate::records::{OidcRecord, Tag, ns};

/// The clock skew allowed on a web identity token's `exp`, `nbf` and `iat`, in seconds.
pub const WEB_IDENTITY_LEEWAY_SECONDS: i64 = 60;

/// The claim a token's session tags come from.
const TAGS_CLAIM: &str = "https://aws.amazon.com/tags";

/// The claim a token's source identity comes from.
const SOURCE_IDENTITY_CLAIM: &str = "https://aws.amazon.com/source_identity";

/// An AssumeRoleWithWebIdentity request.
#[derive(Clone, Debug, Default)]
pub struct AssumeRoleWithWebIdentity {
    /// `RoleArn`.
    pub role_arn: String,
    /// `RoleSessionName`.
    pub session_name: String,
    /// `WebIdentityToken`.
    pub token: Secret<String>,
    /// `DurationSeconds` (default 3600, at most the role's maximum).
    pub duration_seconds: Option<u32>,
    /// `Policy`: an inline session policy.
    pub policy: Option<String>,
    /// `PolicyArns`: managed session policies.
    pub policy_arns: Vec<String>,
}

/// What AssumeRoleWithWebIdentity returns.
#[derive(Clone, Debug)]
pub struct WebIdentitySession {
    /// The role session.
    pub assumed: AssumedRole,
    /// `SubjectFromWebIdentityToken`: the token's `sub`.
    pub subject: String,
    /// `Provider`: the ARN of the IAM OIDC provider that vouched for the token.
    pub provider: String,
    /// `Audience`: the client id the token was issued for.
    pub audience: String,
}

/// A verified web identity: which provider vouched, and what the token says.
#[derive(Clone, Debug)]
pub struct WebIdentity {
    /// The provider's ARN: the trust policy's `Principal.Federated`.
    pub(crate) provider_arn: String,
    /// The provider's URL without `https://`: the prefix of its condition keys.
    pub(crate) provider_url: String,
    /// `sub`.
    pub(crate) subject: String,
    /// The client id that matched `aud`.
    pub(crate) audience: String,
    /// `amr`, when the token has it.
    pub(crate) amr: Vec<String>,
}

impl WebIdentity {
    /// The condition keys of the provider and the token: `HOST/PATH:sub`, `:aud`, `:amr` and
    /// `aws:FederatedProvider` (the provider's ARN, as for IAM OIDC providers).
    pub(crate) fn add_keys(&self, context: &mut Context) {
        let url = &self.provider_url;
        context.insert(&format!("{url}:sub"), self.subject.as_str());
        context.insert(&format!("{url}:aud"), self.audience.as_str());
        if !self.amr.is_empty() {
            context.insert(&format!("{url}:amr"), ContextValue::Many(self.amr.clone()));
        }
        context.insert("aws:FederatedProvider", self.provider_arn.as_str());
    }
}

impl Sts<'_> {
    /// AssumeRoleWithWebIdentity: no caller; the token is the credential.
    pub async fn assume_role_with_web_identity(
        self,
        input: AssumeRoleWithWebIdentity,
    ) -> Result<WebIdentitySession, Error> {
        let token = input.token.expose();
        let unverified = podid_jwt::decode_unverified(token).map_err(|_| {
            Error::InvalidIdentityToken(
                "The web identity token is not a JWT: it must be three base64url parts (header, claims, signature) of an OpenID Connect ID token.".into(),
            )
        })?;
        let issuer = unverified
            .claims
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let account = role_account(&input.role_arn)?;
        let provider = self.provider_for(&account, &issuer).await?;
        let audience = matching_audience(&unverified.claims, &provider)
            .ok_or_else(|| Error::InvalidIdentityToken("Incorrect token audience".into()))?;
        let kid = unverified
            .header
            .get("kid")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let claims = self
            .core
            .verify_issuer_token(&issuer, kid.as_deref(), token)
            .await?;
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Error::InvalidIdentityToken("The web identity token has no `sub` claim.".into())
            })?
            .to_owned();
        let (tags, transitive_tag_keys) = session_tags(&claims)?;
        let identity = WebIdentity {
            provider_arn: provider.arn.clone(),
            provider_url: provider.url.clone(),
            subject: subject.clone(),
            audience: audience.clone(),
            amr: strings(claims.get("amr")),
        };
        let assumed = self
            .assume(
                Assumer::WebIdentity(&identity),
                AssumeRole {
                    role_arn: input.role_arn,
                    session_name: input.session_name,
                    duration_seconds: input.duration_seconds,
                    tags,
                    transitive_tag_keys,
                    source_identity: claims
                        .get(SOURCE_IDENTITY_CLAIM)
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    policy: input.policy,
                    policy_arns: input.policy_arns,
                    ..Default::default()
                },
            )
            .await?;
        Ok(WebIdentitySession {
            assumed,
            subject,
            provider: provider.arn,
            audience,
        })
    }

    /// The OIDC provider of `account` whose URL is `issuer`.
    async fn provider_for(self, account: &str, issuer: &str) -> Result<OidcRecord, Error> {
        let not_found = || {
            Error::InvalidIdentityToken(format!(
                "No OpenIDConnect provider found in your account for {issuer}"
            ))
        };
        let url = issuer
            .strip_prefix("https://")
            .map(|rest| rest.trim_end_matches('/'))
            .filter(|rest| !rest.is_empty())
            .ok_or_else(not_found)?;
        self.core
            .load::<OidcRecord>(ns::OIDC, &format!("{account}/{url}"))
            .await?
            .map(|(record, _)| record)
            .ok_or_else(not_found)
    }
}

/// The account of a role ARN, for finding the provider (the assume core checks the rest).
fn role_account(role_arn: &str) -> Result<String, Error> {
    role_arn
        .strip_prefix("arn:aws:iam::")
        .and_then(|rest| rest.split_once(':'))
        .filter(|(account, resource)| {
            account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource.starts_with("role/")
        })
        .map(|(account, _)| account.to_owned())
        .ok_or_else(|| Error::Validation(format!("{role_arn} is invalid")))
}

/// The first of the provider's client ids that the token's `aud` names.
fn matching_audience(claims: &Map<String, Value>, provider: &OidcRecord) -> Option<String> {
    let audiences = strings(claims.get("aud"));
    provider
        .client_ids
        .iter()
        .find(|id| audiences.contains(id))
        .cloned()
}

/// A claim that is a string or a list of strings, as a list.
fn strings(claim: Option<&Value>) -> Vec<String> {
    match claim {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// The session tags of the `https://aws.amazon.com/tags` claim: `principal_tags` (each a list
/// of one value) and `transitive_tag_keys`.
fn session_tags(claims: &Map<String, Value>) -> Result<(Vec<Tag>, Vec<String>), Error> {
    let Some(claim) = claims.get(TAGS_CLAIM) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let invalid = |why: &str| {
        Error::InvalidIdentityToken(format!(
            "The `{TAGS_CLAIM}` claim is not valid: {why}. It must be {{\"principal_tags\": {{\"KEY\": [\"VALUE\"]}}, \"transitive_tag_keys\": [\"KEY\"]}}."
        ))
    };
    let object = claim
        .as_object()
        .ok_or_else(|| invalid("it is not an object"))?;
    let mut tags = Vec::new();
    if let Some(principal_tags) = object.get("principal_tags") {
        let principal_tags = principal_tags
            .as_object()
            .ok_or_else(|| invalid("`principal_tags` is not an object"))?;
        for (key, values) in principal_tags {
            let value = match values {
                Value::Array(list) if list.len() == 1 => list.first().and_then(Value::as_str),
                _ => None,
            }
            .ok_or_else(|| invalid(&format!("tag `{key}` is not a list of one string")))?;
            tags.push(Tag {
                key: key.clone(),
                value: value.to_owned(),
            });
        }
    }
    let transitive = match object.get("transitive_tag_keys") {
        None => Vec::new(),
        Some(Value::Array(keys)) => keys
            .iter()
            .map(|k| {
                k.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| invalid("`transitive_tag_keys` holds a non-string"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid("`transitive_tag_keys` is not a list")),
    };
    if let Some(key) = transitive
        .iter()
        .find(|k| !tags.iter().any(|t| t.key.eq_ignore_ascii_case(k)))
    {
        return Err(invalid(&format!(
            "transitive key `{key}` is not one of the principal tags"
        )));
    }
    Ok((tags, transitive))
}

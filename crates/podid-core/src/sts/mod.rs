//! STS: AssumeRole (the one assume core that Pod Identity and web identity reuse),
//! GetSessionToken, GetCallerIdentity, and the authentication of session credentials.

mod token;
mod web_identity;

use podid_policy::{
    Context, ContextValue, NamedPolicy, Ownership, ParseOptions, PolicyKind, PolicySet, Principal,
    Request,
};
use podid_types::{AccountId, Secret, Timestamp};

pub(crate) use token::{Claims, Keyring, SessionPrincipal};
pub use web_identity::{
    AssumeRoleWithWebIdentity, WEB_IDENTITY_LEEWAY_SECONDS, WebIdentity, WebIdentitySession,
};

use crate::Core;
use crate::auth::{Caller, Identity, SessionInfo};
use crate::error::Error;
use crate::names::{entity_key, policy_arn_parts};
use crate::records::{RoleRecord, Tag, ns};

/// STS: AssumeRole, GetSessionToken and GetCallerIdentity, and the session keys that seal
/// session tokens. A view of the [`Core`]: `core.sts()`.
#[derive(Clone, Copy, Debug)]
pub struct Sts<'a> {
    pub(crate) core: &'a Core,
}

/// The longest a chained role session may last.
const CHAINED_MAX_SECONDS: u32 = 3600;

/// The plaintext session-policy limit (inline and managed together), in characters.
const SESSION_POLICY_CHARS: usize = 2048;

/// The packed limit (policies and tags, as podid packs them), in bytes; see
/// `docs/sts-api.md` for how podid computes `PackedPolicySize`.
const PACKED_LIMIT: usize = 4096;

/// The session tags Pod Identity and other callers may pass at most.
const MAX_SESSION_TAGS: usize = 50;

/// An AssumeRole request.
#[derive(Clone, Debug, Default)]
pub struct AssumeRole {
    /// `RoleArn`.
    pub role_arn: String,
    /// `RoleSessionName`.
    pub session_name: String,
    /// `DurationSeconds` (default 3600).
    pub duration_seconds: Option<u32>,
    /// `ExternalId`.
    pub external_id: Option<String>,
    /// `Tags`.
    pub tags: Vec<Tag>,
    /// `TransitiveTagKeys`.
    pub transitive_tag_keys: Vec<String>,
    /// `SourceIdentity`.
    pub source_identity: Option<String>,
    /// `Policy`: an inline session policy.
    pub policy: Option<String>,
    /// `PolicyArns`: managed session policies.
    pub policy_arns: Vec<String>,
}

/// Who assumes a role.
#[derive(Clone, Copy, Debug)]
pub enum Assumer<'a> {
    /// An authenticated IAM caller (a user, or a role session: role chaining).
    Caller(&'a Caller),
    /// An AWS service principal, such as `pods.eks.amazonaws.com` for Pod Identity: only the
    /// role's trust policy decides.
    Service(&'a str),
    /// A web identity that an IAM OIDC provider vouched for (AssumeRoleWithWebIdentity): only
    /// the role's trust policy decides, for `sts:AssumeRoleWithWebIdentity`.
    WebIdentity(&'a WebIdentity),
}

/// Temporary credentials.
#[derive(Clone, Debug)]
pub struct SessionCredentials {
    /// `ASIA…`.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret<String>,
    /// The session token.
    pub session_token: Secret<String>,
    /// When they expire.
    pub expiration: Timestamp,
}

/// What AssumeRole returns.
#[derive(Clone, Debug)]
pub struct AssumedRole {
    /// The credentials.
    pub credentials: SessionCredentials,
    /// `AROA…:SESSION`.
    pub assumed_role_id: String,
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION` (no role path).
    pub arn: String,
    /// How full the packed session policies and tags are, in percent, when any were passed.
    pub packed_policy_size: Option<u32>,
    /// The session's source identity.
    pub source_identity: Option<String>,
}

/// What GetCallerIdentity returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerIdentity {
    /// `AIDA…`, `AROA…:SESSION` or the account id for root.
    pub user_id: String,
    /// The account.
    pub account: String,
    /// The caller's ARN (the assumed-role ARN for a role session).
    pub arn: String,
}

/// A session token that opened, with the secret its requests must be signed with.
pub struct OpenedSession {
    claims: Claims,
}

impl std::fmt::Debug for OpenedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedSession")
            .field("access_key_id", &self.claims.access_key_id)
            .finish_non_exhaustive()
    }
}

/// An assume request that the policies allow, before its session is sealed ([`Sts::decide`]).
pub(crate) struct Decided {
    /// The session it starts, without an access key id or secret.
    pub(crate) claims: Claims,
    /// The role assumed.
    pub(crate) role: RoleRecord,
    /// `PackedPolicySize`.
    pub(crate) packed: Option<u32>,
    /// Each action decided and why it was allowed, when asked for.
    pub(crate) explanations: Vec<(&'static str, podid_policy::Explanation)>,
}

impl OpenedSession {
    /// A session that was never sealed: what [`Sts::decide`] says a session would be, so that
    /// the access graph can ask what that session may do next.
    pub(crate) fn unsealed(claims: Claims) -> Self {
        Self { claims }
    }

    /// The secret access key of the session.
    pub fn secret_access_key(&self) -> Secret<String> {
        Secret::new(self.claims.secret.clone())
    }
}

impl Sts<'_> {
    /// AssumeRole by an authenticated caller.
    pub async fn assume_role(
        self,
        caller: &Caller,
        input: AssumeRole,
    ) -> Result<AssumedRole, Error> {
        self.assume(Assumer::Caller(caller), input).await
    }

    /// The assume core: validates the request, decides it with the policy engine (the role's
    /// trust policy as a resource-based policy; for an IAM caller also its identity policies,
    /// boundary and session policies; `sts:TagSession` and `sts:SetSourceIdentity` as separate
    /// actions), enforces the duration limits, and seals the new session into its token.
    pub async fn assume(
        self,
        assumer: Assumer<'_>,
        input: AssumeRole,
    ) -> Result<AssumedRole, Error> {
        let Decided {
            mut claims,
            role,
            packed,
            ..
        } = self.decide(assumer, &input, false).await?;
        let access_key_id = self.core.ids.access_key_id("ASIA");
        let secret = self.core.ids.secret_access_key();
        claims.access_key_id.clone_from(&access_key_id);
        claims.secret.clone_from(secret.expose());
        let token = self.core.seal_claims(&claims).await?;
        let session_name = input.session_name;
        Ok(AssumedRole {
            credentials: SessionCredentials {
                access_key_id,
                secret_access_key: secret,
                session_token: Secret::new(token),
                expiration: Timestamp::from_millis(claims.expires),
            },
            assumed_role_id: format!("{}:{session_name}", role.id),
            arn: format!(
                "arn:aws:sts::{}:assumed-role/{}/{session_name}",
                claims.account, role.name
            ),
            packed_policy_size: packed,
            source_identity: claims.source_identity,
        })
    }

    /// Everything of [`Sts::assume`] but the sealing: the request checked and decided, and the
    /// session it would start (its claims, without an access key or secret). With `explain`,
    /// each action's decision is explained (the access graph's reasons); assume itself does not
    /// pay for that.
    pub(crate) async fn decide(
        self,
        assumer: Assumer<'_>,
        input: &AssumeRole,
        explain: bool,
    ) -> Result<Decided, Error> {
        let caller = match assumer {
            Assumer::Caller(caller) => Some(caller),
            Assumer::Service(_) | Assumer::WebIdentity(_) => None,
        };
        let web_identity = match assumer {
            Assumer::WebIdentity(identity) => Some(identity),
            _ => None,
        };
        if let Some(caller) = caller
            && caller.identity() == &Identity::Root
        {
            return Err(Error::AccessDenied(
                "Roles may not be assumed by root accounts.".into(),
            ));
        }
        let inherited = caller.and_then(Caller::session);
        let chained = caller.is_some_and(|c| matches!(c.identity(), Identity::Role { .. }));
        check_session_tags(input, inherited)?;
        let source_identity = match (
            inherited.and_then(|s| s.source_identity.clone()),
            input.source_identity.clone(),
        ) {
            (_, Some(passed)) if passed.to_ascii_lowercase().starts_with("aws:") => {
                // The model's pattern `[\w+=,.@-]*` already refuses the colon; a domain caller
                // (EKS Auth, tests) gets the same text.
                return Err(Error::Validation(format!(
                    "1 validation error detected: Value '{passed}' at 'sourceIdentity' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"
                )));
            }
            (Some(kept), Some(passed)) if kept != passed => {
                return Err(Error::Validation(
                    "The source identity is already set for this assume role session".into(),
                ));
            }
            (kept, passed) => passed.or(kept),
        };
        let session_policy = match &input.policy {
            Some(text) => Some(
                self.core
                    .parse(text, ParseOptions::new(PolicyKind::Session))
                    .map_err(|e| Error::policy(&e))?,
            ),
            None => None,
        };
        for arn in &input.policy_arns {
            if policy_arn_parts(arn).is_none() {
                return Err(Error::Validation(format!(
                    "The policy ARN {arn} is not valid."
                )));
            }
        }

        // The role, and the decision.
        let (role_account, role) = self.role_by_arn(&input.role_arn).await?;
        let principal = match assumer {
            Assumer::Caller(caller) => caller.principal().clone(),
            Assumer::Service(name) => Principal::service(name),
            Assumer::WebIdentity(identity) => Principal::web_identity(&identity.provider_arn),
        };
        let denied = |action: &str, request: &Request<'_>, decision: &podid_policy::Decision| {
            if web_identity.is_some() {
                // AWS names neither the provider nor the role to a web identity.
                return Error::AccessDenied(format!("Not authorized to perform {action}"));
            }
            Error::AccessDenied(
                decision
                    .access_denied_message(request, false)
                    .unwrap_or_else(|| {
                        format!(
                            "User: {} is not authorized to perform: {action} on resource: {}",
                            principal.display_arn(),
                            input.role_arn
                        )
                    }),
            )
        };
        let Some(role) = role else {
            if web_identity.is_some() {
                return Err(Error::AccessDenied(
                    "Not authorized to perform sts:AssumeRoleWithWebIdentity".into(),
                ));
            }
            return Err(Error::AccessDenied(format!(
                "User: {} is not authorized to perform: sts:AssumeRole on resource: {}",
                principal.display_arn(),
                input.role_arn
            )));
        };
        let mut trust = (*self
            .core
            .parse(
                &role.trust_policy,
                ParseOptions::simulation(PolicyKind::Trust),
            )
            .map_err(|e| {
                Error::ServiceFailure(format!("a stored trust policy is invalid: {e}"))
            })?)
        .clone();
        trust.apply_bindings(&role.trust_bindings);
        let set = caller
            .map_or_else(PolicySet::new, |c| c.policies().clone())
            .with(
                PolicyKind::Trust,
                NamedPolicy::new("role trust policy", trust),
            );
        let mut context = self.assume_context(caller, input, &role, source_identity.as_deref());
        if let Some(identity) = web_identity {
            identity.add_keys(&mut context);
        }
        let resource = role.arn.as_str();
        let ownership = Ownership::of(&principal, Some(role_account));
        let mut actions = vec![if web_identity.is_some() {
            "sts:AssumeRoleWithWebIdentity"
        } else {
            "sts:AssumeRole"
        }];
        // Passed tags, and transitive tags inherited down a chain, both tag the session.
        if !input.tags.is_empty() || inherited.is_some_and(|s| !s.transitive_tags.is_empty()) {
            actions.push("sts:TagSession");
        }
        // A source identity, passed or inherited down a chain, needs its own permission.
        if source_identity.is_some() {
            actions.push("sts:SetSourceIdentity");
        }
        let mut explanations = Vec::new();
        for action in actions {
            let request =
                Request::new(&principal, action, resource, &context).with_ownership(ownership);
            let decision = set.evaluate(&request);
            if !decision.is_allowed() {
                return Err(denied(action, &request, &decision));
            }
            if explain {
                explanations.push((action, decision.explain(&set, &request)));
            }
            if let Some(audit) = caller.and_then(Caller::audit) {
                audit.note_decision(&set, &decision, action, resource);
            }
        }

        // Duration: the role's maximum first, then the chaining limit (AWS's order).
        let duration = input.duration_seconds.unwrap_or(3600);
        // A service principal (EKS Pod Identity) sets its own lifetime, as AWS services do
        // (EKS Pod Identity credentials last six hours whatever the role's maximum).
        if !matches!(assumer, Assumer::Service(_)) && duration > role.max_session_duration {
            return Err(Error::Validation(
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
                    .into(),
            ));
        }
        if chained && duration > CHAINED_MAX_SECONDS {
            return Err(Error::Validation(
                "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.".into(),
            ));
        }

        // The new session: inherited transitive tags, then the passed ones.
        let mut tags: Vec<(String, String)> = inherited
            .map(|s| s.transitive_tags.clone())
            .unwrap_or_default();
        let mut transitive_keys: Vec<String> = tags.iter().map(|(k, _)| k.clone()).collect();
        tags.extend(input.tags.iter().map(|t| (t.key.clone(), t.value.clone())));
        transitive_keys.extend(input.transitive_tag_keys.iter().cloned());
        let packed = packed_size(session_policy.as_deref(), input)?;
        let now = self.core.now();
        let claims = Claims {
            access_key_id: String::new(),
            secret: String::new(),
            account: role_account.to_string(),
            principal: SessionPrincipal::Role {
                arn: role.arn.clone(),
                id: role.id.clone(),
                session: input.session_name.clone(),
            },
            tags,
            transitive_keys,
            policy: input.policy.clone(),
            policy_arns: input.policy_arns.clone(),
            source_identity,
            issued: now,
            expires: now + i64::from(duration) * 1000,
            depth: if chained {
                inherited.map_or(1, |s| s.depth + 1)
            } else {
                0
            },
        };
        Ok(Decided {
            claims,
            role,
            packed,
            explanations,
        })
    }

    /// GetSessionToken: temporary credentials with the calling user's permissions.
    pub async fn get_session_token(
        self,
        caller: &Caller,
        duration_seconds: Option<u32>,
    ) -> Result<SessionCredentials, Error> {
        if caller.session().is_some() {
            return Err(Error::AccessDenied(
                "Cannot call GetSessionToken with session credentials".into(),
            ));
        }
        let (principal, duration) = match caller.identity() {
            Identity::User { name } => (
                SessionPrincipal::User { name: name.clone() },
                duration_seconds.unwrap_or(43_200),
            ),
            // Root sessions last at most an hour; longer requests are cut short, not refused.
            Identity::Root => (
                SessionPrincipal::Root,
                duration_seconds.unwrap_or(3600).min(3600),
            ),
            Identity::Role { .. } => {
                return Err(Error::AccessDenied(
                    "Cannot call GetSessionToken with session credentials".into(),
                ));
            }
        };
        let now = self.core.now();
        let access_key_id = self.core.ids.access_key_id("ASIA");
        let secret = self.core.ids.secret_access_key();
        let claims = Claims {
            access_key_id: access_key_id.clone(),
            secret: secret.expose().clone(),
            account: caller.account().to_string(),
            principal,
            tags: Vec::new(),
            transitive_keys: Vec::new(),
            policy: None,
            policy_arns: Vec::new(),
            source_identity: None,
            issued: now,
            expires: now + i64::from(duration) * 1000,
            depth: 0,
        };
        let token = self.core.seal_claims(&claims).await?;
        Ok(SessionCredentials {
            access_key_id,
            secret_access_key: secret,
            session_token: Secret::new(token),
            expiration: Timestamp::from_millis(claims.expires),
        })
    }

    /// GetCallerIdentity: never denied.
    pub fn caller_identity(self, caller: &Caller) -> CallerIdentity {
        CallerIdentity {
            user_id: caller.user_id(),
            account: caller.account().to_string(),
            arn: caller.arn().to_owned(),
        }
    }

    /// The account and role an ARN names, if podid hosts them (`None` for a role that does
    /// not exist, so that AssumeRole is denied without saying which).
    async fn role_by_arn(self, arn: &str) -> Result<(AccountId, Option<RoleRecord>), Error> {
        let invalid = || Error::Validation(format!("{arn} is invalid"));
        let rest = arn.strip_prefix("arn:aws:iam::").ok_or_else(invalid)?;
        let (account, resource) = rest.split_once(':').ok_or_else(invalid)?;
        let account: AccountId = account.parse().map_err(|_| invalid())?;
        let name = resource
            .strip_prefix("role/")
            .and_then(|r| r.rsplit('/').next())
            .filter(|n| !n.is_empty())
            .ok_or_else(invalid)?;
        let role = self
            .core
            .load::<RoleRecord>(ns::ROLE, &entity_key(&account.to_string(), name))
            .await?
            .map(|(r, _)| r)
            .filter(|r| r.arn == arn);
        Ok((account, role))
    }

    /// The request context of an AssumeRole.
    fn assume_context(
        self,
        caller: Option<&Caller>,
        input: &AssumeRole,
        role: &RoleRecord,
        source_identity: Option<&str>,
    ) -> Context {
        let mut context = match caller {
            Some(caller) => self.core.caller_context(caller),
            None => {
                let now = self.core.clock.now();
                Context::new()
                    .with("aws:CurrentTime", now.to_iso8601())
                    .with("aws:EpochTime", now.as_secs().to_string())
            }
        };
        // The role's tags, with inherited transitive tags over them.
        let mut resource_tags: Vec<(String, String)> = role
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect();
        if let Some(session) = caller.and_then(Caller::session) {
            for (key, value) in &session.transitive_tags {
                resource_tags.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
                resource_tags.push((key.clone(), value.clone()));
            }
        }
        for (key, value) in &resource_tags {
            context.insert(&format!("aws:ResourceTag/{key}"), value.as_str());
        }
        if !input.tags.is_empty() {
            for tag in &input.tags {
                context.insert(&format!("aws:RequestTag/{}", tag.key), tag.value.as_str());
            }
            context.insert(
                "aws:TagKeys",
                ContextValue::Many(input.tags.iter().map(|t| t.key.clone()).collect()),
            );
        }
        if !input.transitive_tag_keys.is_empty() {
            context.insert(
                "sts:TransitiveTagKeys",
                ContextValue::Many(input.transitive_tag_keys.clone()),
            );
        }
        if let Some(external_id) = &input.external_id {
            context.insert("sts:ExternalId", external_id.as_str());
        }
        context.insert("sts:RoleSessionName", input.session_name.as_str());
        if let Some(source) = source_identity {
            context.insert("sts:SourceIdentity", source);
        }
        context
    }
}

impl Core {
    /// Opens the session token of a request signed with temporary credentials.
    ///
    /// # Errors
    /// `InvalidClientTokenId` when the token is not one of this podid's (forged, tampered with,
    /// sealed by another server) or does not belong to `access_key_id`; `ExpiredToken` when the
    /// session has expired.
    pub async fn open_session(
        &self,
        token: &str,
        access_key_id: &str,
    ) -> Result<OpenedSession, Error> {
        let claims = self.open_claims(token).await.map_err(|_| invalid_token())?;
        if !podid_types::constant_time_eq(claims.access_key_id.as_bytes(), access_key_id.as_bytes())
        {
            return Err(invalid_token());
        }
        if self.now() >= claims.expires {
            return Err(Error::ExpiredToken(
                "The security token included in the request is expired".into(),
            ));
        }
        Ok(OpenedSession { claims })
    }

    /// The caller a verified session authenticates: a role session with the role's current
    /// policies, its session policies and its tags; or a user's GetSessionToken session.
    pub async fn session_caller(&self, session: &OpenedSession) -> Result<Caller, Error> {
        let claims = &session.claims;
        let account: AccountId = claims.account.parse().map_err(|_| invalid_token())?;
        let info = SessionInfo {
            issued: Timestamp::from_millis(claims.issued),
            expires: Timestamp::from_millis(claims.expires),
            source_identity: claims.source_identity.clone(),
            transitive_tags: claims
                .tags
                .iter()
                .filter(|(k, _)| {
                    claims
                        .transitive_keys
                        .iter()
                        .any(|t| t.eq_ignore_ascii_case(k))
                })
                .cloned()
                .collect(),
            depth: claims.depth,
        };
        match &claims.principal {
            SessionPrincipal::Root => Ok(Caller::root(account).into_session(info)),
            SessionPrincipal::User { name } => {
                let key = crate::records::AccessKeyRecord {
                    id: claims.access_key_id.clone(),
                    account: claims.account.clone(),
                    user: name.clone(),
                    sealed_secret: String::new(),
                    status: "Active".into(),
                    created: claims.issued,
                };
                let caller = self.caller(&key).await?;
                Ok(caller.into_session(info))
            }
            SessionPrincipal::Role { arn, id, session } => {
                let role_name = arn.rsplit('/').next().unwrap_or_default();
                let session_arn =
                    format!("arn:aws:sts::{account}:assumed-role/{role_name}/{session}");
                let principal =
                    Principal::assumed_role(&session_arn, arn, id).map_err(|_| invalid_token())?;
                // The role as it is now: deleted (or re-created, with a new id), it grants nothing.
                // A session of a deleted (or deleted and re-created) role is no longer valid.
                let role = self
                    .load::<RoleRecord>(ns::ROLE, &entity_key(&claims.account, role_name))
                    .await?
                    .map(|(r, _)| r)
                    .filter(|r| &r.id == id)
                    .ok_or_else(invalid_token)?;
                let mut policies = self.policy_set(&claims.account, &role.policies).await?;
                policies = self.with_session_policies(policies, claims).await?;
                let mut tags: Vec<(String, String)> = role
                    .tags
                    .iter()
                    .map(|t| (t.key.clone(), t.value.clone()))
                    .collect();
                for (key, value) in &claims.tags {
                    tags.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
                    tags.push((key.clone(), value.clone()));
                }
                Ok(Caller::from_parts(
                    account,
                    session_arn,
                    Identity::Role {
                        name: role_name.to_owned(),
                        session: session.clone(),
                    },
                    principal,
                    policies,
                    tags,
                    Some(info),
                ))
            }
        }
    }

    /// Adds a session's inline and managed session policies to `set`. A managed session policy
    /// that no longer exists contributes nothing, so it allows nothing either.
    async fn with_session_policies(
        &self,
        mut set: PolicySet,
        claims: &Claims,
    ) -> Result<PolicySet, Error> {
        if claims.policy.is_none() && claims.policy_arns.is_empty() {
            return Ok(set);
        }
        let options = ParseOptions::simulation(PolicyKind::Session);
        let mut any = false;
        if let Some(text) = &claims.policy
            && let Ok(policy) = self.parse(text, options)
        {
            set = set.session(NamedPolicy::new("session policy", policy));
            any = true;
        }
        for arn in &claims.policy_arns {
            if let Some(document) = self.managed_document(&claims.account, arn).await?
                && let Ok(policy) = self.parse(&document, options)
            {
                set = set.session(NamedPolicy::new(arn.as_str(), policy));
                any = true;
            }
        }
        if !any {
            // Session policies were given, and none can be read: the session may do nothing.
            if let Ok(nothing) = self.parse(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#,
                options,
            ) {
                set = set.session(NamedPolicy::new("session policy", nothing));
            }
        }
        Ok(set)
    }
}

impl Caller {
    fn into_session(mut self, info: SessionInfo) -> Self {
        self.set_session(info);
        self
    }
}

/// Checks session tags: at most 50, no `aws:` prefix, keys unique case-insensitively,
/// transitive keys among the tags, no inherited transitive key passed again.
fn check_session_tags(input: &AssumeRole, inherited: Option<&SessionInfo>) -> Result<(), Error> {
    let inherited_count = inherited.map_or(0, |s| s.transitive_tags.len());
    if input.tags.len() + inherited_count > MAX_SESSION_TAGS {
        return Err(Error::Validation(format!(
            "1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to {MAX_SESSION_TAGS}"
        )));
    }
    for (i, tag) in input.tags.iter().enumerate() {
        if tag.key.to_ascii_lowercase().starts_with("aws:")
            || tag.value.to_ascii_lowercase().starts_with("aws:")
        {
            return Err(Error::InvalidParameterValue(
                "Tag keys and values cannot start with the prefix 'aws:'.".into(),
            ));
        }
        if input
            .tags
            .iter()
            .skip(i + 1)
            .any(|other| other.key.eq_ignore_ascii_case(&tag.key))
        {
            return Err(Error::InvalidParameterValue(
                "Duplicate tag keys found. Please note that Tag keys are case insensitive.".into(),
            ));
        }
        if let Some(session) = inherited
            && session
                .transitive_tags
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(&tag.key))
        {
            return Err(Error::InvalidParameterValue(
                    "One of the specified transitive tag keys can't be set because it conflicts with a transitive tag key from the calling session.".into(),
                ));
        }
    }
    for key in &input.transitive_tag_keys {
        if !input.tags.iter().any(|t| t.key.eq_ignore_ascii_case(key)) {
            return Err(Error::InvalidParameterValue(
                "The specified transitive tag key must be included in the requested tags.".into(),
            ));
        }
    }
    Ok(())
}

/// `PackedPolicySize`: how full the packed session policies and tags are, in percent (rounded
/// up), or `None` when neither was passed. podid packs the minified inline policy, the policy
/// ARNs and the tags' keys and values into at most 4,096 bytes (AWS compresses into a limit it
/// does not publish; the numbers differ, the rules agree: over 100 is `PackedPolicyTooLarge`).
fn packed_size(
    policy: Option<&podid_policy::Policy>,
    input: &AssumeRole,
) -> Result<Option<u32>, Error> {
    if policy.is_none() && input.policy_arns.is_empty() && input.tags.is_empty() {
        return Ok(None);
    }
    let policy_chars = input
        .policy
        .as_deref()
        .map_or(0, |p| p.chars().filter(|c| !c.is_whitespace()).count());
    let arn_chars: usize = input.policy_arns.iter().map(String::len).sum();
    if policy_chars > SESSION_POLICY_CHARS {
        return Err(Error::PackedPolicyTooLarge(format!(
            "Packed policy consumes {}% of allotted space, please use smaller policy.",
            (policy_chars + arn_chars) * 100 / SESSION_POLICY_CHARS
        )));
    }
    let tag_bytes: usize = input
        .tags
        .iter()
        .map(|t| t.key.len() + t.value.len() + 2)
        .sum();
    let policy_percent = (policy_chars + arn_chars).div_ceil(PACKED_LIMIT / 100);
    let tag_percent = tag_bytes.div_ceil(PACKED_LIMIT / 100);
    if tag_percent > 100 {
        return Err(Error::PackedPolicyTooLarge(format!(
            "Packed size of session tags consumes {tag_percent}% of allotted space."
        )));
    }
    let total = policy_percent + tag_percent;
    if total > 100 {
        return Err(Error::PackedPolicyTooLarge(format!(
            "Packed policy consumes {total}% of allotted space, please use smaller policy."
        )));
    }
    Ok(Some(u32::try_from(total).unwrap_or(100)))
}

fn invalid_token() -> Error {
    Error::InvalidClientTokenId("The security token included in the request is invalid.".into())
}

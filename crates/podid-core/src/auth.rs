//! Who is calling (authentication by access key) and whether they may (authorization of every
//! call by the policy engine).

use podid_policy::{
    Context, ContextValue, NamedPolicy, Ownership, ParseOptions, PolicyKind, PolicySet, Principal,
    Request,
};
use podid_types::{AccountId, Arn, Secret, Timestamp};

use crate::audit::RequestAudit;
use crate::error::Error;
use crate::names::{entity_key, policy_arn_parts};
use crate::records::{AccessKeyRecord, PolicyHolder, PolicyRecord, UserRecord, ns};
use crate::{Core, catalogue};

/// What the caller authenticated as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// The account's root user.
    Root,
    /// An IAM user (with its access key, or with a session from GetSessionToken).
    User {
        /// The user's name.
        name: String,
    },
    /// A role session.
    Role {
        /// The role's name.
        name: String,
        /// The session's name.
        session: String,
    },
}

/// The temporary credentials a caller signed with.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    /// When the session was issued (`aws:TokenIssueTime`).
    pub issued: Timestamp,
    /// When the session expires.
    pub expires: Timestamp,
    /// The source identity (`aws:SourceIdentity`), set once and kept across role chaining.
    pub source_identity: Option<String>,
    /// The transitive session tags, which pass to the sessions this one assumes.
    pub transitive_tags: Vec<(String, String)>,
    /// How many role sessions assumed roles on the way to this one.
    pub depth: u32,
}

/// Facts about the request that conditions may test.
#[derive(Clone, Debug, Default)]
pub struct RequestInfo {
    /// The caller's IP address (`aws:SourceIp`).
    pub source_ip: Option<String>,
    /// Whether the request came over TLS (`aws:SecureTransport`).
    pub secure_transport: bool,
    /// The region the request was signed for (`aws:RequestedRegion`).
    pub region: Option<String>,
    /// The request's audit, when the call is one that is audited.
    pub audit: Option<RequestAudit>,
}

/// An authenticated caller, with the policies that decide what it may do.
#[derive(Clone, Debug)]
pub struct Caller {
    account: AccountId,
    arn: String,
    identity: Identity,
    principal: Principal,
    policies: PolicySet,
    tags: Vec<(String, String)>,
    session: Option<SessionInfo>,
    info: RequestInfo,
}

impl Caller {
    /// The caller's unique id (`aws:userid`): `AIDA…` for a user, `AROA…:SESSION` for a role
    /// session, the account id for root.
    pub fn user_id(&self) -> String {
        match &self.identity {
            Identity::Root => self.account.to_string(),
            _ => self.principal.user_id().unwrap_or_default().to_owned(),
        }
    }

    /// The temporary credentials the caller signed with, if any.
    pub fn session(&self) -> Option<&SessionInfo> {
        self.session.as_ref()
    }

    /// The caller's tags as `aws:PrincipalTag` sees them: a user's tags, or a role's tags with
    /// the session's tags over them.
    pub fn tags(&self) -> &[(String, String)] {
        &self.tags
    }

    pub(crate) fn policies(&self) -> &PolicySet {
        &self.policies
    }

    pub(crate) fn from_parts(
        account: AccountId,
        arn: String,
        identity: Identity,
        principal: Principal,
        policies: PolicySet,
        tags: Vec<(String, String)>,
        session: Option<SessionInfo>,
    ) -> Self {
        Self {
            account,
            arn,
            identity,
            principal,
            policies,
            tags,
            session,
            info: RequestInfo::default(),
        }
    }

    pub(crate) fn set_session(&mut self, session: SessionInfo) {
        self.session = Some(session);
    }

    /// The caller's account.
    pub fn account(&self) -> AccountId {
        self.account
    }

    /// The caller's ARN.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// What the caller is.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The caller as the policy engine sees it.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The audit of the current request, if it is audited.
    pub fn audit(&self) -> Option<&RequestAudit> {
        self.info.audit.as_ref()
    }

    /// The caller with facts about the current request.
    #[must_use]
    pub fn with_request(mut self, info: RequestInfo) -> Self {
        self.info = info;
        self
    }

    /// The root user of `account`.
    pub fn root(account: AccountId) -> Self {
        Self::from_parts(
            account,
            format!("arn:aws:iam::{account}:root"),
            Identity::Root,
            Principal::root(account),
            PolicySet::new(),
            Vec::new(),
            None,
        )
    }
}

impl Core {
    /// The active access key `id` and its secret, if there is one.
    pub async fn access_key(
        &self,
        id: &str,
    ) -> Result<Option<(AccessKeyRecord, Secret<String>)>, Error> {
        let Some((record, _)) = self.load::<AccessKeyRecord>(ns::ACCESS_KEY, id).await? else {
            return Ok(None);
        };
        if record.status != "Active" {
            return Ok(None);
        }
        let secret = self.master.open(&record.sealed_secret).map_err(|e| {
            tracing::error!(error = %e, key = %id, "cannot open an access key's secret");
            Error::ServiceFailure(e.to_string())
        })?;
        let secret = String::from_utf8(secret.expose().clone()).unwrap_or_default();
        Ok(Some((record, Secret::new(secret))))
    }

    /// The caller that an access key authenticates: its user, with the user's policies.
    pub async fn caller(&self, key: &AccessKeyRecord) -> Result<Caller, Error> {
        let account: AccountId = key.account.parse().map_err(|_| {
            Error::ServiceFailure(format!("access key {} has a malformed account", key.id))
        })?;
        let (user, _) = self
            .load::<UserRecord>(ns::USER, &entity_key(&key.account, &key.user))
            .await?
            .ok_or_else(|| {
                // The user is gone (a session of a deleted user, say).
                Error::InvalidClientTokenId(
                    "The security token included in the request is invalid.".into(),
                )
            })?;
        let principal = Principal::user(&user.arn, &user.id)
            .map_err(|e| Error::ServiceFailure(e.to_string()))?;
        let policies = self.policy_set(&key.account, &user.policies).await?;
        Ok(Caller::from_parts(
            account,
            user.arn.clone(),
            Identity::User {
                name: user.name.clone(),
            },
            principal,
            policies,
            user.tags
                .iter()
                .map(|t| (t.key.clone(), t.value.clone()))
                .collect(),
            None,
        ))
    }

    /// The identity policies and boundary of a user or role.
    pub(crate) async fn policy_set(
        &self,
        account: &str,
        holder: &PolicyHolder,
    ) -> Result<PolicySet, Error> {
        let mut set = PolicySet::new();
        let identity = ParseOptions::simulation(PolicyKind::Identity);
        for (name, document) in &holder.inline {
            if let Ok(policy) = self.parse(document, identity) {
                set = set.identity(NamedPolicy::new(format!("inline:{name}"), policy));
            }
        }
        for arn in &holder.attached {
            if let Some(document) = self.managed_document(account, arn).await?
                && let Ok(policy) = self.parse(&document, identity)
            {
                set = set.identity(NamedPolicy::new(arn.as_str(), policy));
            }
        }
        if let Some(arn) = &holder.boundary
            && let Some(document) = self.managed_document(account, arn).await?
            && let Ok(policy) =
                self.parse(&document, ParseOptions::simulation(PolicyKind::Boundary))
        {
            set = set.boundary(NamedPolicy::new(arn.as_str(), policy));
        }
        Ok(set)
    }

    /// The default version's document of a managed policy (customer or AWS).
    pub(crate) async fn managed_document(
        &self,
        account: &str,
        arn: &str,
    ) -> Result<Option<String>, Error> {
        let Some((owner, _, name)) = policy_arn_parts(arn) else {
            return Ok(None);
        };
        if owner == "aws" {
            return Ok(catalogue::find(arn).map(|p| p.document.to_owned()));
        }
        if owner != account {
            return Ok(None);
        }
        Ok(self
            .load::<PolicyRecord>(ns::POLICY, &entity_key(owner, name))
            .await?
            .filter(|(p, _)| p.arn == arn)
            .and_then(|(p, _)| p.default_document().map(|v| v.document.clone())))
    }

    /// The request context every request of `caller` has: time, transport, source address,
    /// principal tags and, for temporary credentials, the session's keys.
    pub(crate) fn caller_context(&self, caller: &Caller) -> Context {
        let now = self.clock.now();
        let mut context = Context::new()
            .with("aws:CurrentTime", now.to_iso8601())
            .with("aws:EpochTime", now.as_secs().to_string())
            .with(
                "aws:SecureTransport",
                if caller.info.secure_transport {
                    "true"
                } else {
                    "false"
                },
            );
        if let Some(ip) = &caller.info.source_ip {
            context.insert("aws:SourceIp", ip.as_str());
        }
        if let Some(region) = &caller.info.region {
            context.insert("aws:RequestedRegion", region.as_str());
        }
        for (key, value) in &caller.tags {
            context.insert(&format!("aws:PrincipalTag/{key}"), value.as_str());
        }
        if let Some(session) = &caller.session {
            context.insert("aws:TokenIssueTime", session.issued.to_iso8601());
            context.insert("aws:MultiFactorAuthPresent", "false");
            if let Some(source) = &session.source_identity {
                context.insert("aws:SourceIdentity", source.as_str());
            }
        }
        context
    }

    /// Checks that `caller` may perform `action` on `resource`, with `extra` request-context keys.
    pub(crate) fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        extra: &[(String, ContextValue)],
    ) -> Result<(), Error> {
        let resource_account = resource
            .parse::<Arn>()
            .ok()
            .and_then(|a| a.account().parse::<AccountId>().ok());
        self.authorize_owned(caller, action, resource, resource_account, extra)
    }

    /// Like [`Core::authorize`], with the resource taken as `resource_account`'s. For a resource
    /// podid does not hold (a role of an upstream AWS account), give the caller's own account:
    /// that account number means nothing here, so the caller's own policies decide.
    pub(crate) fn authorize_owned(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        resource_account: Option<AccountId>,
        extra: &[(String, ContextValue)],
    ) -> Result<(), Error> {
        if caller.identity == Identity::Root {
            // Root may do anything in its own account and nothing in others.
            return if resource_account.is_none_or(|a| a == caller.account) {
                if let Some(audit) = caller.audit() {
                    audit.note_reason(format!(
                        "{action} on {resource}: allowed for the account's root user"
                    ));
                }
                Ok(())
            } else {
                Err(Error::AccessDenied(format!(
                    "User: {} is not authorized to perform: {action} on resource: {resource}",
                    caller.arn
                )))
            };
        }
        let mut context = self.caller_context(caller);
        for (key, value) in extra {
            context.insert(key, value.clone());
        }
        let ownership = Ownership::of(&caller.principal, resource_account);
        let request =
            Request::new(&caller.principal, action, resource, &context).with_ownership(ownership);
        let decision = caller.policies.evaluate(&request);
        if decision.is_allowed() {
            if let Some(audit) = caller.audit() {
                audit.note_decision(&caller.policies, &decision, action, resource);
            }
            Ok(())
        } else {
            let message = decision
                .access_denied_message(&request, true)
                .unwrap_or_else(|| {
                    format!(
                        "User: {} is not authorized to perform: {action} on resource: {resource}",
                        caller.arn
                    )
                });
            Err(Error::AccessDenied(message))
        }
    }
}

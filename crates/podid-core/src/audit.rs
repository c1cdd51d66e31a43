//! The audit trail: one durable record for every call that changes something or issues
//! credentials, and for every refusal of one, shaped like a CloudTrail event.
//!
//! - A change's record is written in the same store transaction as the change
//!   ([`Core::commit_as`]): there is no change without its record, nor a record of a change
//!   that did not happen.
//! - Any other audited call (a credential issuance, a refusal, a change that wrote nothing) is
//!   recorded by [`Audit::finish`] before the answer leaves the server; when that write fails,
//!   the call fails and its credentials are never returned.
//! - Records are kept under keys that start with their time, so a time range is one ordered scan
//!   and retention ([`Audit::prune`]) deletes from the oldest.
//! - Secrets never enter a record: request parameters and response elements pass through
//!   [`redacted`], which hides tokens, secret keys, passwords and assertions by name.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use podid_policy::{Decision, PolicySet};
use podid_store::{Condition, Op, Store, StoreError};
use podid_types::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::auth::{Caller, Identity};
use crate::error::Error;
use crate::{Core, encode};

/// The store namespace of audit records.
pub(crate) const NS: &str = "audit";

/// The longest string kept in a record's parameters; longer ones (policy documents) are cut
/// with a note of their length.
const MAX_STRING: usize = 8 * 1024;

/// What replaces a secret in a record, as CloudTrail writes it.
pub const HIDDEN: &str = "HIDDEN_DUE_TO_SECURITY_REASONS";

/// The most records one page returns.
pub const MAX_PAGE: usize = 1000;

/// The most records one lookup reads before it answers (with a token to go on), so that a
/// filter matching little never scans the whole trail in one request.
const MAX_SCANNED: usize = 20_000;

/// Records deleted per transaction when pruning.
const PRUNE_BATCH: usize = 1000;

/// The most records one group commit writes.
const MAX_GROUP: usize = 512;

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It did what was asked.
    Success,
    /// Authorization refused it (`AccessDenied`, `AccessDeniedException`).
    Denied,
    /// Any other error.
    Failed,
}

impl Outcome {
    /// `success`, `denied` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Denied => "denied",
            Self::Failed => "failed",
        }
    }

    /// The outcome named `text`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "success" => Some(Self::Success),
            "denied" => Some(Self::Denied),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }

    /// The outcome of an error with AWS code `code`.
    pub fn of_error(code: &str) -> Self {
        if code.starts_with("AccessDenied") {
            Self::Denied
        } else {
            Self::Failed
        }
    }
}

/// Who made the call, as CloudTrail's `userIdentity` says it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    /// `Root`, `IAMUser`, `AssumedRole` or `WebIdentityUser`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The unique id (`AIDA…`, `AROA…:session`, the account id for root).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    /// The ARN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// The account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The access key the request was signed with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
}

/// One audit record: a CloudTrail event's fields, plus podid's `outcome`, `reasons` and
/// `cluster`. The JSON lines export writes these as they are stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// The request id (also in the response's `x-amzn-RequestId`).
    #[serde(rename = "eventID")]
    pub event_id: String,
    /// When the request arrived, ISO 8601 with milliseconds.
    pub event_time: String,
    /// `iam.amazonaws.com`, `sts.amazonaws.com`, `eks.amazonaws.com`, `eks-auth.amazonaws.com`.
    pub event_source: String,
    /// The operation.
    pub event_name: String,
    /// The region the request was signed for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_region: Option<String>,
    /// The client's address.
    #[serde(rename = "sourceIPAddress", skip_serializing_if = "Option::is_none")]
    pub source_ip_address: Option<String>,
    /// The client's `User-Agent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The caller, when it is known (a refused unsigned web identity call has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_identity: Option<UserIdentity>,
    /// The EKS cluster the call is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The request's parameters, secrets hidden.
    pub request_parameters: Value,
    /// What the call answered, secrets hidden; absent for failures and for changes recorded in
    /// their own transaction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_elements: Option<Value>,
    /// What the service found on the way (EKS Auth: the token's namespace, service account and
    /// pod, the association, the roles assumed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_event_data: Option<Value>,
    /// How it ended.
    pub outcome: Outcome,
    /// The error code, for a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The error message, for a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Why the engine allowed each authorization of the call: the statements that allowed it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// The accounts whose audit shows the record: the caller's and those of the roles it reached.
    pub accounts: Vec<String>,
}

/// What the server knows of a request when it arrives.
#[derive(Clone, Debug, Default)]
pub struct RequestEvent {
    /// The request id.
    pub request_id: String,
    /// When it arrived.
    pub time: Timestamp,
    /// `iam.amazonaws.com`, ...
    pub source: &'static str,
    /// The operation.
    pub name: String,
    /// The signed region.
    pub region: Option<String>,
    /// The client's address.
    pub source_ip: Option<String>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
    /// The access key the request was signed with.
    pub access_key_id: Option<String>,
    /// The EKS cluster the request is about.
    pub cluster: Option<String>,
    /// The parameters; [`RequestAudit::new`] hides their secrets.
    pub parameters: Value,
}

/// A request being audited: what the server knew when it arrived, and what the core adds as the
/// call runs. Cheap to clone; clones share what is added.
#[derive(Clone, Debug)]
pub struct RequestAudit {
    event: Arc<RequestEvent>,
    state: Arc<Mutex<AuditState>>,
}

#[derive(Debug, Default)]
struct AuditState {
    written: bool,
    reasons: Vec<String>,
    accounts: BTreeSet<String>,
    data: Map<String, Value>,
    identity: Option<UserIdentity>,
}

impl RequestAudit {
    /// Starts the audit of a request; the parameters' secrets are hidden here.
    pub fn new(mut event: RequestEvent) -> Self {
        event.parameters = redacted(std::mem::take(&mut event.parameters));
        Self {
            event: Arc::new(event),
            state: Arc::default(),
        }
    }

    /// What the server knew of the request.
    pub fn event(&self) -> &RequestEvent {
        &self.event
    }

    /// Whether the record was written with a change.
    pub fn written(&self) -> bool {
        self.state.lock().is_ok_and(|s| s.written)
    }

    /// Notes why the engine allowed `action` on `resource`.
    pub(crate) fn note_decision(
        &self,
        set: &PolicySet,
        decision: &Decision,
        action: &str,
        resource: &str,
    ) {
        let statements: Vec<String> = decision
            .matches()
            .iter()
            .filter(|m| m.effect == podid_policy::Effect::Allow)
            .filter_map(|m| set.statement(m))
            .map(|(policy, statement)| {
                let index = policy
                    .policy()
                    .statements()
                    .iter()
                    .position(|s| std::ptr::eq(s, statement))
                    .unwrap_or_default();
                match statement.sid() {
                    Some(sid) if !sid.is_empty() => {
                        format!("`{}` statement `{sid}`", policy.name())
                    }
                    _ => format!("`{}` statement {index}", policy.name()),
                }
            })
            .collect();
        let reason = if statements.is_empty() {
            format!("{action} on {resource}: allowed")
        } else {
            format!(
                "{action} on {resource}: allowed by {}",
                statements.join(", ")
            )
        };
        self.note_account_of(resource);
        self.note_reason(reason);
    }

    /// Notes a reason the call was allowed.
    pub(crate) fn note_reason(&self, reason: String) {
        if let Ok(mut state) = self.state.lock()
            && !state.reasons.contains(&reason)
        {
            state.reasons.push(reason);
        }
    }

    /// Notes a resource (an ARN) the call reached: its account's audit shows the record.
    pub fn note_account_of(&self, resource: &str) {
        let account = resource.split(':').nth(4).unwrap_or_default();
        if account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && let Ok(mut state) = self.state.lock()
        {
            state.accounts.insert(account.to_owned());
        }
    }

    /// Says who called, for a call without a signed caller (an unsigned web identity call, known
    /// by its token once the token is verified).
    pub fn set_identity(&self, identity: UserIdentity) {
        if let Ok(mut state) = self.state.lock() {
            state.identity = Some(identity);
        }
    }

    /// Adds `value` under `key` to the record's `additionalEventData`.
    pub(crate) fn add_data(&self, key: &str, value: Value) {
        if let Ok(mut state) = self.state.lock() {
            state.data.insert(key.to_owned(), redacted(value));
        }
    }

    fn key(&self) -> String {
        record_key(self.event.time, &self.event.request_id)
    }

    fn record(&self, caller: Option<&Caller>, ending: Ending<'_>) -> AuditRecord {
        let event = &*self.event;
        let (reasons, mut accounts, data, identity) = self
            .state
            .lock()
            .map(|s| {
                (
                    s.reasons.clone(),
                    s.accounts.clone(),
                    s.data.clone(),
                    s.identity.clone(),
                )
            })
            .unwrap_or_default();
        if let Some(caller) = caller {
            accounts.insert(caller.account().to_string());
        }
        let (outcome, response, error_code, error_message) = match ending {
            Ending::Success(response) => (
                Outcome::Success,
                response.map(|r| redacted(r.clone())),
                None,
                None,
            ),
            Ending::Failure { code, message } => (
                Outcome::of_error(code),
                None,
                Some(code.to_owned()),
                Some(message.to_owned()),
            ),
        };
        AuditRecord {
            event_id: event.request_id.clone(),
            event_time: event.time.to_iso8601_millis(),
            event_source: event.source.to_owned(),
            event_name: event.name.clone(),
            aws_region: event.region.clone(),
            source_ip_address: event.source_ip.clone(),
            user_agent: event.user_agent.clone(),
            user_identity: caller
                .map(|c| user_identity(c, event.access_key_id.clone()))
                .or(identity),
            cluster: event.cluster.clone(),
            request_parameters: event.parameters.clone(),
            response_elements: response,
            additional_event_data: (!data.is_empty()).then_some(Value::Object(data)),
            outcome,
            error_code,
            error_message,
            reasons,
            accounts: accounts.into_iter().collect(),
        }
    }
}

/// How an audited call ended.
#[derive(Clone, Copy, Debug)]
pub enum Ending<'a> {
    /// It succeeded, answering this (secrets are hidden before it is recorded).
    Success(Option<&'a Value>),
    /// It failed with this AWS code and message.
    Failure {
        /// The code.
        code: &'a str,
        /// The message.
        message: &'a str,
    },
}

/// A lookup of the trail.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    /// Records at or after this time.
    pub start: Option<Timestamp>,
    /// Records at or before this time.
    pub end: Option<Timestamp>,
    /// Records whose caller's ARN contains this.
    pub principal: Option<String>,
    /// Records about this cluster.
    pub cluster: Option<String>,
    /// Records with this outcome.
    pub outcome: Option<Outcome>,
    /// Records of this operation.
    pub event_name: Option<String>,
    /// At most this many records (1 to [`MAX_PAGE`]).
    pub max_results: usize,
    /// Where the previous page stopped.
    pub next_token: Option<String>,
}

/// One page of a lookup, oldest first.
#[derive(Clone, Debug, Default)]
pub struct AuditPage {
    /// The records.
    pub records: Vec<AuditRecord>,
    /// Where to go on, when the range may hold more.
    pub next_token: Option<String>,
}

/// The audit trail. A view of the [`Core`].
#[derive(Clone, Copy)]
pub struct Audit<'a> {
    pub(crate) core: &'a Core,
}

impl Audit<'_> {
    /// Records how an audited call ended, unless its change already carried the record. A
    /// failure to write fails the call ([`Error::ServiceFailure`]): for an issuance, its
    /// credentials must then not be returned.
    pub async fn finish(
        self,
        audit: &RequestAudit,
        caller: Option<&Caller>,
        ending: Ending<'_>,
    ) -> Result<(), Error> {
        if matches!(ending, Ending::Success(_)) && audit.written() {
            return Ok(());
        }
        let record = audit.record(caller, ending);
        self.core
            .audit_writer
            .write(&*self.core.store, Op::upsert(NS, audit.key(), encode(&record)))
            .await
            .map_err(|e| {
                tracing::error!(request_id = %audit.event.request_id, error = %e, "the audit record could not be written");
                Error::ServiceFailure(
                    "The request processing has failed because of an unknown error, exception or failure."
                        .into(),
                )
            })
    }

    /// The records `query` selects that `caller`'s account may see, oldest first. Authorized as
    /// `podid:ReadAudit` on `*`.
    pub async fn lookup(self, caller: &Caller, query: &AuditQuery) -> Result<AuditPage, Error> {
        self.core.authorize(caller, "podid:ReadAudit", "*", &[])?;
        let account = caller.account().to_string();
        let limit = query.max_results.clamp(1, MAX_PAGE);
        let end_key = query
            .end
            .map(|end| format!("{:013}/\u{10FFFF}", end.as_millis().max(0)));
        let mut after = match &query.next_token {
            Some(token) => Some(parse_token(token)?),
            None => query
                .start
                .map(|start| format!("{:013}", start.as_millis().max(0))),
        };
        let mut page = AuditPage::default();
        let mut scanned = 0usize;
        loop {
            let chunk = (limit - page.records.len()).clamp(100, 1000);
            let items = self
                .core
                .store
                .scan(NS, "", after.as_deref(), chunk)
                .await?;
            let exhausted = items.len() < chunk;
            for item in items {
                if end_key
                    .as_deref()
                    .is_some_and(|end| item.key.as_str() > end)
                {
                    return Ok(page);
                }
                scanned += 1;
                after = Some(item.key.clone());
                let Ok(record) = serde_json::from_str::<AuditRecord>(&item.value) else {
                    tracing::warn!(key = %item.key, "an audit record cannot be read; skipped");
                    continue;
                };
                if record.accounts.contains(&account) && query.selects(&record) {
                    page.records.push(record);
                    if page.records.len() == limit {
                        page.next_token = after.clone();
                        return Ok(page);
                    }
                }
            }
            if exhausted {
                return Ok(page);
            }
            if scanned >= MAX_SCANNED {
                page.next_token = after;
                return Ok(page);
            }
        }
    }

    /// Deletes the records older than `retention` (milliseconds) before now; how many.
    pub async fn prune(self, retention_millis: i64) -> Result<usize, Error> {
        let cutoff = format!("{:013}", (self.core.now() - retention_millis).max(0));
        let mut deleted = 0;
        loop {
            let items = self.core.store.scan(NS, "", None, PRUNE_BATCH).await?;
            let ops: Vec<Op> = items
                .into_iter()
                .take_while(|item| item.key.as_str() < cutoff.as_str())
                .map(|item| Op::Delete {
                    ns: NS,
                    key: item.key,
                    condition: Condition::Any,
                })
                .collect();
            if ops.is_empty() {
                return Ok(deleted);
            }
            let count = ops.len();
            self.core.store.commit(ops).await?;
            deleted += count;
            if count < PRUNE_BATCH {
                return Ok(deleted);
            }
        }
    }
}

impl AuditQuery {
    fn selects(&self, record: &AuditRecord) -> bool {
        let arn = record
            .user_identity
            .as_ref()
            .and_then(|u| u.arn.as_deref())
            .unwrap_or_default();
        self.principal.as_deref().is_none_or(|p| arn.contains(p))
            && self
                .cluster
                .as_deref()
                .is_none_or(|c| record.cluster.as_deref() == Some(c))
            && self.outcome.is_none_or(|o| record.outcome == o)
            && self
                .event_name
                .as_deref()
                .is_none_or(|n| record.event_name == n)
    }
}

impl Core {
    /// The audit trail.
    pub fn audit(&self) -> Audit<'_> {
        Audit { core: self }
    }

    /// Commits a change `caller` asked for, with the request's audit record in the same
    /// transaction.
    pub(crate) async fn commit_as(
        &self,
        caller: &Caller,
        mut ops: Vec<Op>,
    ) -> Result<(), podid_store::StoreError> {
        let audit = caller.audit();
        if let Some(audit) = audit {
            let record = audit.record(Some(caller), Ending::Success(None));
            ops.push(Op::upsert(NS, audit.key(), encode(&record)));
        }
        let change = crate::eks::carries_change(&ops);
        self.store.commit(ops).await?;
        if change {
            self.change_signal().notify_waiters();
        }
        if let Some(audit) = audit
            && let Ok(mut state) = audit.state.lock()
        {
            state.written = true;
        }
        Ok(())
    }
}

/// Writes the records of calls that change nothing (issuances, refusals) in groups: one store
/// transaction (one `fsync`, one PostgreSQL commit) for every record that arrived while the
/// previous group was being written, as databases group their commits. Each caller still waits
/// until its own record is durable.
///
/// No task of its own: the first caller to find no group in flight leads, writing its record
/// with every one waiting, then hands the lead to the next waiter (or gives it up). A leader whose
/// future is dropped hands the lead on as it goes, so the writer never stalls.
#[derive(Debug, Default)]
pub(crate) struct AuditWriter {
    state: Mutex<WriterState>,
}

#[derive(Debug, Default)]
struct WriterState {
    leading: bool,
    waiting: Vec<(Op, tokio::sync::oneshot::Sender<Turn>)>,
}

#[derive(Debug)]
enum Turn {
    /// The group with this waiter's record was written, or failed.
    Done(Result<(), StoreError>),
    /// This waiter leads now, with its own record.
    Lead(Op),
}

impl AuditWriter {
    /// Writes `op` durably, grouped with the others waiting (by the store itself when it groups
    /// commits: a second grouping would only add a hand-off).
    async fn write(&self, store: &dyn Store, op: Op) -> Result<(), StoreError> {
        if store.groups_commits() {
            return store.commit(vec![op]).await;
        }
        let (reply, turn) = tokio::sync::oneshot::channel();
        let leads = {
            let mut state = self.lock();
            if state.leading {
                state.waiting.push((op, reply));
                None
            } else {
                state.leading = true;
                Some(op)
            }
        };
        let own = match leads {
            Some(op) => op,
            None => match turn.await {
                Ok(Turn::Done(result)) => return result,
                Ok(Turn::Lead(op)) => op,
                Err(_) => {
                    return Err(StoreError::Unavailable(
                        "the audit write was interrupted".into(),
                    ));
                }
            },
        };
        let mut lead = Lead {
            writer: self,
            group: Vec::new(),
        };
        let mut ops = vec![own];
        {
            let mut state = self.lock();
            let take = state.waiting.len().min(MAX_GROUP - 1);
            for (op, reply) in state.waiting.drain(..take) {
                ops.push(op);
                lead.group.push(reply);
            }
        }
        let result = store.commit(ops).await;
        for reply in lead.group.drain(..) {
            let _ = reply.send(Turn::Done(result.clone()));
        }
        drop(lead);
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WriterState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Passes the lead to the first waiter whose call still waits, or gives it up.
    fn hand_on(&self) {
        let mut state = self.lock();
        while !state.waiting.is_empty() {
            let (op, reply) = state.waiting.remove(0);
            if reply.send(Turn::Lead(op)).is_ok() {
                return;
            }
            // That call is gone (its client left): nobody waits for its record.
        }
        state.leading = false;
    }
}

/// The lead of a group: when it ends (written, or the leader's future dropped), the waiters of
/// an unfinished group learn it failed, and the lead passes on.
struct Lead<'a> {
    writer: &'a AuditWriter,
    group: Vec<tokio::sync::oneshot::Sender<Turn>>,
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        for reply in self.group.drain(..) {
            let _ = reply.send(Turn::Done(Err(StoreError::Unavailable(
                "the audit write was interrupted".into(),
            ))));
        }
        self.writer.hand_on();
    }
}

/// The record's key: its time (13 digits of milliseconds, so that keys sort by time) and id.
fn record_key(time: Timestamp, request_id: &str) -> String {
    format!("{:013}/{request_id}", time.as_millis().max(0))
}

fn parse_token(token: &str) -> Result<String, Error> {
    let (digits, rest) = token.split_at_checked(13).unwrap_or_default();
    let valid = token.len() <= 200
        && digits.len() == 13
        && digits.bytes().all(|b| b.is_ascii_digit())
        && rest.len() > 1
        && rest.starts_with('/');
    if valid {
        Ok(token.to_owned())
    } else {
        Err(Error::InvalidParameter(
            "The nextToken is not one this server returned: start again without it.".into(),
        ))
    }
}

fn user_identity(caller: &Caller, access_key_id: Option<String>) -> UserIdentity {
    let kind = match caller.identity() {
        Identity::Root => "Root",
        Identity::User { .. } => "IAMUser",
        Identity::Role { .. } => "AssumedRole",
    };
    UserIdentity {
        kind: kind.into(),
        principal_id: Some(caller.user_id()),
        arn: Some(caller.arn().to_owned()),
        account_id: Some(caller.account().to_string()),
        access_key_id,
    }
}

/// `value` with every secret hidden (by member name: tokens, secret keys, passwords, SAML
/// assertions, private keys) and long strings cut.
pub fn redacted(mut value: Value) -> Value {
    redact(&mut value);
    value
}

/// [`redacted`] in place: no map is rebuilt.
fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if is_secret(key) {
                    *value = Value::String(HIDDEN.into());
                } else {
                    redact(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        Value::String(text) if text.len() > MAX_STRING => {
            let mut kept = String::with_capacity(MAX_STRING + 64);
            for c in text.chars() {
                if kept.len() + c.len_utf8() > MAX_STRING {
                    break;
                }
                kept.push(c);
            }
            *text = format!("{kept}… ({} characters in all)", text.chars().count());
        }
        _ => {}
    }
}

/// Whether a member of this name holds a secret (ASCII letters compared without case).
fn is_secret(name: &str) -> bool {
    let name = name.as_bytes();
    let contains = |needle: &str| {
        name.windows(needle.len())
            .any(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
    };
    let ends_with = |suffix: &str| {
        name.len() >= suffix.len()
            && name
                .get(name.len() - suffix.len()..)
                .is_some_and(|end| end.eq_ignore_ascii_case(suffix.as_bytes()))
    };
    contains("secret")
        || contains("password")
        || contains("assertion")
        || contains("privatekey")
        || ends_with("token")
        || name.eq_ignore_ascii_case(b"tokencode")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secret_names_match_without_case_and_without_allocating() {
        // The rule as first written: lower-case the name, then look for the words.
        let by_lowering = |name: &str| {
            let name = name.to_ascii_lowercase();
            name.contains("secret")
                || name.contains("password")
                || name.contains("assertion")
                || name.contains("privatekey")
                || name.ends_with("token")
                || name == "tokencode"
        };
        for name in [
            "SecretAccessKey",
            "x-SECRET",
            "PassWord",
            "SAMLAssertion",
            "PrivateKeyPem",
            "SessionToken",
            "token",
            "TOKEN",
            "TokenCode",
            "tokencodes",
            "Tokens",
            "tok",
            "RoleArn",
            "",
            "é-token",
            "tokené",
            "sécret",
            "Secre",
            "ssecret",
            "AccessKeyId",
            "nextToken",
            "passwor",
            "ToKeN",
        ] {
            assert_eq!(is_secret(name), by_lowering(name), "{name}");
        }
    }

    #[test]
    fn secrets_are_hidden_by_name_at_any_depth() {
        let value = redacted(json!({
            "RoleArn": "arn:aws:iam::111122223333:role/x",
            "WebIdentityToken": "eyJ...",
            "Credentials": {"AccessKeyId": "ASIA1", "SecretAccessKey": "s", "SessionToken": "t"},
            "credentials": {"secretAccessKey": "s", "sessionToken": "t"},
            "token": "eyJ...",
            "items": [{"Password": "p"}],
        }));
        assert_eq!(value["RoleArn"], "arn:aws:iam::111122223333:role/x");
        assert_eq!(value["Credentials"]["AccessKeyId"], "ASIA1");
        for hidden in [
            &value["WebIdentityToken"],
            &value["Credentials"]["SecretAccessKey"],
            &value["Credentials"]["SessionToken"],
            &value["credentials"]["secretAccessKey"],
            &value["credentials"]["sessionToken"],
            &value["token"],
            &value["items"][0]["Password"],
        ] {
            assert_eq!(hidden, HIDDEN);
        }
    }

    #[test]
    fn long_strings_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_STRING);
        let Value::String(cut) = redacted(Value::String(long)) else {
            panic!("a string stays a string");
        };
        assert!(cut.len() < MAX_STRING + 64);
        assert!(cut.ends_with(&format!("({MAX_STRING} characters in all)")));
    }

    #[test]
    fn keys_sort_by_time_and_tokens_are_checked() {
        let early = record_key(Timestamp::from_millis(999), "b");
        let late = record_key(Timestamp::from_millis(1000), "a");
        assert!(early < late);
        assert_eq!(parse_token(&late).ok(), Some(late.clone()));
        for bad in ["", "12", "abcdefghijklm/x", "0000000001000x"] {
            assert!(parse_token(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn outcomes_of_error_codes() {
        assert_eq!(Outcome::of_error("AccessDenied"), Outcome::Denied);
        assert_eq!(Outcome::of_error("AccessDeniedException"), Outcome::Denied);
        assert_eq!(Outcome::of_error("InvalidTokenException"), Outcome::Failed);
        assert_eq!(Outcome::parse("denied"), Some(Outcome::Denied));
        assert_eq!(Outcome::parse("DENIED"), None);
    }
}

//! The change feed: what node agents hear about so that a pod's cached credentials follow a
//! change at once, instead of lasting until they expire.
//!
//! A change record is written in the same transaction as the change itself: an association
//! created, updated or deleted (by its cluster and service account), or a role's trust or
//! permission policies changed, or the role deleted (by the role's ARN). Keys are
//! `TIME/ID` (epoch milliseconds, 13 digits), so a read is one ordered scan.
//!
//! Replicas on PostgreSQL commit in no particular order of their keys' times: a change keyed at
//! T may become visible after a reader has read past T. So every read looks again at the last
//! [`REREAD_MS`] before its cursor, and the cursor carries the ids it has seen in that window
//! (an opaque token), so nothing is missed and nothing is returned twice.
//!
//! A read that has caught up moves its cursor to the reader's clock, so a quiet feed's cursor
//! stays fresh (an hour without changes is not a `reset`). A read behind by more than a page
//! stops after [`PAGE`] new change records and leaves its cursor at the last one read; the
//! next read carries on from there, so a burst of changes in one window cannot stall the feed.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use podid_store::Op;
use serde::{Deserialize, Serialize};

use super::records::{AssociationRecord, ns};
use super::{Eks, key};
use crate::Core;
use crate::auth::Caller;
use crate::error::Error;

/// How long change records are kept: an agent away for longer starts afresh (`reset`).
pub const RETENTION_MS: i64 = 3_600_000;

/// How far before its cursor each read looks again, for commits that land out of key order.
pub const REREAD_MS: i64 = 5_000;

/// The most change records one read takes that its cursor has not seen.
const PAGE: usize = 500;

/// The most changes one answer lists: more (a role of hundreds of associations changed many
/// times) are answered as `reset`, so that an answer stays well within what an agent reads
/// (1 MiB).
const MAX_PAGE_CHANGES: usize = 800;

/// The most ids a cursor carries (a token of about 11 KB, within what proxies take in a URL):
/// a window with more changes than this starts after the millisecond of the oldest one kept.
const MAX_CURSOR_IDS: usize = 500;

/// The latest cursor time taken: the last epoch millisecond with 13 digits (the keys').
const MAX_CURSOR_TIME: i64 = 9_999_999_999_999;

/// How much of a change's id a cursor keeps: the first 48 random bits of its UUID, which tell
/// the changes of one window apart.
const ID_TAG: usize = 13;

/// The longest cursor token accepted.
const MAX_CURSOR: usize = 64 * 1024;

/// A stored change.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ChangeRecord {
    id: String,
    time: i64,
    /// An association's cluster (`ACCOUNT/REGION/NAME`), namespace and service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service_account: Option<String>,
    /// The association's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    association: Option<String>,
    /// A role whose policies changed, or that was deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    /// What happened: `association created`, `role trust policy changed`, ...
    what: String,
}

impl ChangeRecord {
    /// The store keys whose records the change touched.
    fn keys(&self) -> Vec<(&'static str, String)> {
        let mut keys = Vec::new();
        if let (Some(cluster), Some(namespace), Some(service_account)) =
            (&self.cluster, &self.namespace, &self.service_account)
        {
            keys.push((
                ns::ASSOCIATION_SA,
                key(&[cluster, namespace, service_account]),
            ));
            if let Some(id) = &self.association {
                keys.push((ns::ASSOCIATION, key(&[cluster, id])));
            }
        }
        if let Some(role) = &self.role
            && let Some((account, name)) = role
                .strip_prefix("arn:aws:iam::")
                .and_then(|rest| rest.split_once(':'))
                .and_then(|(account, resource)| Some((account, resource.rsplit('/').next()?)))
        {
            keys.push((
                crate::records::ns::ROLE,
                crate::names::entity_key(account, name),
            ));
        }
        keys
    }
}

/// A change an agent acts on: the service account whose pods' credentials are stale.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// The change's id.
    pub id: String,
    /// When it was made, epoch milliseconds.
    pub time: i64,
    /// The namespace.
    pub namespace: String,
    /// The service account.
    pub service_account: String,
    /// What happened.
    pub what: String,
}

/// A read of the feed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangePage {
    /// The changes of the cluster's service accounts since the cursor, oldest first.
    pub changes: Vec<Change>,
    /// Where the next read carries on.
    pub cursor: String,
    /// Whether the cursor was older than the changes kept ([`RETENTION_MS`]), or the changes
    /// were too many to list: the reader may have missed changes and should drop everything
    /// it holds (`changes` is then empty).
    pub reset: bool,
}

/// The cursor: a time, and the ids seen in the [`REREAD_MS`] before it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Cursor {
    t: i64,
    #[serde(default)]
    ids: Vec<String>,
}

impl Cursor {
    fn parse(text: &str) -> Result<Self, Error> {
        let invalid = || {
            Error::InvalidParameter(
                "The cursor is not one this server returned: start again without one.".into(),
            )
        };
        if text.len() > MAX_CURSOR {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let cursor: Self = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if cursor.ids.len() > MAX_CURSOR_IDS || !(0..=MAX_CURSOR_TIME).contains(&cursor.t) {
            return Err(invalid());
        }
        Ok(cursor)
    }

    fn token(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// The part of a change's id a cursor keeps ([`ID_TAG`]).
fn tag(id: &str) -> &str {
    id.get(..ID_TAG).unwrap_or(id)
}

/// What one read of the feed found.
struct Read {
    /// The records read, in key (so time) order: those the cursor had seen and the fresh ones.
    records: Vec<ChangeRecord>,
    /// Whether the read reached the newest record (else it stopped after [`PAGE`] fresh ones,
    /// and the next read carries on).
    exhausted: bool,
}

impl Read {
    /// The cursor after this read of a cursor at `t`.
    fn next_cursor(&self, t: i64, now: i64) -> Cursor {
        // Caught up, the cursor follows the clock, so a quiet feed never grows older than the
        // changes kept; still behind, it stays at the last change read.
        let mut t = match self.records.last() {
            Some(last) if !self.exhausted => t.max(last.time),
            _ => t.max(now),
        };
        let mut window: Vec<&ChangeRecord> = self
            .records
            .iter()
            .filter(|r| r.time >= t.saturating_sub(REREAD_MS))
            .collect();
        let over = window.len().saturating_sub(MAX_CURSOR_IDS);
        if let Some(cut) = window.get(over).map(|r| r.time).filter(|_| over > 0) {
            // More changes in the window than a cursor holds (hundreds in a few seconds): the
            // window starts after the millisecond of the oldest one kept. Nothing is read
            // twice; a late commit stamped at or before that millisecond would be missed, and
            // a change not yet read only with more than MAX_CURSOR_IDS in one millisecond.
            window.retain(|r| r.time > cut);
            t = t.max(cut.saturating_add(REREAD_MS + 1));
        }
        Cursor {
            t,
            ids: window.iter().map(|r| tag(&r.id).to_owned()).collect(),
        }
    }
}

/// Whether a batch records a change of the feed (its readers on this replica are woken once
/// it is committed).
pub(crate) fn carries_change(ops: &[Op]) -> bool {
    ops.iter().any(|op| op.target().0 == ns::CHANGE)
}

impl Core {
    /// Woken when this replica commits a change of the feed: a reader waiting for changes
    /// (`ListChanges`'s long poll) registers with `notified()` before it reads the store, then
    /// waits on it, so that a change made here reaches it at once; other replicas' changes are
    /// found when the reader looks at the store again.
    pub fn change_signal(&self) -> &tokio::sync::Notify {
        &self.eks.changed
    }

    /// The op that records a change of an association, for the change's own commit.
    pub(crate) fn association_change(&self, association: &AssociationRecord, what: &str) -> Op {
        self.change_op(ChangeRecord {
            id: self.ids.request_id(),
            time: self.now(),
            cluster: Some(key(&[
                &association.account,
                &association.region,
                &association.cluster,
            ])),
            namespace: Some(association.namespace.clone()),
            service_account: Some(association.service_account.clone()),
            association: Some(association.id.clone()),
            role: None,
            what: what.into(),
        })
    }

    /// The op that records a change of a role's policies (or its deletion), for the change's
    /// own commit.
    pub(crate) fn role_change(&self, role_arn: &str, what: &str) -> Op {
        self.change_op(ChangeRecord {
            id: self.ids.request_id(),
            time: self.now(),
            cluster: None,
            namespace: None,
            service_account: None,
            association: None,
            role: Some(role_arn.to_owned()),
            what: what.into(),
        })
    }

    fn change_op(&self, record: ChangeRecord) -> Op {
        Op::create(
            ns::CHANGE,
            format!("{:013}/{}", record.time.max(0), record.id),
            crate::encode(&record),
        )
    }

    /// Deletes the change records older than [`RETENTION_MS`], at most `limit` of them; how
    /// many.
    pub async fn prune_changes(&self, limit: usize) -> Result<usize, Error> {
        let horizon = format!("{:013}", (self.now() - RETENTION_MS).max(0));
        let items = self.store.scan(ns::CHANGE, "", None, limit).await?;
        let old: Vec<Op> = items
            .iter()
            .filter(|item| item.key < horizon)
            .map(|item| Op::delete(ns::CHANGE, item.key.clone(), item.version))
            .collect();
        let count = old.len();
        if count > 0 {
            // A record deleted meanwhile by another replica fails the batch: the next round
            // prunes what is left.
            let _ = self.store.commit(old).await;
        }
        Ok(count)
    }
}

impl Eks<'_> {
    /// The change records from the window before `cursor` on, in pages, until the newest one
    /// or [`PAGE`] that `seen` does not hold: the work of a read is bounded by the
    /// cursor's ids and the page, whatever the rate of changes.
    async fn read_from(
        &self,
        cursor: &Cursor,
        seen: &std::collections::HashSet<&str>,
    ) -> Result<Read, Error> {
        let mut after = format!("{:013}", cursor.t.saturating_sub(REREAD_MS).max(0));
        let mut records: Vec<ChangeRecord> = Vec::new();
        let mut fresh = 0;
        loop {
            let items = self
                .core
                .store
                .scan(ns::CHANGE, "", Some(&after), PAGE)
                .await?;
            for item in &items {
                let record: ChangeRecord = crate::decode(item)?;
                if !seen.contains(tag(&record.id)) {
                    fresh += 1;
                }
                records.push(record);
                if fresh >= PAGE {
                    return Ok(Read {
                        records,
                        exhausted: false,
                    });
                }
            }
            match items.last() {
                Some(last) if items.len() == PAGE => last.key.clone_into(&mut after),
                _ => {
                    return Ok(Read {
                        records,
                        exhausted: true,
                    });
                }
            }
        }
    }

    /// The changes of `cluster`'s service accounts after `cursor` (none: from now on), for node
    /// agents. Authorized as `podid:ListChanges` on the cluster.
    pub async fn changes(
        self,
        caller: &Caller,
        region: &str,
        cluster: &str,
        cursor: Option<&str>,
    ) -> Result<ChangePage, Error> {
        let (cluster, _) = self
            .cluster_for(caller, "podid:ListChanges", region, cluster)
            .await?;
        let now = self.core.now();
        // A cursor from now on: its window starts after this millisecond, so nothing of the
        // past is read.
        let from_now = |reset| ChangePage {
            changes: Vec::new(),
            cursor: Cursor {
                t: now.saturating_add(REREAD_MS + 1),
                ids: Vec::new(),
            }
            .token(),
            reset,
        };
        let Some(cursor) = cursor.map(Cursor::parse).transpose()? else {
            return Ok(from_now(false));
        };
        // The window the read starts from is older than the changes kept: some may be gone, so
        // the reader drops everything and carries on from now (reading the backlog would only
        // answer `reset` again).
        if cursor.t.saturating_sub(REREAD_MS) < now.saturating_sub(RETENTION_MS) {
            return Ok(from_now(true));
        }
        let seen: std::collections::HashSet<&str> = cursor.ids.iter().map(|id| tag(id)).collect();
        let read = self.read_from(&cursor, &seen).await?;
        let records = &read.records;
        let cluster_key = key(&[&cluster.account, &cluster.region, &cluster.name]);
        // This replica's read cache may hold what another replica changed: the changed records
        // are read afresh from now on, so that the agent told of a change gets the new
        // credentials from this replica.
        let stale: Vec<(&'static str, String)> = records
            .iter()
            .filter(|r| !seen.contains(tag(&r.id)))
            .flat_map(ChangeRecord::keys)
            .collect();
        if !stale.is_empty() {
            self.core.store.forget(&stale);
        }
        let mut associations: Option<Vec<AssociationRecord>> = None;
        let mut changes = Vec::new();
        for record in records {
            if seen.contains(tag(&record.id)) {
                continue;
            }
            match (&record.cluster, &record.role) {
                (Some(of), _) if *of == cluster_key => {
                    if let (Some(namespace), Some(service_account)) =
                        (&record.namespace, &record.service_account)
                    {
                        changes.push(Change {
                            id: record.id.clone(),
                            time: record.time,
                            namespace: namespace.clone(),
                            service_account: service_account.clone(),
                            what: record.what.clone(),
                        });
                    }
                }
                (None, Some(role)) => {
                    if associations.is_none() {
                        let items = self
                            .core
                            .store
                            .scan(ns::ASSOCIATION, &format!("{cluster_key}/"), None, 100_000)
                            .await?;
                        associations =
                            Some(items.iter().map(crate::decode).collect::<Result<_, _>>()?);
                    }
                    for association in associations.iter().flatten().filter(|a| {
                        a.role_arn == *role || a.target_role_arn.as_deref() == Some(role)
                    }) {
                        changes.push(Change {
                            id: record.id.clone(),
                            time: record.time,
                            namespace: association.namespace.clone(),
                            service_account: association.service_account.clone(),
                            what: format!("{} (`{role}`)", record.what),
                        });
                    }
                }
                _ => {}
            }
            if changes.len() > MAX_PAGE_CHANGES {
                // Too many to list: no need to gather the rest.
                break;
            }
        }
        // Too many to list: the reader drops everything, as after a cursor too old.
        let reset = changes.len() > MAX_PAGE_CHANGES;
        if reset {
            changes.clear();
        }
        Ok(ChangePage {
            changes,
            cursor: read.next_cursor(cursor.t, now).token(),
            reset,
        })
    }
}

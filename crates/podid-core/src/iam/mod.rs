//! The IAM operations.

mod holders;
mod oidc;
mod policies;
mod roles;
mod simulate;
mod users;

use base64::Engine as _;
use podid_store::{Item, StoreError};

pub use holders::{AttachedPolicy, Entity};
pub use oidc::CreateOidcProvider;
pub use policies::{CreatePolicy, ListPolicies, PolicyView};
pub use roles::CreateRole;
pub(crate) use roles::attachment_key;
pub use simulate::{EvaluationResult, MatchedStatement, SimulateInput, SimulationPolicy};
pub use users::{CreateUser, NewAccessKey};

use crate::error::Error;
use crate::records::Tag;

/// IAM: users and access keys, roles, managed and inline policies, OIDC providers and the
/// simulator, each call authorized by the policy engine. A view of the [`Core`](crate::Core):
/// `core.iam()`.
#[derive(Clone, Copy, Debug)]
pub struct Iam<'a> {
    pub(crate) core: &'a crate::Core,
}

/// How many times a read-modify-write is retried when another writer got there first.
pub(crate) const RETRIES: usize = 16;

/// One page of a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Where the next page starts, if there is one (`IsTruncated` is then true).
    pub marker: Option<String>,
}

/// Which page to list: `Marker` and `MaxItems`.
#[derive(Clone, Debug, Default)]
pub struct PageRequest {
    /// The `Marker` of the previous page.
    pub marker: Option<String>,
    /// `MaxItems` (1–1000; default 100).
    pub max_items: Option<u32>,
}

impl PageRequest {
    fn limit(&self) -> usize {
        usize::try_from(self.max_items.unwrap_or(100).clamp(1, 1000)).unwrap_or(100)
    }

    /// The key after which the page starts.
    fn after(&self) -> Result<Option<String>, Error> {
        match &self.marker {
            None => Ok(None),
            Some(marker) => base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(marker)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .map(Some)
                .ok_or_else(|| Error::Validation("Invalid Marker.".into())),
        }
    }
}

fn marker_for(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

impl crate::Core {
    /// Lists the items of `ns` under `prefix` that `keep` accepts, one page at a time.
    pub(crate) async fn page<T>(
        &self,
        ns: &'static str,
        prefix: &str,
        page: &PageRequest,
        mut keep: impl FnMut(&Item) -> Option<T>,
    ) -> Result<Page<T>, Error> {
        let limit = page.limit();
        let mut after = page.after()?;
        let mut items = Vec::new();
        loop {
            let batch = self.store.scan(ns, prefix, after.as_deref(), 256).await?;
            let exhausted = batch.len() < 256;
            for item in &batch {
                if let Some(value) = keep(item) {
                    if items.len() == limit {
                        // One more exists: the page ends at the last item taken.
                        return Ok(Page {
                            items,
                            marker: after.map(|k| marker_for(&k)),
                        });
                    }
                    items.push(value);
                }
                after = Some(item.key.clone());
            }
            if exhausted {
                return Ok(Page {
                    items,
                    marker: None,
                });
            }
        }
    }
}

/// Whether a store error is a failed condition (someone else wrote first).
pub(crate) fn is_conflict(e: &StoreError) -> bool {
    matches!(e, StoreError::Conflict { .. })
}

/// The error when retries ran out.
pub(crate) fn busy() -> Error {
    Error::ConcurrentModification(
        "Rate exceeded: the entity is being modified concurrently; retry the request.".into(),
    )
}

/// Checks tags to add: no `aws:` prefix, no duplicate keys (`case_insensitive` for users and
/// roles, whose tag keys are case-insensitive).
pub(crate) fn check_new_tags(tags: &[Tag], case_insensitive: bool) -> Result<(), Error> {
    for (i, tag) in tags.iter().enumerate() {
        if tag.key.to_lowercase().starts_with("aws:") {
            return Err(Error::InvalidInput(
                "Tag keys starting with 'aws:' are reserved for internal use".into(),
            ));
        }
        let duplicate = tags.iter().skip(i + 1).any(|other| {
            if case_insensitive {
                other.key.to_lowercase() == tag.key.to_lowercase()
            } else {
                other.key == tag.key
            }
        });
        if duplicate {
            return Err(Error::InvalidInput(if case_insensitive {
                "Duplicate tag keys found. Please note that Tag keys are case insensitive.".into()
            } else {
                "Duplicate tag keys found.".into()
            }));
        }
    }
    Ok(())
}

/// Merges `new` tags into `tags` (replacing same keys, case-insensitively for users and roles);
/// at most 50.
pub(crate) fn merge_tags(
    tags: &mut Vec<Tag>,
    new: Vec<Tag>,
    case_insensitive: bool,
) -> Result<(), Error> {
    check_new_tags(&new, case_insensitive)?;
    for tag in new {
        let same = |t: &Tag| {
            if case_insensitive {
                t.key.to_lowercase() == tag.key.to_lowercase()
            } else {
                t.key == tag.key
            }
        };
        match tags.iter_mut().find(|t| same(t)) {
            Some(existing) => *existing = tag,
            None => tags.push(tag),
        }
    }
    if tags.len() > 50 {
        return Err(Error::LimitExceeded(
            "The number of tags has reached the maximum limit.".into(),
        ));
    }
    Ok(())
}

/// Removes the tags with these keys (case-insensitively for users and roles).
pub(crate) fn remove_tags(tags: &mut Vec<Tag>, keys: &[String], case_insensitive: bool) {
    tags.retain(|t| {
        !keys.iter().any(|k| {
            if case_insensitive {
                k.to_lowercase() == t.key.to_lowercase()
            } else {
                *k == t.key
            }
        })
    });
}

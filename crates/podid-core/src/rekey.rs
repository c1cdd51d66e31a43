//! Master-key rotation: every secret sealed at rest (access keys' secrets, session keys,
//! clusters' signing keys) opened with the current key and sealed with a new one, in one
//! transaction. Afterwards the old key opens nothing.

use podid_store::Op;
use serde_json::Value;

use crate::Core;
use crate::crypto::MasterKey;
use crate::error::Error;

/// The namespaces whose records hold sealed values. A record type that gains a sealed field
/// must be listed here (and its field named `sealed…`).
const SEALED_NAMESPACES: &[&str] = &["access-key", "session-key", "cluster"];

/// How many records are read at a time.
const PAGE: usize = 1000;

impl Core {
    /// Seals every secret at rest with `new` instead of the current master key, in one
    /// transaction: all or nothing. The number of values resealed. A value that does not open
    /// with the current key stops the rotation before anything is written. Servers still
    /// running with the old key must be restarted with the new one.
    pub async fn reseal(&self, new: &MasterKey) -> Result<usize, Error> {
        let mut ops = Vec::new();
        let mut count = 0;
        for &space in SEALED_NAMESPACES {
            let mut after: Option<String> = None;
            loop {
                let items = self.store.scan(space, "", after.as_deref(), PAGE).await?;
                for item in &items {
                    let Ok(mut value) = serde_json::from_str::<Value>(&item.value) else {
                        continue;
                    };
                    let resealed = self.reseal_value(&mut value, new).map_err(|e| {
                        Error::ServiceFailure(format!(
                            "the sealed value of {space} `{}` does not open with the current master key ({e}); nothing was changed",
                            item.key
                        ))
                    })?;
                    if resealed > 0 {
                        count += resealed;
                        ops.push(Op::update(
                            space,
                            item.key.clone(),
                            value.to_string(),
                            item.version,
                        ));
                    }
                }
                match items.last() {
                    Some(last) if items.len() == PAGE => after = Some(last.key.clone()),
                    _ => break,
                }
            }
        }
        if !ops.is_empty() {
            self.store.commit(ops).await?;
        }
        Ok(count)
    }

    /// Reseals every string under a key starting with `sealed` in `value`; how many.
    fn reseal_value(
        &self,
        value: &mut Value,
        new: &MasterKey,
    ) -> Result<usize, crate::crypto::KeyError> {
        let mut count = 0;
        match value {
            Value::Object(map) => {
                for (key, field) in map.iter_mut() {
                    match field {
                        Value::String(text) if key.starts_with("sealed") && !text.is_empty() => {
                            let plain = self.master.open(text)?;
                            *text = new.seal(&*self.ids, plain.expose());
                            count += 1;
                        }
                        other => count += self.reseal_value(other, new)?,
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    count += self.reseal_value(item, new)?;
                }
            }
            _ => {}
        }
        Ok(count)
    }
}

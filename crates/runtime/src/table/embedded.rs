//! The embedded store that stands in for DynamoDB when no table is configured (the local run):
//! a redb database file on the host's disk, so the data survives a restart.
//!
//! Items are kept per table name, keyed by their key attributes, in DynamoDB's JSON form.
//!
//! A store file can be open in one process at a time (redb locks it), so the host opens it only
//! for a component that imports the table capability ([`StoreOnDemand`]): hosts whose components
//! never use the table run side by side whatever their store setting.

use crate::table::item::{AttributeValue, Item, from_json, to_json};
use anyhow::Context;
use redb::{Database, ReadableDatabase, TableDefinition};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const ITEMS: TableDefinition<&str, &str> = TableDefinition::new("items");

/// A store file.
#[derive(Clone)]
pub struct EmbeddedStore {
    database: Arc<Database>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| {
                format!(
                    "cannot create the directory of the table store {}",
                    path.display()
                )
            })?;
        }
        let database = Database::create(path).map_err(|error| match error {
            redb::DatabaseError::DatabaseAlreadyOpen => anyhow::anyhow!(
                "the table store {} is in use by another xray-host process (a store file serves \
                 one process at a time): give this host a file of its own with --table-store \
                 (XRAY_HOST_TABLE_STORE), or a DynamoDB table with --dynamodb-table",
                path.display()
            ),
            other => anyhow::Error::new(other).context(format!(
                "cannot open the table store {} (choose another with --table-store)",
                path.display()
            )),
        })?;
        Ok(Self {
            database: Arc::new(database),
        })
    }

    /// Writes `item` into `table`, replacing the item with the same key.
    pub fn put(&self, table: &str, key: &[String], item: &Item) -> anyhow::Result<()> {
        let id = storage_key(table, key, item)?;
        let value = to_json(item).to_string();
        let transaction = self.database.begin_write()?;
        {
            let mut items = transaction.open_table(ITEMS)?;
            items.insert(id.as_str(), value.as_str())?;
        }
        transaction.commit()?;
        Ok(())
    }

    /// Reads the item of `table` whose key attributes are those of `key`.
    pub fn get(
        &self,
        table: &str,
        key_names: &[String],
        key: &Item,
    ) -> anyhow::Result<Option<Item>> {
        let id = storage_key(table, key_names, key)?;
        let transaction = self.database.begin_read()?;
        let items = match transaction.open_table(ITEMS) {
            Ok(items) => items,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let Some(found) = items.get(id.as_str())? else {
            return Ok(None);
        };
        let json: serde_json::Value = serde_json::from_str(found.value())?;
        Ok(Some(
            from_json(&json).context("the table store holds an item it cannot read")?,
        ))
    }
}

/// The embedded store of a process, opened the first time a component needs it.
pub struct StoreOnDemand {
    path: PathBuf,
    opened: Mutex<Option<EmbeddedStore>>,
}

impl StoreOnDemand {
    /// The store at `path`, not opened yet.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            opened: Mutex::new(None),
        }
    }

    /// The open store, opening it now if no call did before. An open that failed (the file
    /// held by another process) is tried again at the next call. Blocks on file I/O: call it
    /// off the async threads.
    pub fn get(&self) -> anyhow::Result<EmbeddedStore> {
        let mut opened = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = opened.as_ref() {
            return Ok(store.clone());
        }
        let store = EmbeddedStore::open(&self.path)?;
        tracing::info!(
            "no DynamoDB table configured (DYNAMO_DB_TABLE_NAME): the table capability uses the \
             embedded store {}",
            self.path.display()
        );
        *opened = Some(store.clone());
        Ok(store)
    }
}

/// `table` + the key attributes' values, in a form that differs for different keys.
fn storage_key(table: &str, key: &[String], item: &Item) -> anyhow::Result<String> {
    let mut parts = vec![serde_json::Value::String(table.to_string())];
    for name in key {
        let value = item
            .get(name)
            .with_context(|| format!("the key attribute {name:?} is missing"))?;
        let single: Item = [(name.clone(), value.clone())].into_iter().collect();
        parts.push(to_json(&single));
        if matches!(value, AttributeValue::L(_) | AttributeValue::M(_)) {
            anyhow::bail!("the key attribute {name:?} must be a string, a number or binary");
        }
    }
    Ok(serde_json::Value::Array(parts).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_survive_reopening_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tables.redb");
        let key = vec!["SubAppId".to_string()];
        let item: Item = [
            ("SubAppId".to_string(), AttributeValue::S("backend1".into())),
            ("LastAccessed".to_string(), AttributeValue::S("1".into())),
        ]
        .into_iter()
        .collect();
        {
            let store = EmbeddedStore::open(&path).unwrap();
            store.put("t", &key, &item).unwrap();
            let mut newer = item.clone();
            newer.insert("LastAccessed".into(), AttributeValue::S("2".into()));
            store.put("t", &key, &newer).unwrap();
        }
        let store = EmbeddedStore::open(&path).unwrap();
        let lookup: Item = [("SubAppId".to_string(), AttributeValue::S("backend1".into()))]
            .into_iter()
            .collect();
        let found = store.get("t", &key, &lookup).unwrap().unwrap();
        assert_eq!(found["LastAccessed"], AttributeValue::S("2".into()));
        assert_eq!(store.get("other-table", &key, &lookup).unwrap(), None);
        let missing: Item = [("SubAppId".to_string(), AttributeValue::S("nobody".into()))]
            .into_iter()
            .collect();
        assert_eq!(store.get("t", &key, &missing).unwrap(), None);
    }

    #[test]
    fn a_store_held_elsewhere_is_refused_with_the_file_and_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tables.redb");
        let on_demand = StoreOnDemand::new(path.clone());
        assert!(!path.exists(), "nothing is opened before it is needed");
        let holder = EmbeddedStore::open(&path).unwrap();
        let error = format!("{:#}", on_demand.get().err().unwrap());
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(error.contains("--table-store"), "{error}");
        assert!(error.contains("--dynamodb-table"), "{error}");
        drop(holder);
        // Once the other holder is gone, the next call opens it.
        on_demand.get().unwrap();
        on_demand.get().unwrap();
    }
}

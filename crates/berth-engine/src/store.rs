//! The engine's metadata store: one redb database (`<data-root>/berth.redb`).
//!
//! redb allows one writer at a time and ACID commits, so every state change of a container is
//! one small transaction: a crash leaves either the old or the new record, never half of one.
//! Other crates (the image store) keep their own tables in the same database file.

use crate::error::Result;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{de::DeserializeOwned, Serialize};
use std::path::Path;
use std::sync::Arc;

pub const CONTAINERS: TableDefinition<&str, &[u8]> = TableDefinition::new("engine_containers");

#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        let db = Database::create(path)?;
        let store = Store { db: Arc::new(db) };
        let tx = store.db.begin_write()?;
        tx.open_table(CONTAINERS)?;
        tx.commit()?;
        Ok(store)
    }

    pub fn database(&self) -> Arc<Database> {
        self.db.clone()
    }

    pub fn put<T: Serialize>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        value: &T,
    ) -> Result<()> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| crate::Error::Internal(format!("encode {key}: {e}")))?;
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(table)?;
            t.insert(key, bytes.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn delete(&self, table: TableDefinition<&str, &[u8]>, key: &str) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(table)?;
            t.remove(key)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every record of a table; undecodable records are reported, not dropped silently.
    pub fn all<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
    ) -> Result<Vec<(String, T)>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(table)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            match serde_json::from_slice(v.value()) {
                Ok(val) => out.push((k.value().to_string(), val)),
                Err(e) => {
                    tracing::error!(key = k.value(), "undecodable record in metadata store: {e}")
                }
            }
        }
        Ok(out)
    }
}

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
        self.delete_with(table, key, redb::Durability::Immediate)
    }

    /// [`Store::delete`] that does not wait for the disk: it becomes durable with the next
    /// durable commit, and a crash before that brings the record back. Only for records
    /// whose return the caller can live with (see `Engine::delete_record`).
    pub fn delete_lazily(&self, table: TableDefinition<&str, &[u8]>, key: &str) -> Result<()> {
        self.delete_with(table, key, redb::Durability::None)
    }

    fn delete_with(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        durability: redb::Durability,
    ) -> Result<()> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(durability)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(s: &Store) -> Vec<String> {
        s.all::<u32>(CONTAINERS)
            .expect("all")
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    #[test]
    fn lazy_delete_is_seen_at_once_and_kept_by_the_next_durable_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("berth.redb");
        {
            let s = Store::open(&path).expect("open");
            s.put(CONTAINERS, "a", &1u32).expect("put a");
            s.put(CONTAINERS, "b", &2u32).expect("put b");
            s.delete_lazily(CONTAINERS, "a").expect("lazy delete");
            assert_eq!(keys(&s), ["b"], "readers see the deletion at once");
            // A later durable commit carries the lazy one to the disk.
            s.put(CONTAINERS, "c", &3u32).expect("put c");
        }
        let s = Store::open(&path).expect("reopen");
        assert_eq!(keys(&s), ["b", "c"]);
    }
}

//! The catalog: namespaces, tables, schema versions and users, persisted as JSON records in
//! the `catalog` column family and cached in memory. Every change is one atomic RocksDB
//! batch, applied to the cache only after it is written.
//!
//! Record keys: `ns/{name}`, `table/{id}`, `schema/{id}/{version}`, `user/{id}`,
//! `storage/{id}`, `seq/table`, `seq/user`. The built-in `local` storage has no record.

use crate::error::{KalamError, Result};
use crate::ids::{NamespaceId, StorageId, TableId, UserId};
use crate::schema::{Namespace, SchemaVersion, StorageDef, TableDef, User};
use crate::storage::{CF_CATALOG, CF_ROW_INDEX, CF_ROWS, Store, keys};
use kalamdb_client_core::protocol::Role;
use parking_lot::{Mutex, RwLock};
use rocksdb::WriteBatch;
use serde::{Serialize, de::DeserializeOwned};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Namespaces users cannot create or drop.
pub(crate) const RESERVED_NAMESPACES: [&str; 2] = ["system", "information_schema"];

#[derive(Default)]
struct State {
    namespaces: BTreeMap<NamespaceId, Namespace>,
    tables: BTreeMap<(NamespaceId, String), Arc<TableDef>>,
    users: BTreeMap<UserId, User>,
    storages: BTreeMap<StorageId, StorageDef>,
    /// Lower-cased user name → id.
    usernames: HashMap<String, UserId>,
    next_table_id: u64,
    next_user_id: u64,
}

pub(crate) struct Catalog {
    store: Arc<Store>,
    state: RwLock<State>,
    /// Serialises catalog changes so read-check-write sequences are atomic.
    write_lock: Mutex<()>,
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("catalog records serialise")
}

fn from_json<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| KalamError::Corrupt(format!("catalog record {}: {e}", String::from_utf8_lossy(key))))
}

fn table_key(id: TableId) -> String {
    format!("table/{:016x}", id.0)
}

fn schema_key(id: TableId, version: u32) -> String {
    format!("schema/{:016x}/{version:08}", id.0)
}

fn user_key(id: UserId) -> String {
    format!("user/{:016x}", id.0)
}

impl Catalog {
    /// Loads every record into memory.
    pub(crate) fn open(store: Arc<Store>) -> Result<Catalog> {
        let mut state = State { next_table_id: 1, next_user_id: 2, ..State::default() };
        for (k, v) in store.scan_prefix(CF_CATALOG, b"ns/")? {
            let ns: Namespace = from_json(&k, &v)?;
            state.namespaces.insert(ns.name.clone(), ns);
        }
        for (k, v) in store.scan_prefix(CF_CATALOG, b"table/")? {
            let t: TableDef = from_json(&k, &v)?;
            state.tables.insert((t.namespace.clone(), t.name.clone()), Arc::new(t));
        }
        for (k, v) in store.scan_prefix(CF_CATALOG, b"storage/")? {
            let s: StorageDef = from_json(&k, &v)?;
            state.storages.insert(s.id.clone(), s);
        }
        for (k, v) in store.scan_prefix(CF_CATALOG, b"user/")? {
            let u: User = from_json(&k, &v)?;
            state.usernames.insert(u.username.to_lowercase(), u.id);
            state.users.insert(u.id, u);
        }
        if let Some(v) = store.get(CF_CATALOG, b"seq/table")? {
            state.next_table_id = from_json(b"seq/table", &v)?;
        }
        if let Some(v) = store.get(CF_CATALOG, b"seq/user")? {
            state.next_user_id = from_json(b"seq/user", &v)?;
        }
        Ok(Catalog { store, state: RwLock::new(state), write_lock: Mutex::new(()) })
    }

    // ---- namespaces ----

    pub(crate) fn namespace(&self, name: &NamespaceId) -> Option<Namespace> {
        self.state.read().namespaces.get(name).cloned()
    }

    pub(crate) fn namespaces(&self) -> Vec<Namespace> {
        self.state.read().namespaces.values().cloned().collect()
    }

    /// Creates a namespace; `Ok(false)` if it existed and `if_not_exists` was given.
    pub(crate) fn create_namespace(&self, name: &NamespaceId, if_not_exists: bool, now: i64) -> Result<bool> {
        if RESERVED_NAMESPACES.contains(&name.as_str()) {
            return Err(KalamError::Validation(format!("namespace '{name}' is reserved")));
        }
        let _guard = self.write_lock.lock();
        if self.state.read().namespaces.contains_key(name) {
            return if if_not_exists {
                Ok(false)
            } else {
                Err(KalamError::AlreadyExists(format!("namespace '{name}' already exists")))
            };
        }
        let ns = Namespace { name: name.clone(), created_at: now, options: BTreeMap::new() };
        self.put(format!("ns/{name}"), &ns)?;
        self.state.write().namespaces.insert(name.clone(), ns);
        Ok(true)
    }

    pub(crate) fn alter_namespace(
        &self,
        name: &NamespaceId,
        options: BTreeMap<String, serde_json::Value>,
    ) -> Result<()> {
        let _guard = self.write_lock.lock();
        let mut ns = self.namespace(name).ok_or_else(|| KalamError::NamespaceNotFound(name.to_string()))?;
        ns.options.extend(options);
        self.put(format!("ns/{name}"), &ns)?;
        self.state.write().namespaces.insert(name.clone(), ns);
        Ok(())
    }

    /// Drops a namespace. Without `cascade` it must be empty; with it, its tables (rows
    /// included) go in the same atomic batch. Returns the dropped tables.
    pub(crate) fn drop_namespace(&self, name: &NamespaceId, cascade: bool) -> Result<Vec<Arc<TableDef>>> {
        let _guard = self.write_lock.lock();
        if self.namespace(name).is_none() {
            return Err(KalamError::NamespaceNotFound(name.to_string()));
        }
        let tables = self.tables(Some(name));
        if !tables.is_empty() && !cascade {
            let names: Vec<_> = tables.iter().map(|t| t.qualified_name()).collect();
            return Err(KalamError::InUse(format!(
                "namespace '{name}' still has tables: {}; drop them first or use DROP NAMESPACE {name} CASCADE",
                names.join(", ")
            )));
        }
        let mut batch = WriteBatch::default();
        for t in &tables {
            self.delete_table_records(&mut batch, t)?;
        }
        batch.delete_cf(&self.store.cf(CF_CATALOG), format!("ns/{name}"));
        self.store.write(batch)?;
        let mut state = self.state.write();
        state.namespaces.remove(name);
        for t in &tables {
            state.tables.remove(&(t.namespace.clone(), t.name.clone()));
        }
        Ok(tables)
    }

    // ---- tables ----

    /// The table called exactly `name` (names are stored lower-cased; SQL names are
    /// normalized by the parser).
    pub(crate) fn table(&self, namespace: &NamespaceId, name: &str) -> Option<Arc<TableDef>> {
        self.state.read().tables.get(&(namespace.clone(), name.to_string())).cloned()
    }

    /// Like [`Catalog::table`], but a missing namespace or table is an error.
    pub(crate) fn require_table(&self, namespace: &NamespaceId, name: &str) -> Result<Arc<TableDef>> {
        if let Some(t) = self.table(namespace, name) {
            return Ok(t);
        }
        if self.namespace(namespace).is_none() {
            return Err(KalamError::NamespaceNotFound(namespace.to_string()));
        }
        Err(KalamError::TableNotFound(format!("{namespace}.{name}")))
    }

    /// The table with this id (a replicated write names its tables by id).
    pub(crate) fn table_by_id(&self, id: TableId) -> Option<Arc<TableDef>> {
        self.state.read().tables.values().find(|t| t.id == id).cloned()
    }

    /// Tables of one namespace, or of all, ordered by namespace and name.
    pub(crate) fn tables(&self, namespace: Option<&NamespaceId>) -> Vec<Arc<TableDef>> {
        let state = self.state.read();
        state.tables.values().filter(|t| namespace.is_none_or(|ns| &t.namespace == ns)).cloned().collect()
    }

    /// Registers a new table (its `id` is assigned here) with schema version 1.
    /// `Ok(None)` if it existed and `if_not_exists` was given.
    pub(crate) fn create_table(&self, mut def: TableDef, if_not_exists: bool) -> Result<Option<Arc<TableDef>>> {
        let _guard = self.write_lock.lock();
        if self.namespace(&def.namespace).is_none() {
            return Err(KalamError::NamespaceNotFound(def.namespace.to_string()));
        }
        if self.table(&def.namespace, &def.name).is_some() {
            return if if_not_exists {
                Ok(None)
            } else {
                Err(KalamError::AlreadyExists(format!("table '{}' already exists", def.qualified_name())))
            };
        }
        self.require_storage(&def.options.storage)?;
        let next = self.state.read().next_table_id;
        def.id = TableId(next);
        def.schema_version = 1;
        let version = SchemaVersion {
            table_id: def.id,
            version: 1,
            columns: def.columns.clone(),
            primary_key: def.primary_key,
            created_at: def.created_at,
            change: "CREATE TABLE".into(),
        };
        let cf = self.store.cf(CF_CATALOG);
        let mut batch = WriteBatch::default();
        batch.put_cf(&cf, table_key(def.id), to_json(&def));
        batch.put_cf(&cf, schema_key(def.id, 1), to_json(&version));
        batch.put_cf(&cf, b"seq/table", to_json(&(next + 1)));
        self.store.write(batch)?;
        let def = Arc::new(def);
        let mut state = self.state.write();
        state.next_table_id = next + 1;
        state.tables.insert((def.namespace.clone(), def.name.clone()), def.clone());
        Ok(Some(def))
    }

    /// Replaces a table's definition with `next` (same id, `schema_version` one higher) and
    /// records the new schema version, in one batch. `change` describes it for
    /// `DESCRIBE TABLE ... HISTORY`. Fails if the table changed since `next` was derived.
    pub(crate) fn alter_table(&self, next: TableDef, change: String, now: i64) -> Result<Arc<TableDef>> {
        let _guard = self.write_lock.lock();
        let current = self.require_table(&next.namespace, &next.name)?;
        if current.id != next.id || current.schema_version + 1 != next.schema_version {
            return Err(KalamError::InUse(format!(
                "table '{}' changed while the ALTER TABLE ran; run it again",
                next.qualified_name()
            )));
        }
        let version = SchemaVersion {
            table_id: next.id,
            version: next.schema_version,
            columns: next.columns.clone(),
            primary_key: next.primary_key,
            created_at: now,
            change,
        };
        let cf = self.store.cf(CF_CATALOG);
        let mut batch = WriteBatch::default();
        batch.put_cf(&cf, table_key(next.id), to_json(&next));
        batch.put_cf(&cf, schema_key(next.id, next.schema_version), to_json(&version));
        self.store.write(batch)?;
        let next = Arc::new(next);
        self.state.write().tables.insert((next.namespace.clone(), next.name.clone()), next.clone());
        Ok(next)
    }

    /// Removes a table's metadata, schema history, rows and change index in one batch.
    pub(crate) fn drop_table(&self, namespace: &NamespaceId, name: &str) -> Result<Arc<TableDef>> {
        let _guard = self.write_lock.lock();
        let table = self.require_table(namespace, name)?;
        let mut batch = WriteBatch::default();
        self.delete_table_records(&mut batch, &table)?;
        self.store.write(batch)?;
        self.state.write().tables.remove(&(table.namespace.clone(), table.name.clone()));
        Ok(table)
    }

    fn delete_table_records(&self, batch: &mut WriteBatch, t: &TableDef) -> Result<()> {
        let catalog = self.store.cf(CF_CATALOG);
        batch.delete_cf(&catalog, table_key(t.id));
        for (k, _) in self.store.scan_prefix(CF_CATALOG, format!("schema/{:016x}/", t.id.0).as_bytes())? {
            batch.delete_cf(&catalog, k);
        }
        let start = keys::table_prefix(t.id);
        let end = keys::table_prefix(TableId(t.id.0 + 1));
        batch.delete_range_cf(&self.store.cf(CF_ROWS), start, end);
        batch.delete_range_cf(&self.store.cf(CF_ROW_INDEX), start, end);
        Ok(())
    }

    /// Every schema version of a table, oldest first.
    pub(crate) fn schema_versions(&self, table: TableId) -> Result<Vec<SchemaVersion>> {
        self.store
            .scan_prefix(CF_CATALOG, format!("schema/{:016x}/", table.0).as_bytes())?
            .into_iter()
            .map(|(k, v)| from_json(&k, &v))
            .collect()
    }

    /// Takes `n` table ids for tables registered later (by [`Catalog::restore_namespace`]).
    pub(crate) fn reserve_table_ids(&self, n: u64) -> Result<u64> {
        let _guard = self.write_lock.lock();
        let first = self.state.read().next_table_id;
        self.put("seq/table".into(), &(first + n))?;
        self.state.write().next_table_id = first + n;
        Ok(first)
    }

    /// Recreates a namespace and its tables from a backup, in one batch. Each table has an
    /// id from [`Catalog::reserve_table_ids`] and keeps its schema history (versions and
    /// column ids unchanged).
    pub(crate) fn restore_namespace(
        &self,
        namespace: &Namespace,
        tables: &[(TableDef, Vec<SchemaVersion>)],
    ) -> Result<Vec<Arc<TableDef>>> {
        self.register_restored(namespace, tables, false, |_, _| Ok(()))
    }

    /// [`Catalog::restore_namespace`] as every node of a cluster applies it from its log: the
    /// tables take the catalog's next ids, written in one batch with the tables and what
    /// `also` adds for them (their file lists, the log's applied mark), so that no crash
    /// leaves a node's id counter moved without the tables.
    pub(crate) fn restore_namespace_with_new_ids(
        &self,
        namespace: &Namespace,
        tables: &[(TableDef, Vec<SchemaVersion>)],
        also: impl FnOnce(&mut WriteBatch, &[Arc<TableDef>]) -> Result<()>,
    ) -> Result<Vec<Arc<TableDef>>> {
        self.register_restored(namespace, tables, true, also)
    }

    fn register_restored(
        &self,
        namespace: &Namespace,
        tables: &[(TableDef, Vec<SchemaVersion>)],
        new_ids: bool,
        also: impl FnOnce(&mut WriteBatch, &[Arc<TableDef>]) -> Result<()>,
    ) -> Result<Vec<Arc<TableDef>>> {
        let _guard = self.write_lock.lock();
        if self.namespace(&namespace.name).is_some() {
            return Err(KalamError::AlreadyExists(format!("namespace '{}' already exists", namespace.name)));
        }
        let cf = self.store.cf(CF_CATALOG);
        let mut batch = WriteBatch::default();
        batch.put_cf(&cf, format!("ns/{}", namespace.name), to_json(namespace));
        let first_id = self.state.read().next_table_id;
        let next_id = first_id + tables.len() as u64;
        if new_ids {
            batch.put_cf(&cf, "seq/table", to_json(&next_id));
        }
        let mut defs = Vec::with_capacity(tables.len());
        for (i, (def, versions)) in tables.iter().enumerate() {
            self.require_storage(&def.options.storage)?;
            let mut def = def.clone();
            def.namespace = namespace.name.clone();
            if new_ids {
                def.id = TableId(first_id + i as u64);
            }
            batch.put_cf(&cf, table_key(def.id), to_json(&def));
            for v in versions {
                let v = SchemaVersion { table_id: def.id, ..v.clone() };
                batch.put_cf(&cf, schema_key(def.id, v.version), to_json(&v));
            }
            defs.push(Arc::new(def));
        }
        also(&mut batch, &defs)?;
        self.store.write(batch)?;
        let mut state = self.state.write();
        if new_ids {
            state.next_table_id = next_id;
        }
        state.namespaces.insert(namespace.name.clone(), namespace.clone());
        for def in &defs {
            state.tables.insert((def.namespace.clone(), def.name.clone()), def.clone());
        }
        Ok(defs)
    }

    // ---- storages ----

    pub(crate) fn storage(&self, id: &StorageId) -> Option<StorageDef> {
        self.state.read().storages.get(id).cloned()
    }

    /// The storages created with CREATE STORAGE (not the built-in `local`).
    pub(crate) fn storages(&self) -> Vec<StorageDef> {
        self.state.read().storages.values().cloned().collect()
    }

    /// `local` or a created storage; anything else is a validation error naming the choices.
    pub(crate) fn require_storage(&self, id: &StorageId) -> Result<()> {
        if id.is_local() || self.state.read().storages.contains_key(id) {
            return Ok(());
        }
        let mut known = vec![StorageId::LOCAL.to_string()];
        known.extend(self.state.read().storages.keys().map(|s| s.to_string()));
        Err(KalamError::Validation(format!("storage '{id}' does not exist (available: {})", known.join(", "))))
    }

    /// Records a storage; `Ok(false)` if it existed and `if_not_exists` was given.
    pub(crate) fn create_storage(&self, def: StorageDef, if_not_exists: bool) -> Result<bool> {
        let _guard = self.write_lock.lock();
        if def.id.is_local() || self.state.read().storages.contains_key(&def.id) {
            return if if_not_exists {
                Ok(false)
            } else {
                Err(KalamError::AlreadyExists(format!("storage '{}' already exists", def.id)))
            };
        }
        self.put(format!("storage/{}", def.id), &def)?;
        self.state.write().storages.insert(def.id.clone(), def);
        Ok(true)
    }

    /// Deletes a storage record; refused for `local` and while any table uses the storage.
    pub(crate) fn drop_storage(&self, id: &StorageId) -> Result<StorageDef> {
        let _guard = self.write_lock.lock();
        if id.is_local() {
            return Err(KalamError::Validation("the built-in storage 'local' cannot be dropped".into()));
        }
        let def = self.storage(id).ok_or_else(|| KalamError::Validation(format!("storage '{id}' does not exist")))?;
        let users: Vec<String> =
            self.tables(None).iter().filter(|t| &t.options.storage == id).map(|t| t.qualified_name()).collect();
        if !users.is_empty() {
            return Err(KalamError::InUse(format!("storage '{id}' is used by tables: {}", users.join(", "))));
        }
        let mut batch = WriteBatch::default();
        batch.delete_cf(&self.store.cf(CF_CATALOG), format!("storage/{id}"));
        self.store.write(batch)?;
        self.state.write().storages.remove(id);
        Ok(def)
    }

    // ---- users ----

    pub(crate) fn user(&self, id: UserId) -> Option<User> {
        self.state.read().users.get(&id).cloned()
    }

    pub(crate) fn user_by_name(&self, username: &str) -> Option<User> {
        let state = self.state.read();
        let id = state.usernames.get(&username.to_lowercase())?;
        state.users.get(id).cloned()
    }

    pub(crate) fn users(&self) -> Vec<User> {
        self.state.read().users.values().cloned().collect()
    }

    pub(crate) fn has_users(&self) -> bool {
        !self.state.read().users.is_empty()
    }

    /// Creates a user. `id` is normally `None` (next id); the bootstrap root passes
    /// [`UserId::ROOT`].
    pub(crate) fn create_user(
        &self,
        id: Option<UserId>,
        username: &str,
        password_hash: String,
        role: Role,
        email: Option<String>,
        now: i64,
    ) -> Result<User> {
        validate_username(username)?;
        let _guard = self.write_lock.lock();
        if self.user_by_name(username).is_some() {
            return Err(KalamError::AlreadyExists(format!("user '{username}' already exists")));
        }
        let next = self.state.read().next_user_id;
        let id = id.unwrap_or(UserId(next));
        let user = User {
            id,
            username: username.to_string(),
            password_hash,
            role,
            email,
            created_at: now,
            updated_at: now,
            failed_logins: 0,
            locked_until: None,
        };
        let cf = self.store.cf(CF_CATALOG);
        let mut batch = WriteBatch::default();
        batch.put_cf(&cf, user_key(id), to_json(&user));
        let next_after = next.max(id.0 + 1);
        batch.put_cf(&cf, b"seq/user", to_json(&next_after));
        self.store.write(batch)?;
        let mut state = self.state.write();
        state.next_user_id = next_after;
        state.usernames.insert(username.to_lowercase(), id);
        state.users.insert(id, user.clone());
        Ok(user)
    }

    /// Replaces a user's record (password, role, email, login counters).
    pub(crate) fn update_user(&self, user: &User) -> Result<()> {
        self.update_user_with(user, |_| {})
    }

    /// [`Catalog::update_user`], with `also` added to the same atomic write (a cluster node
    /// records there the log entry it applied).
    pub(crate) fn update_user_with(&self, user: &User, also: impl FnOnce(&mut WriteBatch)) -> Result<()> {
        let _guard = self.write_lock.lock();
        if self.user(user.id).is_none() {
            return Err(KalamError::UserNotFound(user.username.clone()));
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(&self.store.cf(CF_CATALOG), user_key(user.id), to_json(user));
        also(&mut batch);
        self.store.write(batch)?;
        self.state.write().users.insert(user.id, user.clone());
        Ok(())
    }

    /// Deletes a user record. Their rows in USER tables stay (ids are never reused, so no
    /// later user can see them) until a cleanup job removes them.
    pub(crate) fn drop_user(&self, username: &str) -> Result<User> {
        let _guard = self.write_lock.lock();
        let user = self.user_by_name(username).ok_or_else(|| KalamError::UserNotFound(username.to_string()))?;
        let mut batch = WriteBatch::default();
        batch.delete_cf(&self.store.cf(CF_CATALOG), user_key(user.id));
        self.store.write(batch)?;
        let mut state = self.state.write();
        state.users.remove(&user.id);
        state.usernames.remove(&username.to_lowercase());
        Ok(user)
    }

    fn put<T: Serialize>(&self, key: String, value: &T) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put_cf(&self.store.cf(CF_CATALOG), key, to_json(value));
        self.store.write(batch)
    }
}

/// User names: 1–64 characters of letters, digits, `_`, `.`, `-`, `@`.
pub(crate) fn validate_username(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(KalamError::Validation(format!(
            "invalid user name '{name}': use 1-64 letters, digits, '_', '.', '-' or '@'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::test_table;
    use crate::types::DataType;

    fn open(dir: &std::path::Path) -> Catalog {
        Catalog::open(Arc::new(Store::open(dir, false).unwrap())).unwrap()
    }

    #[test]
    fn definitions_and_schema_history_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let app = NamespaceId::new("app").unwrap();
        let catalog = open(dir.path());
        assert!(catalog.create_namespace(&app, false, 1).unwrap());
        assert!(!catalog.create_namespace(&app, true, 1).unwrap());
        let def = test_table(&[("id", DataType::BigInt), ("title", DataType::Text)]);
        let created = catalog.create_table((*def).clone(), false).unwrap().unwrap();
        assert!(catalog.create_table((*def).clone(), true).unwrap().is_none());
        let err = catalog.create_table((*def).clone(), false).unwrap_err();
        assert!(matches!(err, KalamError::AlreadyExists(_)), "{err:?}");
        let mut next = (*created).clone();
        next.schema_version += 1;
        next.columns.pop();
        catalog.alter_table(next.clone(), "DROP COLUMN title".into(), 2).unwrap();
        // An ALTER derived from the old definition lost the race.
        assert!(matches!(catalog.alter_table(next, "again".into(), 3), Err(KalamError::InUse(_))));
        drop(catalog);

        let catalog = open(dir.path());
        let table = catalog.require_table(&app, "t").unwrap();
        assert_eq!((table.id, table.schema_version, table.columns.len()), (created.id, 2, 1));
        let history = catalog.schema_versions(table.id).unwrap();
        assert_eq!(
            history.iter().map(|v| v.change.as_str()).collect::<Vec<_>>(),
            ["CREATE TABLE", "DROP COLUMN title"]
        );
        // Table ids are never reused, also after a reopen.
        let other = TableDef { name: "u".into(), ..(*def).clone() };
        assert!(catalog.create_table(other, false).unwrap().unwrap().id.0 > created.id.0);
    }

    #[test]
    fn a_namespace_with_tables_drops_only_with_cascade() {
        let dir = tempfile::tempdir().unwrap();
        let app = NamespaceId::new("app").unwrap();
        let catalog = open(dir.path());
        catalog.create_namespace(&app, false, 1).unwrap();
        catalog.create_table((*test_table(&[("id", DataType::BigInt)])).clone(), false).unwrap();
        assert!(matches!(catalog.drop_namespace(&app, false), Err(KalamError::InUse(_))));
        assert_eq!(catalog.drop_namespace(&app, true).unwrap().len(), 1);
        drop(catalog);
        let catalog = open(dir.path());
        assert!(catalog.namespace(&app).is_none());
        assert!(matches!(catalog.require_table(&app, "t"), Err(KalamError::NamespaceNotFound(_))));
        let reserved = NamespaceId::new("system").unwrap();
        assert!(matches!(catalog.create_namespace(&reserved, false, 1), Err(KalamError::Validation(_))));
    }
}

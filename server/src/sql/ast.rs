//! Statements KalamDB parses itself (everything DataFusion/sqlparser does not know:
//! table kinds, storage options, users, catalog commands). DML and SELECT are
//! parsed by sqlparser and planned by DataFusion.

// Table kinds, column types and roles are the catalog's and the protocol's own types.
pub use crate::catalog::{DataType, TableKind};
pub use kalamdb_client_core::protocol::Role;

/// A possibly namespace-qualified table reference as written (`ns.t` or `t`), lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    pub namespace: Option<String>,
    pub name: String,
}

/// A column default as written.
#[derive(Debug, Clone, PartialEq)]
pub enum DefaultSpec {
    /// `NULL`, a number, a quoted string, `TRUE`/`FALSE` (kept as written; coerced to the
    /// column type by the catalog).
    Literal(Literal),
    /// `NOW()` / `CURRENT_TIMESTAMP`
    Now,
    SnowflakeId,
    UuidV7,
    Ulid,
    CurrentUser,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    /// Numeric literal text, e.g. `-12`, `3.5`, `1e3`.
    Number(String),
    String(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    pub name: String,
    pub data_type: DataType,
    pub not_null: bool,
    pub primary_key: bool,
    pub default: Option<DefaultSpec>,
}

/// One `key = value` of a `WITH (...)` / `SET OPTIONS (...)` list; key lower-cased.
#[derive(Debug, Clone, PartialEq)]
pub struct OptionSpec {
    pub key: String,
    pub value: Literal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateTable {
    pub kind: TableKind,
    pub if_not_exists: bool,
    pub table: TableRef,
    pub columns: Vec<ColumnSpec>,
    /// Table-level `PRIMARY KEY (col)` if given that way (single column only).
    pub primary_key: Option<String>,
    /// `WITH (...)` options, plus the seed form `FLUSH POLICY ROWS n [INTERVAL 'dur']`
    /// normalised to `flush_policy = 'rows:n,interval:s'`.
    pub options: Vec<OptionSpec>,
}

/// `CREATE STORAGE [IF NOT EXISTS] id TYPE 'filesystem' | 's3' <settings>`: each setting is
/// `PATH | BUCKET | PREFIX | REGION | ENDPOINT | ACCESS_KEY_ID | SECRET_ACCESS_KEY 'value'`
/// (key lower-cased) or the flag `ALLOW_HTTP` (value `TRUE`); which ones apply depends on
/// the type and is checked when the statement runs.
#[derive(Clone, PartialEq)]
pub struct CreateStorage {
    pub id: String,
    pub if_not_exists: bool,
    pub storage_type: String,
    pub settings: Vec<OptionSpec>,
}

/// Never prints setting values: they may hold a secret key.
impl std::fmt::Debug for CreateStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.settings.iter().map(|o| o.key.as_str()).collect();
        f.debug_struct("CreateStorage")
            .field("id", &self.id)
            .field("if_not_exists", &self.if_not_exists)
            .field("storage_type", &self.storage_type)
            .field("settings", &keys)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum AlterUserAction {
    SetPassword(String),
    SetRole(Role),
    SetEmail(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum AlterTableAction {
    AddColumn(ColumnSpec),
    DropColumn(String),
    RenameColumn { from: String, to: String },
    ModifyColumn { name: String, data_type: DataType },
    SetAccessLevel(String),
}

/// A statement handled by KalamDB itself. `Sql` is everything else (SELECT, INSERT,
/// UPDATE, DELETE, EXPLAIN ...) and goes to sqlparser/DataFusion unchanged.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    CreateNamespace {
        name: String,
        if_not_exists: bool,
    },
    AlterNamespace {
        name: String,
        options: Vec<OptionSpec>,
    },
    DropNamespace {
        name: String,
        if_exists: bool,
        cascade: bool,
    },
    ShowNamespaces,
    Use {
        namespace: String,
    },
    CreateTable(CreateTable),
    AlterTable {
        table: TableRef,
        action: AlterTableAction,
    },
    DropTable {
        kind: Option<TableKind>,
        table: TableRef,
        if_exists: bool,
    },
    ShowTables {
        namespace: Option<String>,
    },
    DescribeTable {
        table: TableRef,
        history: bool,
    },
    ShowStats {
        table: TableRef,
    },
    CreateUser {
        name: String,
        password: String,
        role: Option<Role>,
        email: Option<String>,
    },
    AlterUser {
        name: String,
        action: AlterUserAction,
    },
    DropUser {
        name: String,
        if_exists: bool,
    },
    /// `EXECUTE AS USER 'name' (<statement>)`; the inner text is one statement, unparsed.
    ExecuteAs {
        user: String,
        statement: String,
    },
    FlushTable {
        table: TableRef,
    },
    FlushAllTables {
        namespace: Option<String>,
    },
    KillJob {
        job_id: String,
    },
    KillLiveQuery {
        live_id: String,
    },
    CreateStorage(CreateStorage),
    DropStorage {
        id: String,
        if_exists: bool,
    },
    ShowStorages,
    /// `BACKUP DATABASE ns TO 'path'`
    BackupDatabase {
        namespace: String,
        path: String,
    },
    /// `RESTORE DATABASE ns FROM 'path'`
    RestoreDatabase {
        namespace: String,
        path: String,
    },
    /// `SHOW BACKUP 'path'`
    ShowBackup {
        path: String,
    },
    /// Passed through to sqlparser/DataFusion.
    Sql(String),
}

//! Typed statements: the ones KalamDB defines itself (table kinds, storage options, users,
//! catalog commands), and [`Statement::Sql`] for the sqlparser statements DataFusion plans
//! (SELECT, INSERT, UPDATE, DELETE, EXPLAIN, VALUES).
//!
//! Every statement prints back to SQL (`Display`) that parses to the same statement. Names
//! in here are already normalized (see [`crate::sql::parser`]).

use datafusion::sql::sqlparser::ast::{Statement as SqlStatement, Value};
use datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;
use std::fmt::{self, Display, Formatter};

// Table kinds, column types and roles are the catalog's and the protocol's own types.
pub(crate) use crate::schema::TableKind;
pub(crate) use crate::types::DataType;
pub(crate) use kalamdb_client_core::protocol::Role;

/// A possibly namespace-qualified table reference as written (`ns.t` or `t`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableRef {
    pub namespace: Option<String>,
    pub name: String,
}

/// A column default as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DefaultSpec {
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
pub(crate) enum Literal {
    Null,
    Bool(bool),
    /// Numeric literal text, e.g. `-12`, `3.5`, `1e3`.
    Number(String),
    String(String),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ColumnSpec {
    pub name: String,
    pub data_type: DataType,
    pub not_null: bool,
    pub primary_key: bool,
    pub default: Option<DefaultSpec>,
}

/// One `key = value` of a `WITH (...)` / `SET OPTIONS (...)` list; key lower-cased.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OptionSpec {
    pub key: String,
    pub value: Literal,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CreateTable {
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
pub(crate) struct CreateStorage {
    pub id: String,
    pub if_not_exists: bool,
    pub storage_type: String,
    pub settings: Vec<OptionSpec>,
}

/// Never prints setting values: they may hold a secret key.
impl fmt::Debug for CreateStorage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.settings.iter().map(|o| o.key.as_str()).collect();
        f.debug_struct("CreateStorage")
            .field("id", &self.id)
            .field("if_not_exists", &self.if_not_exists)
            .field("storage_type", &self.storage_type)
            .field("settings", &keys)
            .finish()
    }
}

/// A password as written in a statement: `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(pub String);

impl Secret {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// What `ALTER USER ... SET` changes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AlterUserAction {
    Password(Secret),
    Role(Role),
    Email(String),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AlterTableAction {
    AddColumn(ColumnSpec),
    DropColumn(String),
    RenameColumn { from: String, to: String },
    ModifyColumn { name: String, data_type: DataType },
    SetAccessLevel(String),
}

/// What `ALTER CLUSTER` changes (cluster mode).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ClusterChange {
    /// `ADD NODE id 'host:port'`: the node catches up as a learner, then votes.
    AddNode { id: u64, address: String },
    /// `REMOVE NODE id`
    RemoveNode { id: u64 },
}

/// One statement of a request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Statement {
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
        password: Secret,
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
    /// `EXECUTE AS USER 'name' (<statement>)`
    ExecuteAs {
        user: String,
        statement: Box<Statement>,
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
    AlterCluster(ClusterChange),
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
    /// A query or data change, planned by DataFusion.
    Sql(Box<SqlStatement>),
}

// ---- printing back to SQL ----

/// A name, quoted when it would not read back as the same name unquoted.
struct Name<'a>(&'a str);

impl Display for Name<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let plain = s.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && ALL_KEYWORDS.binary_search(&s.to_ascii_uppercase().as_str()).is_err();
        if plain { f.write_str(s) } else { write!(f, "\"{}\"", s.replace('"', "\"\"")) }
    }
}

/// A single-quoted string literal.
struct Str<'a>(&'a str);

impl Display for Str<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Value::SingleQuotedString(self.0.to_string()))
    }
}

impl Display for TableRef {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if let Some(ns) = &self.namespace {
            write!(f, "{}.", Name(ns))?;
        }
        write!(f, "{}", Name(&self.name))
    }
}

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("NULL"),
            Literal::Bool(b) => f.write_str(if *b { "TRUE" } else { "FALSE" }),
            Literal::Number(n) => f.write_str(n),
            Literal::String(s) => Str(s).fmt(f),
        }
    }
}

impl Display for DefaultSpec {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            DefaultSpec::Literal(l) => l.fmt(f),
            DefaultSpec::Now => f.write_str("NOW()"),
            DefaultSpec::SnowflakeId => f.write_str("SNOWFLAKE_ID()"),
            DefaultSpec::UuidV7 => f.write_str("UUID_V7()"),
            DefaultSpec::Ulid => f.write_str("ULID()"),
            DefaultSpec::CurrentUser => f.write_str("CURRENT_USER()"),
        }
    }
}

impl Display for ColumnSpec {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", Name(&self.name), self.data_type.sql_name())?;
        if self.not_null {
            f.write_str(" NOT NULL")?;
        }
        if self.primary_key {
            f.write_str(" PRIMARY KEY")?;
        }
        if let Some(d) = &self.default {
            write!(f, " DEFAULT {d}")?;
        }
        Ok(())
    }
}

/// `(key = value, ...)`
struct Options<'a>(&'a [OptionSpec]);

impl Display for Options<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self.0.iter().map(|o| format!("{} = {}", Name(&o.key), o.value)).collect();
        write!(f, "({})", items.join(", "))
    }
}

fn if_exists(yes: bool) -> &'static str {
    if yes { " IF EXISTS" } else { "" }
}

fn if_not_exists(yes: bool) -> &'static str {
    if yes { " IF NOT EXISTS" } else { "" }
}

fn kind_word(kind: TableKind) -> &'static str {
    match kind {
        TableKind::User => "USER",
        TableKind::Shared => "SHARED",
        TableKind::Stream => "STREAM",
    }
}

impl Display for Statement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Statement::CreateNamespace { name, if_not_exists: ine } => {
                write!(f, "CREATE NAMESPACE{} {}", if_not_exists(*ine), Name(name))
            }
            Statement::AlterNamespace { name, options } => {
                write!(f, "ALTER NAMESPACE {} SET OPTIONS {}", Name(name), Options(options))
            }
            Statement::DropNamespace { name, if_exists: ie, cascade } => {
                write!(f, "DROP NAMESPACE{} {}{}", if_exists(*ie), Name(name), if *cascade { " CASCADE" } else { "" })
            }
            Statement::ShowNamespaces => f.write_str("SHOW NAMESPACES"),
            Statement::Use { namespace } => write!(f, "USE {}", Name(namespace)),
            Statement::CreateTable(ct) => {
                let mut items: Vec<String> = ct.columns.iter().map(ToString::to_string).collect();
                if let Some(pk) = &ct.primary_key {
                    items.push(format!("PRIMARY KEY ({})", Name(pk)));
                }
                write!(
                    f,
                    "CREATE {} TABLE{} {} ({})",
                    kind_word(ct.kind),
                    if_not_exists(ct.if_not_exists),
                    ct.table,
                    items.join(", ")
                )?;
                if !ct.options.is_empty() {
                    write!(f, " WITH {}", Options(&ct.options))?;
                }
                Ok(())
            }
            Statement::AlterTable { table, action } => {
                write!(f, "ALTER TABLE {table} ")?;
                match action {
                    AlterTableAction::AddColumn(c) => write!(f, "ADD COLUMN {c}"),
                    AlterTableAction::DropColumn(c) => write!(f, "DROP COLUMN {}", Name(c)),
                    AlterTableAction::RenameColumn { from, to } => {
                        write!(f, "RENAME COLUMN {} TO {}", Name(from), Name(to))
                    }
                    AlterTableAction::ModifyColumn { name, data_type } => {
                        write!(f, "ALTER COLUMN {} TYPE {}", Name(name), data_type.sql_name())
                    }
                    AlterTableAction::SetAccessLevel(level) => write!(f, "SET ACCESS LEVEL {}", Str(level)),
                }
            }
            Statement::DropTable { kind, table, if_exists: ie } => {
                let kind = kind.map(|k| format!("{} ", kind_word(k))).unwrap_or_default();
                write!(f, "DROP {kind}TABLE{} {table}", if_exists(*ie))
            }
            Statement::ShowTables { namespace: None } => f.write_str("SHOW TABLES"),
            Statement::ShowTables { namespace: Some(ns) } => write!(f, "SHOW TABLES IN {}", Name(ns)),
            Statement::DescribeTable { table, history } => {
                write!(f, "DESCRIBE TABLE {table}{}", if *history { " HISTORY" } else { "" })
            }
            Statement::ShowStats { table } => write!(f, "SHOW STATS FOR TABLE {table}"),
            Statement::CreateUser { name, password, role, email } => {
                write!(f, "CREATE USER {} WITH PASSWORD {}", Str(name), Str(password.expose()))?;
                if let Some(role) = role {
                    write!(f, " ROLE {role}")?;
                }
                if let Some(email) = email {
                    write!(f, " EMAIL {}", Str(email))?;
                }
                Ok(())
            }
            Statement::AlterUser { name, action } => {
                write!(f, "ALTER USER {} SET ", Str(name))?;
                match action {
                    AlterUserAction::Password(p) => write!(f, "PASSWORD {}", Str(p.expose())),
                    AlterUserAction::Role(r) => write!(f, "ROLE {r}"),
                    AlterUserAction::Email(e) => write!(f, "EMAIL {}", Str(e)),
                }
            }
            Statement::DropUser { name, if_exists: ie } => write!(f, "DROP USER{} {}", if_exists(*ie), Str(name)),
            Statement::ExecuteAs { user, statement } => write!(f, "EXECUTE AS USER {} ({statement})", Str(user)),
            Statement::FlushTable { table } => write!(f, "FLUSH TABLE {table}"),
            Statement::FlushAllTables { namespace: None } => f.write_str("FLUSH ALL TABLES"),
            Statement::FlushAllTables { namespace: Some(ns) } => write!(f, "FLUSH ALL TABLES IN {}", Name(ns)),
            Statement::KillJob { job_id } => write!(f, "KILL JOB {}", Str(job_id)),
            Statement::KillLiveQuery { live_id } => write!(f, "KILL LIVE QUERY {}", Str(live_id)),
            Statement::CreateStorage(c) => {
                write!(
                    f,
                    "CREATE STORAGE{} {} TYPE {}",
                    if_not_exists(c.if_not_exists),
                    Name(&c.id),
                    Str(&c.storage_type)
                )?;
                for setting in &c.settings {
                    match &setting.value {
                        Literal::String(v) => write!(f, " {} {}", setting.key.to_ascii_uppercase(), Str(v))?,
                        _ => write!(f, " {}", setting.key.to_ascii_uppercase())?,
                    }
                }
                Ok(())
            }
            Statement::DropStorage { id, if_exists: ie } => write!(f, "DROP STORAGE{} {}", if_exists(*ie), Name(id)),
            Statement::ShowStorages => f.write_str("SHOW STORAGES"),
            Statement::AlterCluster(ClusterChange::AddNode { id, address }) => {
                write!(f, "ALTER CLUSTER ADD NODE {id} {}", Str(address))
            }
            Statement::AlterCluster(ClusterChange::RemoveNode { id }) => write!(f, "ALTER CLUSTER REMOVE NODE {id}"),
            Statement::BackupDatabase { namespace, path } => {
                write!(f, "BACKUP DATABASE {} TO {}", Name(namespace), Str(path))
            }
            Statement::RestoreDatabase { namespace, path } => {
                write!(f, "RESTORE DATABASE {} FROM {}", Name(namespace), Str(path))
            }
            Statement::ShowBackup { path } => write!(f, "SHOW BACKUP {}", Str(path)),
            Statement::Sql(statement) => statement.fmt(f),
        }
    }
}

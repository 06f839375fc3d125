//! The DataFusion view of the database for one statement.
//!
//! A [`ScopedCatalog`] is registered per statement and resolves every table reference for
//! the statement's principal: USER tables to the principal's own partition, SHARED tables
//! after an access check, `system.*` only for dba/system. Because resolution happens here,
//! no SQL shape (join, subquery, CTE, UNION, INSERT ... SELECT, UPDATE ... WHERE IN) can
//! reach rows outside the caller's scope.

use crate::auth::Principal;
use crate::budget::{BudgetOption, StatementBudget, StatementPool};
use crate::database::{DF_CATALOG, Database};
use crate::error::KalamError;
use crate::ids::NamespaceId;
use crate::schema::TableKind;
use crate::sql::ExecContext;
use crate::sql::context::Origin;
use crate::sql::system_tables as system;
use crate::tables::{PartitionTableProvider, StreamTableProvider, SystemColumns};
use async_trait::async_trait;
use datafusion::catalog::MemoryCatalogProviderList;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::Result as DfResult;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::TaskContext;
use datafusion::execution::context::SessionContext;
use datafusion::execution::runtime_env::RuntimeEnv;
use std::sync::Arc;

/// Builds the DataFusion context a statement runs in, with the statement's own memory
/// budget (see [`crate::budget`]).
pub(crate) fn context_for(
    db: &Arc<Database>,
    principal: &Principal,
    namespace: Option<&NamespaceId>,
    system_columns: SystemColumns,
) -> (SessionContext, Arc<StatementBudget>) {
    // A catalog list of its own: cloned session states share the base state's list, and
    // registering this statement's catalog there would hand it to every statement planning
    // at the same moment — another user's partition and role.
    let mut state = SessionStateBuilder::new_from_existing(db.session_state())
        .with_catalog_list(Arc::new(MemoryCatalogProviderList::new()))
        .build();
    let limits = &db.config.limits;
    let budget = Arc::new(StatementBudget::new(
        Arc::new(StatementPool::new(db.query_memory.clone(), principal.user_id, limits.statement_memory_bytes)),
        limits.max_value_bytes,
    ));
    let options = state.config_mut().options_mut();
    options.catalog.default_schema = namespace.map(|n| n.to_string()).unwrap_or_else(|| "default".into());
    options.extensions.insert(BudgetOption(budget.clone()));
    let ctx = SessionContext::new_with_state(state);
    crate::sql::functions::register(&ctx, &principal.username, &db.snowflake, &db.ulids);
    ctx.register_udf(crate::sql::rewrite::nullable_function());
    ctx.register_catalog(
        DF_CATALOG,
        Arc::new(ScopedCatalog { db: db.clone(), principal: principal.clone(), system_columns }),
    );
    (ctx, budget)
}

/// The task context a statement's plan executes in: the session's, with the statement's
/// memory pool in place of the server's.
pub(crate) fn task_context(ctx: &SessionContext, budget: &StatementBudget) -> Arc<TaskContext> {
    let base = ctx.runtime_env();
    let runtime = RuntimeEnv {
        memory_pool: budget.pool(),
        disk_manager: base.disk_manager.clone(),
        cache_manager: base.cache_manager.clone(),
        object_store_registry: base.object_store_registry.clone(),
    };
    Arc::new(TaskContext::from(ctx).with_runtime(Arc::new(runtime)))
}

#[derive(Debug)]
struct ScopedCatalog {
    db: Arc<Database>,
    principal: Principal,
    system_columns: SystemColumns,
}

impl CatalogProvider for ScopedCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.db.catalog.namespaces().into_iter().map(|n| n.name.to_string()).collect();
        names.push("system".into());
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == "system" {
            return Some(Arc::new(SystemSchema { db: self.db.clone(), principal: self.principal.clone() }));
        }
        let ns = NamespaceId::new(name).ok()?;
        self.db.catalog.namespace(&ns)?;
        Some(Arc::new(NamespaceSchema {
            db: self.db.clone(),
            principal: self.principal.clone(),
            namespace: ns,
            system_columns: self.system_columns,
        }))
    }
}

#[derive(Debug)]
struct NamespaceSchema {
    db: Arc<Database>,
    principal: Principal,
    namespace: NamespaceId,
    system_columns: SystemColumns,
}

impl NamespaceSchema {
    fn context(&self) -> ExecContext<'_> {
        ExecContext {
            db: &self.db,
            principal: self.principal.clone(),
            namespace: Some(self.namespace.clone()),
            params: &[],
            origin: Origin::Client,
        }
    }
}

#[async_trait]
impl SchemaProvider for NamespaceSchema {
    /// Only tables the principal may read, so `information_schema` lists no others.
    fn table_names(&self) -> Vec<String> {
        let cx = self.context();
        self.db
            .catalog
            .tables(Some(&self.namespace))
            .iter()
            .filter(|t| cx.check_read(t).is_ok())
            .map(|t| t.name.clone())
            .collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        // `None`, not an error: the name may be a table function (`generate_series`), which
        // DataFusion looks for only after the schema has no such table.
        let Some(table) = self.db.catalog.table(&self.namespace, name) else { return Ok(None) };
        let cx = self.context();
        cx.check_read(&table).map_err(KalamError::into_datafusion)?;
        let partition = cx.partition(&table);
        if table.kind == TableKind::Stream {
            return Ok(Some(Arc::new(StreamTableProvider::new(table, partition, self.db.streams.clone()))));
        }
        Ok(Some(Arc::new(PartitionTableProvider::new(
            table,
            partition,
            self.system_columns,
            self.db.store.clone(),
            self.db.cold.clone(),
        ))))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.db.catalog.table(&self.namespace, name).is_some()
    }
}

#[derive(Debug)]
struct SystemSchema {
    db: Arc<Database>,
    principal: Principal,
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        system::TABLES
            .iter()
            .filter(|t| system::check_access(&self.principal, t).is_ok())
            .map(|s| s.to_string())
            .collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if !system::TABLES.contains(&name) {
            return Ok(None);
        }
        let provider = system::table(&self.db, &self.principal, name).await.map_err(KalamError::into_datafusion)?;
        Ok(Some(provider))
    }

    fn table_exist(&self, name: &str) -> bool {
        system::TABLES.contains(&name)
    }
}

//! The one error type of the crate.

/// Everything that can go wrong between SQL text and result rows.
///
/// Positions are byte offsets into the SQL text (0-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The text is not valid SQL for this language.
    #[error("syntax error at position {pos}: {msg}")]
    Syntax {
        /// Byte offset of the offending token.
        pos: usize,
        /// What was expected or found.
        msg: String,
    },
    /// Valid SQL, but a construct this language does not have (window functions, subqueries, ...).
    #[error("{construct} {} not supported{}", verb(construct), pos.map(|p| format!(" (at position {p})")).unwrap_or_default())]
    Unsupported {
        /// The construct, named as a user would look it up ("window functions", "RIGHT JOIN").
        construct: String,
        /// Byte offset where it starts, when known.
        pos: Option<usize>,
    },
    /// Valid in a query, but not in a subscription, which syncs the rows of one table (see
    /// [`crate::subscription`]).
    #[error(
        "{construct} {} not supported in a subscription, which syncs the rows of one table \
         (SELECT * | columns FROM namespace.table [WHERE ...]): sync the tables you need, then use a \
         local query over them",
        verb(construct)
    )]
    NotInSubscription {
        /// The construct ("JOIN", "aggregate functions", "ORDER BY").
        construct: String,
    },
    /// No table of that name is known to the catalog.
    #[error("table '{0}' does not exist")]
    UnknownTable(String),
    /// No column of that name is visible where it is used.
    #[error("column '{0}' does not exist")]
    UnknownColumn(String),
    /// An unqualified column name that more than one table in FROM has.
    #[error("column reference '{0}' is ambiguous (qualify it with a table name or alias)")]
    AmbiguousColumn(String),
    /// Operands or arguments of the wrong type, aggregates in the wrong place, and the like.
    #[error("type error: {msg}")]
    Type {
        /// What is wrong.
        msg: String,
    },
    /// A run-time failure evaluating an expression (division by zero, overflow, a bad cast).
    #[error("evaluation error: {msg}")]
    Eval {
        /// What failed.
        msg: String,
    },
}

/// "are" for a plural construct ("window functions"), else "is"; a trailing "(hint)" is ignored.
fn verb(construct: &str) -> &'static str {
    let head = construct.split(" (").next().unwrap_or(construct);
    if head.ends_with('s') { "are" } else { "is" }
}

impl QueryError {
    pub(crate) fn syntax(pos: usize, msg: impl Into<String>) -> Self {
        QueryError::Syntax { pos, msg: msg.into() }
    }

    pub(crate) fn unsupported(construct: impl Into<String>, pos: Option<usize>) -> Self {
        QueryError::Unsupported { construct: construct.into(), pos }
    }

    pub(crate) fn ty(msg: impl Into<String>) -> Self {
        QueryError::Type { msg: msg.into() }
    }

    pub(crate) fn eval(msg: impl Into<String>) -> Self {
        QueryError::Eval { msg: msg.into() }
    }
}

/// The crate's result type.
pub type Result<T, E = QueryError> = std::result::Result<T, E>;

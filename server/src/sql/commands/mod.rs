//! KalamDB's own statements, one file per group.

pub(crate) mod alter_table;
pub(crate) mod backup;
pub(crate) mod execute_as;
pub(crate) mod flush;
pub(crate) mod kill;
pub(crate) mod namespace;
pub(crate) mod storage;
pub(crate) mod table;
pub(crate) mod user;

use crate::error::{KalamError, Result};
use crate::sql::ast::Literal;

/// A `WITH`/`SET OPTIONS` literal as JSON.
pub(crate) fn literal_json(l: &Literal) -> Result<serde_json::Value> {
    Ok(match l {
        Literal::Null => serde_json::Value::Null,
        Literal::Bool(b) => serde_json::Value::Bool(*b),
        Literal::String(s) => serde_json::Value::String(s.clone()),
        Literal::Number(n) => {
            if let Ok(i) = n.parse::<i64>() {
                serde_json::json!(i)
            } else {
                let f: f64 = n.parse().map_err(|_| KalamError::Validation(format!("invalid number '{n}'")))?;
                serde_json::json!(f)
            }
        }
    })
}

//! KalamDB's SQL functions for DataFusion queries: `CURRENT_USER()`, `SNOWFLAKE_ID()`,
//! `UUID_V7()`, `ULID()` (the same functions column defaults use).

use crate::ids::{SnowflakeGenerator, UlidGenerator};
use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::prelude::SessionContext;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    CurrentUser,
    SnowflakeId,
    UuidV7,
    Ulid,
}

#[derive(Debug)]
struct KalamFunction {
    kind: Kind,
    name: &'static str,
    signature: Signature,
    user: String,
    snowflake: Arc<SnowflakeGenerator>,
    ulids: Arc<UlidGenerator>,
}

impl PartialEq for KalamFunction {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.user == other.user
    }
}

impl Eq for KalamFunction {}

impl Hash for KalamFunction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
        self.user.hash(state);
    }
}

impl ScalarUDFImpl for KalamFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::SnowflakeId => DataType::Int64,
            _ => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows.max(1);
        Ok(match self.kind {
            Kind::CurrentUser => ColumnarValue::Scalar(ScalarValue::Utf8(Some(self.user.clone()))),
            Kind::SnowflakeId => ColumnarValue::Array(Arc::new(Int64Array::from_iter_values(
                (0..n).map(|_| self.snowflake.next()),
            )) as ArrayRef),
            Kind::UuidV7 => ColumnarValue::Array(Arc::new(StringArray::from_iter_values(
                (0..n).map(|_| uuid::Uuid::now_v7().to_string()),
            ))),
            Kind::Ulid => ColumnarValue::Array(Arc::new(StringArray::from_iter_values(
                (0..n).map(|_| self.ulids.next().to_string()),
            ))),
        })
    }
}

/// Registers the functions on a statement's context; `user` is what `CURRENT_USER()` returns.
pub(crate) fn register(
    ctx: &SessionContext,
    user: &str,
    snowflake: &Arc<SnowflakeGenerator>,
    ulids: &Arc<UlidGenerator>,
) {
    for (kind, name, volatility) in [
        (Kind::CurrentUser, "current_user", Volatility::Stable),
        (Kind::SnowflakeId, "snowflake_id", Volatility::Volatile),
        (Kind::UuidV7, "uuid_v7", Volatility::Volatile),
        (Kind::Ulid, "ulid", Volatility::Volatile),
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(KalamFunction {
            kind,
            name,
            signature: Signature::exact(vec![], volatility),
            user: user.to_string(),
            snowflake: snowflake.clone(),
            ulids: ulids.clone(),
        }));
    }
}

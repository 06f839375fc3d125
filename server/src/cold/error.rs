//! The cold tier's failures. Each keeps its source for the log; a client only ever sees
//! "internal server error" for them (see [`KalamError::public_message`]).

use crate::error::KalamError;
use datafusion::arrow::error::ArrowError;
use parquet::errors::ParquetError;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ColdError {
    /// An object store call failed (after its bounded retries).
    #[error("cannot {op} in {location}")]
    ObjectStore {
        op: String,
        location: String,
        #[source]
        source: object_store::Error,
    },
    /// Encoding or decoding a Parquet file failed.
    #[error("cannot {op} a Parquet file")]
    Parquet {
        op: &'static str,
        #[source]
        source: ParquetError,
    },
    /// Building or converting Arrow arrays failed.
    #[error("cannot {op} cold rows")]
    Arrow {
        op: &'static str,
        #[source]
        source: ArrowError,
    },
    /// A file, index or manifest that does not say what the tier wrote into it.
    #[error("corrupt cold data: {0}")]
    Corrupt(String),
}

impl ColdError {
    pub fn parquet(op: &'static str) -> impl FnOnce(ParquetError) -> ColdError {
        move |source| ColdError::Parquet { op, source }
    }

    pub fn arrow(op: &'static str) -> impl FnOnce(ArrowError) -> ColdError {
        move |source| ColdError::Arrow { op, source }
    }

    /// A system column (`_updated`, `_deleted`) or key column of an unexpected type.
    pub fn bad_column(name: &str) -> ColdError {
        ColdError::Corrupt(format!("column {name} has an unexpected type"))
    }
}

impl From<ColdError> for KalamError {
    fn from(e: ColdError) -> KalamError {
        KalamError::Source(Arc::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cold_failure_reaches_the_log_whole_and_the_client_as_internal() {
        let e: KalamError = ColdError::parquet("decode")(ParquetError::General("bad page".into())).into();
        assert_eq!(e.report(), "cannot decode a Parquet file: Parquet error: bad page");
        assert_eq!(e.public_message(), "internal server error");
        // The typed error is there for whoever needs to tell failures apart.
        let KalamError::Source(source) = &e else { panic!("{e:?}") };
        assert!(matches!(source.downcast_ref::<ColdError>(), Some(ColdError::Parquet { op: "decode", .. })));
    }
}

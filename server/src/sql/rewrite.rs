//! Rewrites of parsed statements that work around DataFusion 55 bugs. Each names the
//! upstream fix; delete it with the upgrade that brings that fix.

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident, ObjectName,
    SelectItem, SetExpr, Statement, visit_expressions_mut,
};
use std::ops::ControlFlow;
use std::sync::Arc;

/// Applies every rewrite to a freshly parsed statement.
pub(crate) fn apply(statement: &mut Statement) {
    nullable_scalar_subqueries(statement);
}

/// A scalar subquery that returns no row is NULL, but DataFusion 55 takes its nullability
/// from the projected column: `(SELECT id FROM t WHERE false)` over a NOT NULL `id` failed
/// with "declared as non-nullable but contains null values", and `... IS NULL` folded to
/// false (apache/datafusion#24513, fixed by #24516). The projected expression is wrapped in
/// [`NULLABLE_FUNCTION`], an identity the optimizer cannot simplify away, whose result is
/// nullable. The subquery's own column name is not visible outside it (DataFusion names the
/// outer column `(<subquery>)` unless aliased).
fn nullable_scalar_subqueries(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Subquery(query) = expr
            && let SetExpr::Select(select) = query.body.as_mut()
            && let [SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }] =
                select.projection.as_mut_slice()
            && !is_nullable_call(e)
        {
            *e = nullable_call(std::mem::replace(e, Expr::Value(datafusion::sql::sqlparser::ast::Value::Null.into())));
        }
        ControlFlow::<()>::Continue(())
    });
}

/// The identity function behind the scalar-subquery rewrite.
pub(crate) const NULLABLE_FUNCTION: &str = "kalam_nullable";

fn nullable_call(arg: Expr) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(NULLABLE_FUNCTION)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))],
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// Already rewritten (statements printed and parsed again keep one wrapper).
fn is_nullable_call(e: &Expr) -> bool {
    matches!(e, Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case(NULLABLE_FUNCTION))
}

/// `kalam_nullable(x)`: returns `x`, typed as nullable. Volatile, so that constant folding
/// cannot replace it with a (non-null) literal.
pub(crate) fn nullable_function() -> ScalarUDF {
    ScalarUDF::new_from_impl(NullableIdentity { signature: Signature::any(1, Volatility::Volatile) })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct NullableIdentity {
    signature: Signature,
}

impl ScalarUDFImpl for NullableIdentity {
    fn name(&self) -> &str {
        NULLABLE_FUNCTION
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        Ok(args[0].clone())
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let arg = &args.arg_fields[0];
        Ok(Arc::new(Field::new(arg.name(), arg.data_type().clone(), true).with_metadata(arg.metadata().clone())))
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(args.args.swap_remove(0))
    }
}

#[cfg(test)]
mod tests {
    use crate::sql::parser::parse_sql as parse_one;

    #[test]
    fn scalar_subqueries_become_nullable_once() {
        let sql = "SELECT (SELECT id FROM t WHERE false) AS a, x IN (SELECT id FROM t) FROM u";
        let once = parse_one(sql).unwrap().to_string();
        assert_eq!(once, "SELECT (SELECT kalam_nullable(id) FROM t WHERE false) AS a, x IN (SELECT id FROM t) FROM u");
        assert_eq!(parse_one(&once).unwrap().to_string(), once);
    }
}

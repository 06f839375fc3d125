//! Scalar functions under the statement's budget.
//!
//! DataFusion accounts the memory of sorts, joins and aggregates, not of scalar functions:
//! `array_repeat(1, 2000000000)` allocated 16 GB in one call. Every scalar function call in
//! a plan is therefore wrapped in a [`MeteredFunction`] (by [`MeterFunctions`], which runs
//! before constants are folded and again after the optimizer's other rules):
//!
//! - before the call, functions whose output can be much larger than their inputs
//!   (`repeat`, `lpad`, `array_repeat`, `range`, `replace`, ...) estimate it from their
//!   arguments: a value over `limits.max_value_bytes` is refused, and the whole output is
//!   reserved from the statement's memory before it is computed; `levenshtein`, quadratic in
//!   time, is refused on inputs that would take seconds;
//! - after the call, the output is charged to the statement for as long as it lives.
//!
//! The string operator `||` is a DataFusion operator, not a function; the rule replaces it
//! with [`ConcatOperator`], which has its semantics (NULL if either side is NULL) and is
//! metered like the functions.

use super::memory::{BudgetOption, human_bytes};
use crate::error::KalamError;
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::kernels::concat_elements::concat_elements_dyn;
use datafusion::arrow::datatypes::{DataType, FieldRef, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::preimage::PreimageResult;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Documentation, Expr, ExprSchemable, ExpressionPlacement, LogicalPlan, Operator,
    ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, StructFieldMapping, Volatility,
};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{AnalyzerRule, OptimizerConfig, OptimizerRule};
use std::sync::Arc;

/// The largest value a function may produce when no statement budget is configured.
const DEFAULT_MAX_VALUE_BYTES: usize = 16 * 1024 * 1024;

/// Most cells (product of the two lengths) one `levenshtein` call may compute: about a
/// second of CPU.
pub(super) const MAX_LEVENSHTEIN_CELLS: u128 = 500_000_000;

/// A scalar function with its output estimated, limited and charged (see the module docs).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct MeteredFunction {
    inner: Arc<ScalarUDF>,
}

/// `f` metered, unless it already is.
pub(super) fn metered(f: Arc<ScalarUDF>) -> Arc<ScalarUDF> {
    if f.inner().downcast_ref::<MeteredFunction>().is_some() {
        return f;
    }
    Arc::new(ScalarUDF::new_from_impl(MeteredFunction { inner: f }))
}

/// Wraps every scalar function in `expr` and replaces string `||` (see the module docs).
/// `schema` is the schema `expr` is evaluated against.
pub(crate) fn meter_expr(expr: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    expr.transform_up(|e| match e {
        Expr::ScalarFunction(ScalarFunction { func, args })
            if func.inner().downcast_ref::<MeteredFunction>().is_none() =>
        {
            Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction { func: metered(func), args })))
        }
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::StringConcat, right })
            if is_string(&left.get_type(schema)?) && left.get_type(schema)? == right.get_type(schema)? =>
        {
            let func = metered(Arc::new(ScalarUDF::new_from_impl(ConcatOperator::new())));
            Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction { func, args: vec![*left, *right] })))
        }
        other => Ok(Transformed::no(other)),
    })
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

impl ScalarUDFImpl for MeteredFunction {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn schema_name(&self, args: &[Expr]) -> DfResult<String> {
        self.inner.inner().schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.inner().return_type(arg_types)
    }

    fn with_updated_config(&self, config: &ConfigOptions) -> Option<ScalarUDF> {
        let updated = self.inner.inner().with_updated_config(config)?;
        Some(ScalarUDF::new_from_impl(MeteredFunction { inner: Arc::new(updated) }))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        self.inner.inner().return_field_from_args(args)
    }

    fn is_strict(&self) -> bool {
        self.inner.inner().is_strict()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let budget = args.config_options.extensions.get::<BudgetOption>().map(|b| b.0.clone());
        let max_value = budget.as_ref().map_or(DEFAULT_MAX_VALUE_BYTES, |b| b.max_value_bytes);
        let pending = match estimate(self.name(), &args.args, args.number_rows)? {
            Some(estimate) => {
                if estimate.largest_value > max_value as u128 {
                    return Err(too_large(self.name(), estimate.largest_value, max_value));
                }
                match &budget {
                    Some(b) => Some(b.reserve(usize::try_from(estimate.total).unwrap_or(usize::MAX))?),
                    None => None,
                }
            }
            None => None,
        };
        let output = self.inner.invoke_with_args(args)?;
        drop(pending);
        if let (Some(budget), ColumnarValue::Array(array)) = (&budget, &output) {
            budget.charge_output(array)?;
        }
        Ok(output)
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        // A simplified form may call unmetered functions: wrap them (no schema needed, as
        // `||` is never produced by a function's simplification).
        Ok(match self.inner.inner().simplify(args, info)? {
            ExprSimplifyResult::Simplified(expr) => ExprSimplifyResult::Simplified(
                expr.transform_up(|e| match e {
                    Expr::ScalarFunction(ScalarFunction { func, args })
                        if func.inner().downcast_ref::<MeteredFunction>().is_none() =>
                    {
                        Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction { func: metered(func), args })))
                    }
                    other => Ok(Transformed::no(other)),
                })?
                .data,
            ),
            original => original,
        })
    }

    fn preimage(&self, args: &[Expr], lit_expr: &Expr, info: &SimplifyContext) -> DfResult<PreimageResult> {
        self.inner.inner().preimage(args, lit_expr, info)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn conditional_arguments<'a>(&self, args: &'a [Expr]) -> Option<(Vec<&'a Expr>, Vec<&'a Expr>)> {
        self.inner.inner().conditional_arguments(args)
    }

    fn evaluate_bounds(&self, input: &[&Interval]) -> DfResult<Interval> {
        self.inner.inner().evaluate_bounds(input)
    }

    fn propagate_constraints(&self, interval: &Interval, inputs: &[&Interval]) -> DfResult<Option<Vec<Interval>>> {
        self.inner.inner().propagate_constraints(interval, inputs)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> DfResult<SortProperties> {
        self.inner.inner().output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> DfResult<bool> {
        self.inner.inner().preserves_lex_ordering(inputs)
    }

    fn strictly_order_preserving(&self, inputs: &[ExprProperties]) -> DfResult<bool> {
        self.inner.inner().strictly_order_preserving(inputs)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.inner().coerce_types(arg_types)
    }

    fn struct_field_mapping(&self, literal_args: &[Option<ScalarValue>]) -> Option<StructFieldMapping> {
        self.inner.inner().struct_field_mapping(literal_args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn placement(&self, args: &[ExpressionPlacement]) -> ExpressionPlacement {
        self.inner.inner().placement(args)
    }
}

fn too_large(function: &str, bytes: u128, limit: usize) -> DataFusionError {
    let size = usize::try_from(bytes).map(human_bytes).unwrap_or_else(|_| format!("{bytes} bytes"));
    let what = match function {
        CONCAT_OPERATOR => "the || operator".to_string(),
        f => format!("{f}()"),
    };
    KalamError::TooLarge(format!(
        "{what} would produce a value of {size}, more than the limit of {} (limits.max_value_bytes)",
        human_bytes(limit)
    ))
    .into_datafusion()
}

/// What a call would produce, worked out from its arguments.
#[derive(Debug, PartialEq)]
struct Estimate {
    /// The largest single value, in bytes.
    largest_value: u128,
    /// All values of the call, in bytes.
    total: u128,
}

/// The estimate for functions whose output can be far larger than their inputs; `None` for
/// the others (their outputs are charged once computed).
fn estimate(function: &str, args: &[ColumnarValue], number_rows: usize) -> DfResult<Option<Estimate>> {
    let rows = if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) { 1 } else { number_rows };
    let arg = |i: usize| args.get(i);
    let per_row: Vec<u128> = match function {
        "repeat" => {
            let (Some(s), Some(n)) = (arg(0), arg(1)) else { return Ok(None) };
            let (lens, counts) = (lengths(s, rows), integers(n, rows));
            (0..rows).map(|r| lens[r] as u128 * counts[r].max(0) as u128).collect()
        }
        // Characters, up to 4 bytes each.
        "lpad" | "rpad" => {
            let Some(n) = arg(1) else { return Ok(None) };
            integers(n, rows).into_iter().map(|n| n.max(0) as u128 * 4).collect()
        }
        "array_repeat" | "list_repeat" => {
            let (Some(e), Some(n)) = (arg(0), arg(1)) else { return Ok(None) };
            let (sizes, counts) = (element_sizes(e, rows), integers(n, rows));
            (0..rows).map(|r| (sizes[r] as u128 + 8) * counts[r].max(0) as u128).collect()
        }
        "array_resize" | "list_resize" => {
            let Some(n) = arg(1) else { return Ok(None) };
            let sizes = arg(2).map(|v| element_sizes(v, rows)).unwrap_or_else(|| vec![16; rows]);
            let counts = integers(n, rows);
            (0..rows).map(|r| (sizes[r] as u128 + 8) * counts[r].max(0) as u128).collect()
        }
        "range" | "generate_series" => series_sizes(args, rows)?,
        "replace" => {
            let (Some(s), Some(from), Some(to)) = (arg(0), arg(1), arg(2)) else { return Ok(None) };
            let (s, from, to) = (lengths(s, rows), lengths(from, rows), lengths(to, rows));
            (0..rows)
                .map(|r| {
                    // An empty pattern matches between every two characters.
                    let matches = s[r].checked_div(from[r]).map_or(s[r] as u128 + 1, |m| m as u128);
                    s[r] as u128 + matches * to[r] as u128
                })
                .collect()
        }
        "regexp_replace" => {
            let (Some(s), Some(replacement)) = (arg(0), arg(2)) else { return Ok(None) };
            let (s, rep) = (lengths(s, rows), lengths(replacement, rows));
            // Each match (at most one per position) becomes the replacement, whose `$n`
            // references can repeat what the pattern matched.
            let refs = scalar_text(replacement).map_or(1, |t| t.matches(['$', '\\']).count() as u128 + 1);
            (0..rows).map(|r| (s[r] as u128 + 1) * rep[r] as u128 + s[r] as u128 * refs).collect()
        }
        "concat" | CONCAT_OPERATOR | "array_concat" | "array_cat" | "list_concat" | "list_cat" | "array_append"
        | "list_append" | "array_push_back" | "list_push_back" | "array_prepend" | "list_prepend"
        | "array_push_front" | "list_push_front" | "make_array" | "make_list" => {
            let sizes: Vec<Vec<usize>> = args.iter().map(|a| element_sizes(a, rows)).collect();
            (0..rows).map(|r| sizes.iter().map(|s| s[r] as u128).sum()).collect()
        }
        "concat_ws" => {
            let Some(separator) = arg(0) else { return Ok(None) };
            let separators = lengths(separator, rows);
            let sizes: Vec<Vec<usize>> = args[1..].iter().map(|a| element_sizes(a, rows)).collect();
            (0..rows).map(|r| sizes.iter().map(|s| s[r] as u128 + separators[r] as u128).sum()).collect()
        }
        "levenshtein" => {
            let (Some(a), Some(b)) = (arg(0), arg(1)) else { return Ok(None) };
            let (a, b) = (lengths(a, rows), lengths(b, rows));
            let cells: u128 = (0..rows).map(|r| a[r] as u128 * b[r] as u128).sum();
            if cells > MAX_LEVENSHTEIN_CELLS {
                return Err(KalamError::TooLarge(format!(
                    "levenshtein() over these strings would compare {cells} character pairs, more than the limit of \
                     {MAX_LEVENSHTEIN_CELLS}"
                ))
                .into_datafusion());
            }
            return Ok(None);
        }
        _ => return Ok(None),
    };
    Ok(Some(Estimate {
        largest_value: per_row.iter().copied().max().unwrap_or(0),
        total: per_row.iter().copied().fold(0u128, u128::saturating_add),
    }))
}

/// Byte length of each row's string or binary value (0 for NULL and other types).
fn lengths(arg: &ColumnarValue, rows: usize) -> Vec<usize> {
    match arg {
        ColumnarValue::Scalar(s) => vec![scalar_len(s); rows],
        ColumnarValue::Array(a) => {
            (0..rows.min(a.len())).map(|r| array_len(a.as_ref(), r)).chain(std::iter::repeat(0)).take(rows).collect()
        }
    }
}

fn scalar_len(s: &ScalarValue) -> usize {
    match s {
        ScalarValue::Utf8(Some(v)) | ScalarValue::LargeUtf8(Some(v)) | ScalarValue::Utf8View(Some(v)) => v.len(),
        ScalarValue::Binary(Some(v)) | ScalarValue::LargeBinary(Some(v)) | ScalarValue::BinaryView(Some(v)) => v.len(),
        _ => 0,
    }
}

fn array_len(a: &dyn Array, r: usize) -> usize {
    if a.is_null(r) {
        return 0;
    }
    match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().value(r).len(),
        DataType::LargeUtf8 => a.as_string::<i64>().value(r).len(),
        DataType::Utf8View => a.as_string_view().value(r).len(),
        DataType::Binary => a.as_binary::<i32>().value(r).len(),
        DataType::LargeBinary => a.as_binary::<i64>().value(r).len(),
        DataType::BinaryView => a.as_binary_view().value(r).len(),
        _ => 0,
    }
}

/// Text of a scalar string argument (an array's rows are not inspected).
fn scalar_text(arg: &ColumnarValue) -> Option<&str> {
    match arg {
        ColumnarValue::Scalar(
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)),
        ) => Some(s),
        _ => None,
    }
}

/// Each row's integer value (0 for NULL and non-integers).
fn integers(arg: &ColumnarValue, rows: usize) -> Vec<i64> {
    let as_i64 = |s: &ScalarValue| match s.cast_to(&DataType::Int64) {
        Ok(ScalarValue::Int64(Some(v))) => v,
        _ => 0,
    };
    match arg {
        ColumnarValue::Scalar(s) => vec![as_i64(s); rows],
        ColumnarValue::Array(a) => match datafusion::arrow::compute::cast(a, &DataType::Int64) {
            Ok(ints) => {
                let ints = ints.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                (0..rows).map(|r| if r < ints.len() && ints.is_valid(r) { ints.value(r) } else { 0 }).collect()
            }
            Err(_) => vec![0; rows],
        },
    }
}

/// Memory of each row's value: what one copy of it costs in an output.
fn element_sizes(arg: &ColumnarValue, rows: usize) -> Vec<usize> {
    match arg {
        ColumnarValue::Scalar(s) => vec![s.size(); rows],
        ColumnarValue::Array(a) => {
            let fixed = a.data_type().primitive_width();
            (0..rows)
                .map(|r| match fixed {
                    Some(width) => width,
                    None if r < a.len() => a.slice(r, 1).to_data().get_slice_memory_size().unwrap_or(0),
                    None => 0,
                })
                .collect()
        }
    }
}

/// Sizes of `range(start, stop[, step])` / `generate_series` lists, for integers, dates and
/// timestamps.
fn series_sizes(args: &[ColumnarValue], rows: usize) -> DfResult<Vec<u128>> {
    let as_micros = |arg: &ColumnarValue| -> Vec<Option<i128>> {
        let array = match arg.to_array(rows) {
            Ok(a) => a,
            Err(_) => return vec![None; rows],
        };
        let target = match array.data_type() {
            DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => {
                DataType::Timestamp(TimeUnit::Microsecond, None)
            }
            _ => DataType::Int64,
        };
        let Ok(cast) = datafusion::arrow::compute::cast(&array, &target)
            .and_then(|a| datafusion::arrow::compute::cast(&a, &DataType::Int64))
        else {
            return vec![None; rows];
        };
        let ints = cast.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        (0..rows).map(|r| (r < ints.len() && ints.is_valid(r)).then(|| ints.value(r) as i128)).collect()
    };
    let step = |r: usize| -> Option<i128> {
        let Some(step) = args.get(2) else { return Some(1) };
        let value = match step {
            ColumnarValue::Scalar(s) => s.clone(),
            ColumnarValue::Array(a) if r < a.len() => ScalarValue::try_from_array(a, r).ok()?,
            _ => return None,
        };
        match value {
            ScalarValue::IntervalMonthDayNano(Some(i)) => Some(
                i.months as i128 * 28 * 86_400_000_000 + i.days as i128 * 86_400_000_000 + i.nanoseconds as i128 / 1000,
            ),
            ScalarValue::IntervalDayTime(Some(i)) => {
                Some(i.days as i128 * 86_400_000_000 + i.milliseconds as i128 * 1000)
            }
            ScalarValue::IntervalYearMonth(Some(m)) => Some(m as i128 * 28 * 86_400_000_000),
            other => match other.cast_to(&DataType::Int64) {
                Ok(ScalarValue::Int64(Some(v))) => Some(v as i128),
                _ => None,
            },
        }
    };
    let (starts, stops) = match args {
        [stop] => (vec![Some(0); rows], as_micros(stop)),
        [start, stop, ..] => (as_micros(start), as_micros(stop)),
        [] => return Ok(vec![0; rows]),
    };
    Ok((0..rows)
        .map(|r| match (starts[r], stops[r], step(r)) {
            (Some(a), Some(b), Some(s)) if s != 0 => ((b - a) / s).unsigned_abs() * 8 + 8,
            // A zero step is an error of the function itself; unknown shapes cost nothing here.
            _ => 0,
        })
        .collect())
}

/// The name of [`ConcatOperator`] in plans.
const CONCAT_OPERATOR: &str = "kalam_concat_op";

/// The string operator `||` as a function: NULL if either side is NULL, otherwise both
/// sides joined (the `concat` function skips NULLs instead).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct ConcatOperator {
    signature: Signature,
}

impl ConcatOperator {
    fn new() -> ConcatOperator {
        ConcatOperator { signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for ConcatOperator {
    fn name(&self) -> &str {
        CONCAT_OPERATOR
    }

    fn schema_name(&self, args: &[Expr]) -> DfResult<String> {
        Ok(format!("{} || {}", args[0].schema_name(), args[1].schema_name()))
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        Ok(args[0].clone())
    }

    fn is_strict(&self) -> bool {
        true
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if scalar { 1 } else { args.number_rows };
        let left = args.args[0].to_array(rows)?;
        let right = args.args[1].to_array(rows)?;
        let joined: ArrayRef = concat_elements_dyn(&left, &right)?;
        if scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&joined, 0)?));
        }
        Ok(ColumnarValue::Array(joined))
    }
}

/// The rule that meters every function (see the module docs). It runs as the last analyzer
/// rule — before the optimizer folds constants, which evaluates functions — and as the last
/// optimizer rule, to wrap what optimizer rules produce.
#[derive(Debug, Default)]
pub(crate) struct MeterFunctions;

impl MeterFunctions {
    /// Meters the expressions of one plan node, keeping their names.
    fn meter_node(plan: LogicalPlan) -> DfResult<Transformed<LogicalPlan>> {
        let schema = match plan.inputs().as_slice() {
            [] => Arc::new(DFSchema::empty()),
            [input] => input.schema().clone(),
            inputs => {
                let mut merged = DFSchema::empty();
                for input in inputs {
                    merged.merge(input.schema());
                }
                Arc::new(merged)
            }
        };
        let names = NamePreserver::new(&plan);
        plan.map_expressions(|expr| {
            let name = names.save(&expr);
            let rewritten = meter_expr(expr, &schema)?;
            Ok(if rewritten.transformed { Transformed::yes(name.restore(rewritten.data)) } else { rewritten })
        })
    }
}

impl AnalyzerRule for MeterFunctions {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        Ok(plan.transform_up_with_subqueries(Self::meter_node)?.data)
    }

    fn name(&self) -> &str {
        "kalamdb_meter_functions"
    }
}

impl OptimizerRule for MeterFunctions {
    fn name(&self) -> &str {
        "kalamdb_meter_functions"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> DfResult<Transformed<LogicalPlan>> {
        Self::meter_node(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};

    fn scalar(v: impl Into<ScalarValue>) -> ColumnarValue {
        ColumnarValue::Scalar(v.into())
    }

    #[test]
    fn amplifiers_are_estimated_from_their_arguments() {
        let e = estimate("repeat", &[scalar("abc"), scalar(1_000_000i64)], 1).unwrap().unwrap();
        assert_eq!(e, Estimate { largest_value: 3_000_000, total: 3_000_000 });
        let e = estimate("array_repeat", &[scalar(1i64), scalar(2_000_000_000i64)], 1).unwrap().unwrap();
        assert!(e.largest_value >= 16_000_000_000);
        let e = estimate("range", &[scalar(0i64), scalar(1_000_000i64), scalar(2i64)], 1).unwrap().unwrap();
        assert_eq!(e.largest_value, 500_000 * 8 + 8);
        let e = estimate("lpad", &[scalar("x"), scalar(100i64)], 1).unwrap().unwrap();
        assert_eq!(e.largest_value, 400);
        // Per row over arrays: the total adds the rows, the largest is the largest.
        let strings: ArrayRef = Arc::new(StringArray::from(vec!["a", "bb", "ccc"]));
        let counts: ArrayRef = Arc::new(Int64Array::from(vec![10, 10, 1000]));
        let e = estimate("repeat", &[ColumnarValue::Array(strings), ColumnarValue::Array(counts)], 3).unwrap().unwrap();
        assert_eq!(e, Estimate { largest_value: 3000, total: 10 + 20 + 3000 });
        // Replacing the empty string inserts at every position.
        let e = estimate("replace", &[scalar("abcd"), scalar(""), scalar("xyz")], 1).unwrap().unwrap();
        assert_eq!(e.largest_value, 4 + 5 * 3);
        assert!(estimate("upper", &[scalar("abc")], 1).unwrap().is_none());
    }

    #[test]
    fn quadratic_levenshtein_is_refused() {
        let long = "x".repeat(100_000);
        assert!(estimate("levenshtein", &[scalar(long.as_str()), scalar(long.as_str())], 1).is_err());
        assert!(estimate("levenshtein", &[scalar("kitten"), scalar("sitting")], 1).unwrap().is_none());
    }

    #[test]
    fn concat_operator_is_null_if_either_side_is() {
        let op = ConcatOperator::new();
        let left: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), None]));
        let right: ArrayRef = Arc::new(StringArray::from(vec![Some("b"), Some("c")]));
        let args = ScalarFunctionArgs {
            args: vec![ColumnarValue::Array(left), ColumnarValue::Array(right)],
            arg_fields: vec![],
            number_rows: 2,
            return_field: Arc::new(datafusion::arrow::datatypes::Field::new("x", DataType::Utf8, true)),
            config_options: Arc::new(ConfigOptions::default()),
        };
        let ColumnarValue::Array(out) = op.invoke_with_args(args).unwrap() else { panic!("expected an array") };
        let out = out.as_string::<i32>();
        assert_eq!(out.value(0), "ab");
        assert!(out.is_null(1));
    }
}

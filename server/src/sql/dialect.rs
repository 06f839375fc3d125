//! The sqlparser dialect every SQL text is tokenized and parsed with ([`KalamDialect`]), and
//! the limits that bound what one statement may cost to parse ([`check_limits`]).
//!
//! Parsing runs before any timeout can apply, so its cost must be bounded by construction:
//! - each statement's tokens are refused if brackets nest deeper than
//!   [`MAX_NESTING`] or it chains more than [`MAX_OPERATORS`] binary operators;
//! - sqlparser's own recursion limit stops deep expressions the brackets do not show
//!   (`NOT NOT NOT ...`);
//! - [`KalamDialect`] removes sqlparser's one exponential path we know of: when a keyword's
//!   special form (`CAST(...)`, `ARRAY[...]`, `SUBSTRING(...)`, ...) fails to parse, sqlparser
//!   rewinds and parses the same tokens again as a function call or identifier. Nested, that
//!   doubles the work per level, so 360 bytes of `ARRAY[ARRAY[...` took longer than any
//!   client would wait. The dialect marks those keywords as reserved, so the first error
//!   is final.
//!
//! The fuzz target `sql_front` (see `RELIABILITY.md`) checks that no input takes long.

use crate::error::{KalamError, Result};
use datafusion::sql::sqlparser::ast::Expr;
use datafusion::sql::sqlparser::dialect::{Dialect, GenericDialect};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};
use std::any::TypeId;

/// Deepest nesting of `(`, `[` and `{` one statement may have.
pub(crate) const MAX_NESTING: usize = 40;

/// sqlparser's recursion limit (it counts expression, query and statement levels). Above
/// [`MAX_NESTING`], so that bracket nesting meets our clearer error first.
pub(crate) const RECURSION_LIMIT: usize = 64;

/// Most binary operators one statement may chain. Long `a OR b OR ...` chains become deep
/// expression trees that the planner walks recursively; past this a statement is refused
/// rather than risking the server's stack. (`IN (...)` lists are not counted.)
pub(crate) const MAX_OPERATORS: usize = 500;

/// sqlparser's `GenericDialect`, except that a keyword whose special form failed to parse is
/// not tried again as an identifier (see the module docs).
///
/// It reports itself as `GenericDialect` (the parser's `dialect_of!` checks compare type
/// ids), and forwards every method `GenericDialect` overrides. Keywords that only have a
/// special form before `(` — `CAST`, `FLOOR`, `EXTRACT`, ... — stay usable as column names:
/// not followed by `(`, they are parsed as identifiers before the special form is tried.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct KalamDialect;

/// Keywords whose special form parses nested expressions.
const NESTING_KEYWORDS: &[Keyword] = &[
    Keyword::ARRAY,
    Keyword::CASE,
    Keyword::CAST,
    Keyword::CEIL,
    Keyword::CONVERT,
    Keyword::EXISTS,
    Keyword::EXTRACT,
    Keyword::FLOOR,
    Keyword::INTERVAL,
    Keyword::LAMBDA,
    Keyword::MAP,
    Keyword::MATCH,
    Keyword::NOT,
    Keyword::OVERLAY,
    Keyword::POSITION,
    Keyword::SAFE_CAST,
    Keyword::STRUCT,
    Keyword::SUBSTR,
    Keyword::SUBSTRING,
    Keyword::TRIM,
    Keyword::TRY_CAST,
    Keyword::TRY_CONVERT,
];

/// Of those, the ones whose special form always starts with `(`: anywhere else they are
/// names.
const CALL_ONLY_KEYWORDS: &[Keyword] = &[
    Keyword::CAST,
    Keyword::CEIL,
    Keyword::CONVERT,
    Keyword::EXTRACT,
    Keyword::FLOOR,
    Keyword::OVERLAY,
    Keyword::SAFE_CAST,
    Keyword::SUBSTR,
    Keyword::SUBSTRING,
    Keyword::TRY_CAST,
    Keyword::TRY_CONVERT,
];

macro_rules! forward_to_generic {
    ($($method:ident),* $(,)?) => {
        $(fn $method(&self) -> bool { GenericDialect.$method() })*
    };
}

impl Dialect for KalamDialect {
    fn dialect(&self) -> TypeId {
        TypeId::of::<GenericDialect>()
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        GenericDialect.is_delimited_identifier_start(ch)
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        GenericDialect.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        GenericDialect.is_identifier_part(ch)
    }

    fn is_reserved_for_identifier(&self, kw: Keyword) -> bool {
        NESTING_KEYWORDS.contains(&kw) || GenericDialect.is_reserved_for_identifier(kw)
    }

    fn parse_prefix(&self, parser: &mut Parser) -> Option<std::result::Result<Expr, ParserError>> {
        let next = parser.peek_token_ref();
        let Token::Word(word) = &next.token else { return None };
        if word.quote_style.is_some()
            || !CALL_ONLY_KEYWORDS.contains(&word.keyword)
            || parser.peek_nth_token_ref(1).token == Token::LParen
        {
            return None;
        }
        let ident = word.clone().into_ident(next.span);
        parser.advance_token();
        Some(Ok(Expr::Identifier(ident)))
    }

    forward_to_generic!(
        supports_unicode_string_literal,
        supports_partition_by_after_order_by,
        supports_array_join_syntax,
        supports_group_by_expr,
        supports_group_by_with_modifier,
        supports_left_associative_joins_without_parens,
        supports_connect_by,
        supports_match_recognize,
        supports_pipe_operator,
        supports_start_transaction_modifier,
        supports_window_function_null_treatment_arg,
        supports_dictionary_syntax,
        supports_window_clause_named_window_reference,
        supports_parenthesized_set_variables,
        supports_select_wildcard_except,
        support_map_literal_syntax,
        allow_extract_custom,
        allow_extract_single_quotes,
        supports_extract_comma_syntax,
        supports_create_view_comment_syntax,
        supports_parens_around_table_factor,
        supports_values_as_table_factor,
        supports_create_index_with_clause,
        supports_explain_with_utility_options,
        supports_limit_comma,
        supports_update_order_by,
        supports_from_first_select,
        supports_projection_trailing_commas,
        supports_asc_desc_in_column_definition,
        supports_try_convert,
        supports_bitwise_shift_operators,
        supports_comment_on,
        supports_load_extension,
        supports_named_fn_args_with_assignment_operator,
        supports_struct_literal,
        supports_empty_projections,
        supports_nested_comments,
        supports_multiline_comment_hints,
        supports_user_host_grantee,
        supports_string_escape_constant,
        supports_array_typedef_with_brackets,
        supports_match_against,
        supports_set_names,
        supports_comma_separated_set_assignments,
        supports_filter_during_aggregation,
        supports_select_wildcard_exclude,
        supports_data_type_signed_suffix,
        supports_interval_options,
        supports_quote_delimited_string,
        supports_select_wildcard_replace,
        supports_select_wildcard_ilike,
        supports_select_wildcard_rename,
        supports_optimize_table,
        supports_install,
        supports_detach,
        supports_prewhere,
        supports_with_fill,
        supports_limit_by,
        supports_interpolate,
        supports_settings,
        supports_select_format,
        supports_comment_optimizer_hint,
        supports_constraint_keyword_without_name,
        supports_key_column_option,
        supports_comma_separated_trim,
        supports_cte_without_as,
        supports_select_item_multi_column_alias,
        supports_xml_expressions,
    );
}

/// Refuses token streams that nest or chain too much (see the module docs).
pub(crate) fn check_limits(tokens: &[TokenWithSpan]) -> Result<()> {
    let (mut depth, mut deepest, mut operators) = (0usize, 0usize, 0usize);
    for t in tokens {
        match &t.token {
            Token::LParen | Token::LBracket | Token::LBrace => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            Token::RParen | Token::RBracket | Token::RBrace => depth = depth.saturating_sub(1),
            token if is_operator(token) => operators += 1,
            _ => {}
        }
    }
    if deepest > MAX_NESTING {
        return Err(KalamError::TooLarge(format!(
            "the statement nests brackets {deepest} levels deep, more than the limit of {MAX_NESTING}"
        )));
    }
    if operators > MAX_OPERATORS {
        return Err(KalamError::TooLarge(format!(
            "the statement is too complex: {operators} operators, more than {MAX_OPERATORS} (use IN (...) instead of long OR chains)"
        )));
    }
    Ok(())
}

fn is_operator(token: &Token) -> bool {
    match token {
        Token::Word(w) => matches!(
            w.keyword,
            Keyword::AND
                | Keyword::OR
                | Keyword::UNION
                | Keyword::INTERSECT
                | Keyword::EXCEPT
                | Keyword::LIKE
                | Keyword::BETWEEN
        ),
        Token::Plus
        | Token::Minus
        | Token::Mul
        | Token::Div
        | Token::Mod
        | Token::StringConcat
        | Token::Ampersand
        | Token::Pipe
        | Token::Caret
        | Token::Eq
        | Token::DoubleEq
        | Token::Neq
        | Token::Lt
        | Token::Gt
        | Token::LtEq
        | Token::GtEq
        | Token::ShiftLeft
        | Token::ShiftRight => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::ast::Statement as KalamStatement;
    use crate::sql::parser::Script;
    use datafusion::sql::sqlparser::ast::Statement;

    fn parse_statements(sql: &str) -> Result<Vec<Statement>> {
        let statements = Script::tokenize(sql)?.statements()?;
        Ok(statements
            .into_iter()
            .map(|s| match s {
                KalamStatement::Sql(s) => *s,
                other => panic!("not SQL: {other:?}"),
            })
            .collect())
    }

    fn parse_one(sql: &str) -> Result<Statement> {
        crate::sql::parser::parse_sql(sql)
    }
    use std::time::{Duration, Instant};

    /// Parses within `limit` or fails the test; returns whether parsing succeeded.
    fn parses_quickly(sql: &str, limit: Duration) -> bool {
        let started = Instant::now();
        let ok = parse_statements(sql).is_ok();
        assert!(started.elapsed() < limit, "{} took {:?}", &sql[..sql.len().min(60)], started.elapsed());
        ok
    }

    #[test]
    fn nested_special_forms_parse_in_linear_time() {
        let limit = Duration::from_millis(200);
        for depth in [10, 30, 39, 40, 41, 60, 200] {
            for (open, close) in [
                ("ARRAY[", "]"),
                ("CAST(", " AS INT)"),
                ("TRY_CAST(", " AS INT)"),
                ("SUBSTRING(", " FROM 1)"),
                ("EXTRACT(YEAR FROM ", ")"),
                ("CEIL(", ")"),
                ("abs(", ")"),
                ("(", ")"),
            ] {
                let valid = format!("SELECT {}1{}", open.repeat(depth), close.repeat(depth));
                assert_eq!(parses_quickly(&valid, limit), depth <= MAX_NESTING, "{open} x {depth}");
                // A syntax error at the bottom: every level used to be parsed twice.
                let broken = format!("SELECT {}1 +{}", open.repeat(depth), close.repeat(depth));
                assert!(!parses_quickly(&broken, limit), "{open} x {depth} (broken)");
            }
        }
    }

    #[test]
    fn deep_unary_chains_are_refused_quickly() {
        for prefix in ["NOT ", "- ", "CASE WHEN TRUE THEN "] {
            let sql = format!("SELECT {}1", prefix.repeat(500));
            let started = Instant::now();
            let e = parse_statements(&sql).map(|_| ()).unwrap_err();
            assert!(started.elapsed() < Duration::from_millis(200), "{prefix}");
            assert!(matches!(e, KalamError::TooLarge(_) | KalamError::Parse(_)), "{prefix}: {e}");
        }
    }

    #[test]
    fn nesting_errors_name_the_limit() {
        let sql = format!("SELECT {}1{}", "(".repeat(41), ")".repeat(41));
        let e = parse_statements(&sql).unwrap_err();
        assert!(matches!(e, KalamError::TooLarge(_)), "{e}");
        assert!(e.to_string().contains("41 levels"), "{e}");
    }

    #[test]
    fn keywords_with_call_forms_stay_usable_as_names() {
        let parsed = parse_one("SELECT floor, ceil, extract, cast, substring, position, array FROM t").unwrap();
        assert_eq!(parsed.to_string(), "SELECT floor, ceil, extract, cast, substring, position, array FROM t");
        let parsed = parse_one("SELECT CAST(floor AS INT), FLOOR(ceil), t.floor FROM t").unwrap();
        assert_eq!(parsed.to_string(), "SELECT CAST(floor AS INT), FLOOR(ceil), t.floor FROM t");
    }

    #[test]
    fn parses_like_the_generic_dialect() {
        for sql in [
            "SELECT a, b FROM t WHERE a = 1 AND b LIKE 'x%' ORDER BY a DESC LIMIT 10",
            "SELECT ARRAY[1, 2][1], [3, 4], CAST(x AS BIGINT), x::TEXT, INTERVAL '1 day' FROM t",
            "SELECT CASE WHEN a THEN 1 ELSE 2 END, EXTRACT(YEAR FROM ts), SUBSTRING(s FROM 1 FOR 2) FROM t",
            "SELECT * EXCLUDE (a) FROM t",
            "WITH c AS (SELECT 1 AS x) SELECT x FROM c WHERE EXISTS (SELECT 1)",
            "SELECT count(*) FILTER (WHERE a > 1) FROM t GROUP BY ALL",
            "INSERT INTO t (a, b) VALUES (1, $1), (2, $2)",
            "UPDATE t SET a = a + 1 WHERE b IN (SELECT b FROM u)",
            "DELETE FROM t WHERE a IS NOT NULL",
            "SELECT MAP {'a': 1}, STRUCT(1, 2), 1 << 2, 'a' || 'b'",
        ] {
            let ours = parse_statements(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            let generic = Parser::parse_sql(&GenericDialect, sql).unwrap();
            assert_eq!(ours, generic, "{sql}");
        }
    }

    #[test]
    fn current_user_takes_empty_parentheses() {
        let parsed = parse_one("SELECT CURRENT_USER(), current_user FROM t").unwrap();
        assert_eq!(parsed.to_string(), "SELECT CURRENT_USER, current_user FROM t");
    }
}

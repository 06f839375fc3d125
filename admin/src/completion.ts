// What the SQL editor offers at the caret: columns of the tables the statement names first,
// then keywords and functions, tables (`ns.table`) and namespaces; after FROM, JOIN, INTO,
// UPDATE, TABLE and DESCRIBE only tables and namespaces; after `ns.` that namespace's tables;
// after `table.` or `alias.` that table's columns. Tables include those the statement makes
// itself: CTEs (`WITH open AS (SELECT ...)`) and subqueries in FROM (`(SELECT ...) s`), whose
// columns are the names their select list gives, renamed by a column list (`AS s(a, b)`, also
// a table alias's: `app.todos t(a, b)`); `VALUES` in FROM too. Names follow SQL's scopes: at
// the caret, the tables (and aliases) of the query it is in and of the queries around it that
// it may read (a correlated subquery reads its outer query's, a LATERAL one in FROM the tables
// before it), and the CTEs defined before it in those (anywhere in them for `WITH RECURSIVE`);
// an alias hides its table's own name. Each branch of a UNION, INTERSECT or EXCEPT is a query
// of its own. In ORDER BY, GROUP BY and HAVING, the names the query's select list gives come
// first (in GROUP BY not those of aggregates); after the last branch, only those of the first
// branch. In a quoted name, names complete quoted.
//
// The rules are the cases of cli/tests/completion-cases.json, which the shell's completion
// (cli/src/complete.rs) runs too: a change to them starts there, with a case, and is made in
// both.
import type { Catalog, CatalogColumn, CatalogTable } from './catalog';
import { FUNCTIONS, isKeyword, KEYWORDS, openAt, significant, type Token, tokenize } from './sqlsyntax';

export type CompletionKind = 'column' | 'keyword' | 'function' | 'table' | 'namespace';

export interface Completion {
  /** What replaces the word at the caret. */
  text: string;
  kind: CompletionKind;
  /** Shown next to it: a column's table and type, a table's type. */
  detail: string;
}

export interface Completions {
  /** The word being completed, `text.slice(from, to)`; the caret is in it or at its end. */
  from: number;
  to: number;
  items: Completion[];
}

/** At most this many entries are offered (the list on screen). */
const MAX_ITEMS = 50;
/** Words after which a table name comes. */
const BEFORE_TABLE = new Set(['FROM', 'JOIN', 'INTO', 'UPDATE', 'TABLE', 'DESCRIBE']);
/** Words after which a namespace name comes (and `IN` after `SHOW TABLES`). */
const BEFORE_NAMESPACE = new Set(['NAMESPACE', 'USE', 'DATABASE']);
/** The namespace of unqualified names when none is given: the server's (server/src/sql/session.rs). */
const DEFAULT_NAMESPACE = 'default';
/** A character of a name, in any script, as the server reads names. */
const NAME_CHAR = /[\p{Alphabetic}\p{N}_]/u;

/**
 * The completions for the word at `caret` in `text`, or null where nothing is completed
 * (inside a string or comment, a number). `session` is the session's namespace (the server's
 * `default` if none): its tables also complete unqualified. Unless `explicit` (Ctrl+Space), an
 * empty word gets nothing and an entry equal to the word is left out (it would change
 * nothing). At most `limit` entries come, the first ones. In a quoted name (`"ti`), names
 * complete quoted (see inQuotedName).
 */
export function complete(
  text: string,
  caret: number,
  catalog: Catalog,
  session: string | undefined,
  explicit: boolean,
  limit = MAX_ITEMS,
): Completions | null {
  const tokens = tokenize(text);
  const quoted = tokens.find(
    (t) => t.kind === 'identifier' && t.text.startsWith('"') && t.start < caret && openAt(t, caret),
  );
  const found = quoted
    ? inQuotedName(text, caret, quoted, catalog, session, explicit)
    : completeWord(text, tokens, caret, catalog, session, explicit);
  return found && { ...found, items: found.items.slice(0, limit) };
}

/**
 * The completions in the quoted name `t` (`"ti`), the caret after its opening quote: the names
 * the same place offers without it that go on with what is typed there (in any case), quoted
 * (`"title"`, `t."title"`, with `""` for a quote in a name); no keyword or function, nor a dotted
 * name (`app.todos`, `app.`). What they replace runs to the name's closing quote, or, where it is
 * not closed, to the end of the word at the caret.
 */
function inQuotedName(
  text: string,
  caret: number,
  t: Token,
  catalog: Catalog,
  session: string | undefined,
  explicit: boolean,
): Completions | null {
  let end = t.end;
  if (openAt(t, t.end)) for (end = caret; end < text.length && NAME_CHAR.test(text[end]); end++);
  const typed = text.slice(t.start + 1, caret).replace(/""/g, '"').toLowerCase();
  if (!typed && !explicit) return null;
  // What the place offers, read with the quoted name taken out.
  const bare = text.slice(0, t.start) + text.slice(end);
  const around = completeWord(bare, tokenize(bare), t.start, catalog, session, true);
  if (!around) return null;
  const qualifier = bare.slice(around.from, t.start);
  const items = around.items.flatMap((c) => {
    const name = c.text.slice(qualifier.length);
    const replacement = `${qualifier}"${name.replace(/"/g, '""')}"`;
    const isName = c.kind !== 'keyword' && c.kind !== 'function' && name !== '' && !name.includes('.');
    const fits = isName && name.toLowerCase().startsWith(typed);
    return fits && (explicit || replacement !== text.slice(around.from, end)) ? [{ ...c, text: replacement }] : [];
  });
  return { from: around.from, to: end, items };
}

/** The completions for the word at `caret` in `text`, outside quotes (see complete). */
function completeWord(
  text: string,
  tokens: Token[],
  caret: number,
  catalog: Catalog,
  session: string | undefined,
  explicit: boolean,
): Completions | null {
  const namespace = session ?? DEFAULT_NAMESPACE;
  if (tokens.some((t) => openAt(t, caret))) return null;
  // Right after a quoted name there is nothing to add to it: names complete unquoted.
  if (tokens.some((t) => t.end === caret && t.kind === 'identifier' && t.text.startsWith('"'))) return null;
  let from = caret;
  while (from > 0 && (NAME_CHAR.test(text[from - 1]) || text[from - 1] === '.')) from--;
  let to = caret;
  while (to < text.length && NAME_CHAR.test(text[to])) to++;
  const word = text.slice(from, caret);
  if (/^\d/.test(word) || (!word && !explicit)) return null;

  const statement = readStatement(statementAt(tokens, caret).filter(significant), catalog, namespace);
  const { nesting, derived } = statement;
  const before = statement.tokens.filter((t) => t.end <= from);
  const previous = before.at(-1)?.text.toUpperCase() ?? '';
  // The query the caret is in and the tables it may read, innermost query first.
  const at = statement.tokens.filter((t) => t.start < caret).length;
  const query = queryAt(nesting, at);
  const scopes = readable(nesting, query).map(({ query: q, until }) => tablesNamed(statement, q, until));
  // What a qualifier names at the caret: the table of the innermost query that names it; null
  // where an alias hides the name (`todos` after `FROM app.todos t`), undefined where none does.
  const qualifies = (name: string) => {
    const found = scopes.map((named) => named.get(name));
    return found.find(Boolean) ?? (found.includes(null) ? null : undefined);
  };
  const out: Completion[] = [];
  const table = (t: CatalogTable, text = `${t.namespace}.${t.name}`) => ({ text, kind: 'table' as const, detail: t.type });
  // Tables of the default namespace also by their bare name.
  const tables = () => [
    ...derived.filter((d) => cteVisible(nesting, d, at, query)).map((d) => table(d, d.name)),
    ...catalog.tables.flatMap((t) => (t.namespace === namespace ? [table(t, t.name), table(t)] : [table(t)])),
  ];
  const namespaces = () => catalog.namespaces.map((ns) => ({ text: `${ns}.`, kind: 'namespace' as const, detail: 'namespace' }));
  const columns = (t: CatalogTable, prefix = '') =>
    t.columns.map((c) => ({
      text: prefix + c.name,
      kind: 'column' as const,
      detail: t.namespace ? `${t.namespace}.${t.name} ${c.type}` : t.name,
    }));

  // The ORDER BY, LIMIT and OFFSET after a query's last branch read no table: they name only the
  // columns the branches return, by the names the first branch gives them.
  const clause = queryClause(statement.tokens, nesting, at);
  const afterBranches = hasBranches(nesting, query) && AFTER_BRANCHES.has(clause);
  const dot = word.lastIndexOf('.');
  if (dot >= 0) {
    if (afterBranches) return { from, to, items: [] };
    const qualifier = word.slice(0, dot).toLowerCase();
    out.push(...catalog.tables.filter((t) => t.namespace.toLowerCase() === qualifier).map((t) => table(t)));
    const named = qualifies(qualifier);
    const qualified = named === undefined ? resolve(catalog, qualifier, namespace) : named;
    if (qualified) out.push(...columns(qualified, word.slice(0, dot + 1)));
  } else if (BEFORE_NAMESPACE.has(previous) || (previous === 'IN' && before.at(-2)?.text.toUpperCase() === 'TABLES')) {
    out.push(...catalog.namespaces.map((ns) => ({ text: ns, kind: 'namespace' as const, detail: 'namespace' })));
  } else if (BEFORE_TABLE.has(previous)) {
    out.push(...tables(), ...namespaces());
  } else {
    const lower = word !== '' && word === word.toLowerCase();
    const cased = (w: string) => (lower ? w.toLowerCase() : w);
    // In ORDER BY, GROUP BY and HAVING, the names the query's select list gives (`CASE ... END
    // AS x`) first, as DataFusion resolves them there, in expressions too; after a query's last
    // branch, only the names its first branch gives.
    const selectListNames = afterBranches || ['ORDER', 'GROUP', 'HAVING'].includes(clause);
    // Not in GROUP BY the name of an aggregate's value: nothing can be grouped by it.
    const given = (selectListNames ? outputs(statement, query) : []).flatMap(
      ({ name, aggregate }) => (name === undefined || (aggregate && clause === 'GROUP') ? [] : [name]),
    );
    const selectList = { namespace: '', name: 'select list', type: 'output', columns: given.map((name) => ({ name, type: '' })) };
    out.push(...columns(selectList));
    // Then the statement's own tables (CTEs, subqueries): they are what its query reads.
    const inStatement = new Set(
      (afterBranches ? [] : scopes)
        .flatMap((named) => [...named.values()].filter((t) => t !== null))
        .sort((a, b) => Number(a.namespace !== '') - Number(b.namespace !== '')),
    );
    for (const t of inStatement) out.push(...columns(t));
    out.push(...KEYWORDS.map((k) => ({ text: cased(k), kind: 'keyword' as const, detail: 'keyword' })));
    out.push(...FUNCTIONS.map((f) => ({ text: cased(f), kind: 'function' as const, detail: 'function' })));
    // Tables as qualifiers, but not one by a name its alias hides.
    out.push(...tables().filter((t) => qualifies(t.text.toLowerCase()) !== null), ...namespaces());
    // Before the statement names a table, the columns of every table.
    if (inStatement.size === 0 && given.length === 0) for (const t of catalog.tables) out.push(...columns(t));
  }

  const needle = word.toLowerCase();
  const seen = new Set<string>();
  const items = out.filter((c) => {
    const text = c.text.toLowerCase();
    // A table also matches by its own name: `tod` offers `app.todos`.
    const matches = text.startsWith(needle) || (c.kind === 'table' && text.slice(text.indexOf('.') + 1).startsWith(needle));
    if (!matches || seen.has(text) || (!explicit && text === needle)) return false;
    seen.add(text);
    return true;
  });
  return { from, to, items };
}

/**
 * A statement as completion reads it: its significant tokens and how they nest, the catalog and
 * namespace its names are looked up in, and the tables it makes itself.
 */
interface Statement {
  tokens: Token[];
  nesting: Nesting;
  catalog: Catalog;
  namespace: string;
  derived: Derived[];
}

/** The statement of the significant `tokens`, with the tables it makes itself. */
function readStatement(tokens: Token[], catalog: Catalog, namespace: string): Statement {
  const statement = { tokens, nesting: nest(tokens), catalog, namespace };
  return { ...statement, derived: derivedTables(statement) };
}

/** The tokens of the statement the caret is in (statements end at `;`). */
function statementAt(tokens: Token[], caret: number): Token[] {
  let first = 0;
  let last = tokens.length;
  tokens.forEach((t, i) => {
    if (t.text !== ';' || t.kind !== 'operator') return;
    if (t.end <= caret) first = i + 1;
    else if (last === tokens.length) last = i;
  });
  return tokens.slice(first, last);
}

/** The table `name` (`table` in the default namespace, or `ns.table`) names, if any. */
function resolve(catalog: Catalog, name: string, namespace: string): CatalogTable | undefined {
  const [ns, table] = (name.includes('.') ? name.split('.', 2) : [namespace, name]).map((n) => n.toLowerCase());
  return catalog.tables.find((t) => t.namespace.toLowerCase() === ns && t.name.toLowerCase() === table);
}

/**
 * The tables the query `q` of a statement reads, by the names it may use for them (lower
 * case): `ns.table`, a bare `table` of the default namespace or a CTE visible there, after
 * FROM, JOIN, INTO, UPDATE, TABLE, DESCRIBE, a comma in FROM or the `(` of a join in
 * parentheses, and each one's alias (`FROM app.todos t`, `... AS t`, with the column list an
 * alias may give: `t(a, b)`) and bare name; its subqueries in FROM by their alias. Not those
 * of the queries inside it, nor those named from `until` on. An alias hides the table's own
 * names: they name null (in SQL, `FROM app.todos t` reads the table as `t` only), unless the
 * table comes again without one.
 */
function tablesNamed(statement: Statement, q: number, until = Infinity): Map<string, CatalogTable | null> {
  const { tokens, nesting, catalog, namespace, derived } = statement;
  const own = (nesting.own[q] ?? []).filter((i) => i < until);
  const subqueries = own
    .map((open) => derivedAt(derived, open, nesting.close[open]))
    .filter((d): d is Derived => d?.cte === false);
  const named = new Map<string, CatalogTable | null>(subqueries.map((d) => [d.name.toLowerCase(), d]));
  for (const i of own) {
    const t = tokens[i];
    if (!isName(t)) continue;
    const qualified = tokens[i + 1]?.text === '.' && isName(tokens[i + 2]);
    const name = qualified ? `${t.text}.${tokens[i + 2].text}` : t.text;
    const previous = tokens[i - 1]?.text.toUpperCase() ?? '';
    const inFromList = previous === ',' && nesting.clause[i] === 'FROM';
    // `FROM (app.todos t JOIN app.lists l ON ...)`: a join in parentheses.
    const inJoin =
      previous === '(' && ['FROM', 'JOIN'].includes(nesting.clause[i - 1]) && nesting.opens[i - 1] === undefined;
    if (!BEFORE_TABLE.has(previous) && !inFromList && !inJoin) continue;
    const cte = qualified
      ? undefined
      : derived.find((d) => d.name.toLowerCase() === nameOf(t).toLowerCase() && cteVisible(nesting, d, i, q));
    const table = cte ?? resolve(catalog, name, namespace);
    if (!table) continue;
    const last = qualified ? i + 2 : i;
    const aliasAt = tokens[last + 1]?.text.toUpperCase() === 'AS' ? last + 2 : last + 1;
    // `t` in `t(a, b)` is read as a function's name.
    const alias = isName(tokens[aliasAt]) && !isKeyword(tokens[aliasAt].text) ? tokens[aliasAt] : undefined;
    const listed = alias && tokens[aliasAt + 1]?.text === '(' ? columnList(tokens, nesting.close, aliasAt + 1) : undefined;
    const source = listed ? { ...table, columns: renamed(table.columns, listed) } : table;
    for (const itsName of [name, table.name].map((n) => n.toLowerCase())) {
      if (!alias) named.set(itsName, source);
      else if (!named.has(itsName)) named.set(itsName, null);
    }
    if (alias) named.set(alias.text.toLowerCase(), source);
  }
  return named;
}

/** The names in the column list whose `(` is at `open`: `x(a, b)`. */
function columnList(tokens: Token[], close: number[], open: number): string[] {
  return tokens.slice(open + 1, close[open]).filter(isWord).map(nameOf);
}

/**
 * A table's columns, given the names in a column list (`AS x(a, b)`): those replace the first
 * ones' names and the others keep theirs, as in PostgreSQL. A column without a name (an
 * expression without an alias) has one only from the list.
 */
function renamed(columns: { name?: string; type: string }[], list: string[] = []): CatalogColumn[] {
  const listed = columns.map((c, i) => ({ type: c.type, name: list[i] ?? c.name }));
  const more = list.slice(columns.length).map((name) => ({ name, type: '' }));
  return [...listed, ...more].filter((c): c is CatalogColumn => c.name !== undefined);
}

/** A table a statement makes itself: a CTE (`WITH name AS (SELECT ...)`) or a subquery in FROM. */
interface Derived extends CatalogTable {
  cte: boolean;
  /** Where its body's `(` and `)` are among the statement's tokens (which query it is in, what comes after it). */
  open: number;
  end: number;
  /** Whether it is a CTE of `WITH RECURSIVE`, visible in its own body. */
  recursive: boolean;
}

/**
 * The table in `derived` (in the order of their ends) whose body's `(` is at `open` and its `)`
 * at `end`, if any: found without reading them all, as a query may hold many.
 */
function derivedAt(derived: Derived[], open: number, end: number): Derived | undefined {
  let from = 0;
  for (let to = derived.length; from < to; ) {
    const middle = (from + to) >> 1;
    if (derived[middle].end < end) from = middle + 1;
    else to = middle;
  }
  for (let i = from; derived[i]?.end === end; i++) if (derived[i].open === open) return derived[i];
  return undefined;
}

/**
 * A query of a statement: the statement's own, one in parentheses, or one branch of a query
 * whose branches UNION, INTERSECT or EXCEPT join.
 */
interface Query {
  /** Where its `(` is; none for the statement's own and for a branch. */
  open?: number;
  /** The query it is in (a branch's is the query it is a branch of); none for the statement's own. */
  around?: number;
  /**
   * Whether it may read the tables of the query it is in: a subquery in WHERE or the select
   * list may (it is correlated), a CTE's body or a subquery in FROM may not, unless LATERAL. A
   * branch may: it reads what its query reads (the CTEs of its WITH, an outer query).
   */
  readsAround: boolean;
  /** Whether it is a LATERAL subquery in FROM: of its query's tables, it reads those before it. */
  lateral?: boolean;
  /**
   * Whether it is a branch of `around` (`SELECT ... UNION SELECT ...` without parentheses): its
   * FROM and aliases are its own; the ORDER BY, LIMIT and OFFSET after the last branch are
   * `around`'s.
   */
  branch: boolean;
  /**
   * Whether its WITH is `WITH RECURSIVE`: then its CTEs are visible in all of it, their own
   * bodies included (`WITH RECURSIVE r AS (... UNION ALL SELECT ... FROM r)`).
   */
  recursive: boolean;
  /**
   * Its first branch, if branches UNION, INTERSECT or EXCEPT join in it, and where the first of
   * those words is: its tokens from its body to there are the first branch's.
   */
  firstBranch?: number;
  firstSetOperation?: number;
  /** How many parentheses its own tokens are in. */
  depth: number;
  /**
   * Where the query that names its columns starts: its first SELECT or VALUES, or the `(` of a
   * first branch in parentheses.
   */
  body?: number;
}

/**
 * How a statement's significant tokens nest: for each `(` the index of its `)` (the end if it
 * is not closed yet) and the query it opens, if any; for each token the clause it is in (the
 * last of CLAUSES before it in its parentheses; then the clause after the last token) and the
 * query it is in (an index into `queries`); for each query, its own tokens (not those of the
 * queries inside it), so that finding what one query names does not read the whole statement.
 */
interface Nesting {
  close: number[];
  opens: (number | undefined)[];
  clause: string[];
  query: number[];
  queries: Query[];
  own: number[][];
}

function nest(tokens: Token[]): Nesting {
  const close = matchingParentheses(tokens);
  const opensQuery = queryOpenings(tokens, close);
  const opens: (number | undefined)[] = [];
  const clause: string[] = [];
  const query: number[] = [];
  const queries: Query[] = [{ readsAround: false, branch: false, recursive: false, depth: 0 }];
  // The `(`s not closed yet: the clause and query around each.
  const open: [string, number][] = [];
  let now = '';
  let q = 0;
  tokens.forEach((t, i) => {
    clause[i] = now;
    // A `(` and its `)` belong to the query around them.
    query[i] = q;
    const word = t.text.toUpperCase();
    // Whether the token is the query's own, not in parentheses inside it.
    const own = queries[q].depth === open.length;
    const cteBody = tokens[i - 1]?.text.toUpperCase() === 'AS';
    const startsBody = word === 'SELECT' || word === 'VALUES' || (opensQuery[i] && !cteBody);
    if (own && startsBody && queries[q].body === undefined) queries[q].body = i;
    if (t.text === '(') {
      open.push([now, q]);
      if (opensQuery[i]) {
        const lateral = tokens[i - 1]?.text.toUpperCase() === 'LATERAL';
        const readsAround = lateral || !['WITH', 'FROM', 'JOIN'].includes(now);
        queries.push({ open: i, around: q, readsAround, lateral, branch: false, recursive: false, depth: open.length });
        q = opens[i] = queries.length - 1;
      }
      now = '';
    } else if (t.text === ')') {
      const [outer, outerQuery] = open.pop() ?? [now, q];
      now = outer;
      q = query[i] = outerQuery;
    } else if (t.kind === 'keyword' && CLAUSES.has(word)) {
      now = word;
      if (own && SET_OPERATIONS.has(word)) q = query[i] = nextBranch(queries, q, i);
      else if (own && AFTER_BRANCHES.has(word) && queries[q].branch) q = query[i] = queries[q].around ?? 0;
      else if (word === 'WITH' && tokens[i + 1]?.text.toUpperCase() === 'RECURSIVE') queries[q].recursive = true;
    }
  });
  clause.push(now);
  // The tokens of a query from its body to its first UNION, INTERSECT or EXCEPT, and the
  // queries in parentheses among them, are its first branch's: moved once, after the walk, as
  // moving them at each first set operation takes time in the number of nested queries squared.
  const firstBranchAt = (q: number, at: number) => {
    const { body, firstBranch, firstSetOperation = -1 } = queries[q];
    return firstBranch !== undefined && body !== undefined && at >= body && at < firstSetOperation ? firstBranch : q;
  };
  query.forEach((q, i) => (query[i] = firstBranchAt(q, i)));
  for (const inner of queries) {
    if (inner.open !== undefined && inner.around !== undefined) inner.around = firstBranchAt(inner.around, inner.open);
  }
  const own: number[][] = queries.map(() => []);
  query.forEach((q, i) => own[q].push(i));
  return { close, opens, clause, query, queries, own };
}

/**
 * Starts the next branch of query `q` at the UNION, INTERSECT or EXCEPT at `at` and returns it.
 * At the first one, its first branch too: what is in it since the query's body started becomes
 * that branch's when `nest` is done.
 */
function nextBranch(queries: Query[], q: number, at: number): number {
  const depth = queries[q].depth;
  const branch = (around: number): Query => ({ around, readsAround: true, branch: true, recursive: false, depth });
  let compound = q;
  if (queries[q].branch) compound = queries[q].around ?? 0;
  else {
    queries[q].firstBranch = queries.length;
    queries[q].firstSetOperation = at;
    queries.push({ ...branch(q), body: queries[q].body });
  }
  queries.push(branch(compound));
  return queries.length - 1;
}

/** For each `(` among `tokens`, the index of its `)` (the end if it is not closed yet). */
function matchingParentheses(tokens: Token[]): number[] {
  const close = tokens.map(() => tokens.length);
  const open: number[] = [];
  tokens.forEach((t, i) => {
    if (t.text === '(') open.push(i);
    else if (t.text === ')' && open.length > 0) close[open.pop() ?? 0] = i;
  });
  return close;
}


/**
 * For each token, whether it is a `(` that opens a query in parentheses: `(SELECT ...`, `(WITH
 * ...`, `(VALUES ...`, or one whose first branch is in parentheses of its own, `((SELECT ...)
 * UNION (SELECT ...))`: then a set operation, ORDER BY, LIMIT, OFFSET or the `)` follows the
 * branch (in `((SELECT ...) s JOIN ...)` the parentheses hold a join). Read from the end, each
 * `(` from the one after it, so that a pasted run of many `(` is read once, in a loop.
 */
function queryOpenings(tokens: Token[], close: number[]): boolean[] {
  const opens = tokens.map(() => false);
  for (let i = tokens.length - 1; i >= 0; i--) {
    if (tokens[i].text !== '(') continue;
    const next = tokens[i + 1]?.text.toUpperCase();
    if (next === 'SELECT' || next === 'WITH' || next === 'VALUES') opens[i] = true;
    else if (next === '(' && opens[i + 1]) {
      // Nothing after the branch is a query being typed.
      const after = tokens[close[i + 1] + 1]?.text.toUpperCase();
      opens[i] = after === undefined || after === ')' || SET_OPERATIONS.has(after) || AFTER_BRANCHES.has(after);
    }
  }
  return opens;
}

/**
 * The innermost query around the caret, which is before the token at `at`: the query of the
 * token before it, or the one that token opens.
 */
function queryAt(nesting: Nesting, at: number): number {
  if (at === 0) return 0;
  return nesting.opens[at - 1] ?? nesting.query[at - 1] ?? 0;
}

/**
 * The clause of its query the token at `at` is in: outside the parentheses around it that open
 * no query (`ORDER BY lower(x)`: ORDER; `SELECT array_agg(x ORDER BY y)`: SELECT). Out of one
 * `(` at a time, in a loop: pasted parentheses may nest deeper than a stack goes.
 */
function queryClause(tokens: Token[], nesting: Nesting, at: number): string {
  for (let open = Math.min(at, tokens.length) - 1; open >= 0; open--) {
    if (tokens[open].text !== '(' || nesting.close[open] < at) continue;
    if (nesting.opens[open] !== undefined) break;
    at = open;
  }
  return nesting.clause[at] ?? '';
}

/** Whether `q` is a query whose branches UNION, INTERSECT or EXCEPT join. */
function hasBranches(nesting: Nesting, q: number): boolean {
  return nesting.queries[q]?.firstBranch !== undefined;
}

/** `q` and the queries it is in, innermost first. */
function enclosing(nesting: Nesting, q: number): number[] {
  const out = [q];
  for (let a = nesting.queries[q].around; a !== undefined; a = nesting.queries[a].around) out.push(a);
  return out;
}

/**
 * `q` and the queries whose tables it may read, innermost first: those it is in, but not the
 * one whose FROM or WITH it is in; each with where its tables must be named before (a LATERAL
 * subquery reads those before it in the FROM around it).
 */
function readable(nesting: Nesting, q: number): { query: number; until: number }[] {
  const out = [{ query: q, until: Infinity }];
  for (let at = q; ; ) {
    let next = nesting.queries[at].around;
    while (next !== undefined && !nesting.queries[at].readsAround) {
      at = next;
      next = nesting.queries[at].around;
    }
    if (next === undefined) return out;
    const { lateral, open } = nesting.queries[at];
    out.push({ query: next, until: lateral && open !== undefined ? open : Infinity });
    at = next;
  }
}

/**
 * Whether `d` is a CTE that the token at `at`, in query `q`, may read: after it (anywhere for
 * `WITH RECURSIVE`), in a query its WITH is in.
 */
function cteVisible(nesting: Nesting, d: Derived, at: number, q: number): boolean {
  return d.cte && (d.recursive || at > d.end) && enclosing(nesting, q).includes(nesting.query[d.open]);
}

/** Words that start a part of a query; a subquery after FROM or JOIN is a table. */
const CLAUSES = new Set([
  'WITH', 'SELECT', 'FROM', 'JOIN', 'ON', 'WHERE', 'GROUP', 'HAVING', 'ORDER', 'LIMIT', 'OFFSET', 'UNION', 'INTERSECT',
  'EXCEPT',
]);
/** Words that join the branches of a query: `SELECT ... UNION ALL SELECT ...`. */
const SET_OPERATIONS = new Set(['UNION', 'INTERSECT', 'EXCEPT']);
/** The clauses after a query's last branch that are the whole query's, not the branch's. */
const AFTER_BRANCHES = new Set(['ORDER', 'LIMIT', 'OFFSET']);
/** Words that are values, not columns. */
const LITERALS = new Set(['NULL', 'TRUE', 'FALSE', 'CURRENT_USER', 'CURRENT_TIMESTAMP']);
/** The server's aggregate functions, as its `information_schema.routines` lists them. */
const AGGREGATES = new Set([
  'ANY_VALUE', 'APPROX_DISTINCT', 'APPROX_MEDIAN', 'APPROX_PERCENTILE_CONT', 'APPROX_PERCENTILE_CONT_WITH_WEIGHT',
  'ARRAY_AGG', 'AVG', 'BIT_AND', 'BIT_OR', 'BIT_XOR', 'BOOL_AND', 'BOOL_OR', 'CORR', 'COUNT', 'COVAR', 'COVAR_POP',
  'COVAR_SAMP', 'FIRST_VALUE', 'GROUPING', 'LAST_VALUE', 'MAX', 'MEAN', 'MEDIAN', 'MIN', 'NTH_VALUE',
  'PERCENTILE_CONT', 'QUANTILE_CONT', 'REGR_AVGX', 'REGR_AVGY', 'REGR_COUNT', 'REGR_INTERCEPT', 'REGR_R2',
  'REGR_SLOPE', 'REGR_SXX', 'REGR_SXY', 'REGR_SYY', 'STDDEV', 'STDDEV_POP', 'STDDEV_SAMP', 'STRING_AGG', 'SUM', 'VAR',
  'VAR_POP', 'VAR_POPULATION', 'VAR_SAMP', 'VAR_SAMPLE',
]);

/** A name as the server reads it: without its quotes. */
function nameOf(t: Token): string {
  return t.text.startsWith('"') ? t.text.replace(/^"|"$/g, '').replace(/""/g, '"') : t.text;
}

/** Whether a token is a name; `todos` in `INSERT INTO app.todos (id)` is read as a function's. */
function isName(t: Token | undefined): t is Token {
  return t?.kind === 'identifier' || t?.kind === 'function';
}

/** Whether a token is a word: a name, a keyword, a function's name. */
function isWord(t: Token | undefined): t is Token {
  return t?.kind === 'identifier' || t?.kind === 'keyword' || t?.kind === 'function';
}

/**
 * The CTEs and subqueries in FROM of a statement, found by matching parentheses: `WITH name [(a,
 * b)] AS (SELECT ...)` and `FROM (SELECT ...) [AS] name [(a, b)]` (also after JOIN or a comma in
 * FROM, and `(VALUES ...)` there). Inner ones come first, so that `SELECT *` over one of them
 * knows its columns.
 */
function derivedTables(statement: Omit<Statement, 'derived'>): Derived[] {
  const { tokens, nesting } = statement;
  const { close, clause } = nesting;
  const upper = (i: number) => tokens[i]?.text.toUpperCase() ?? '';

  const found: { name: string; cte: boolean; listed?: string[]; open: number; end: number }[] = [];
  tokens.forEach((t, i) => {
    const previous = upper(i - 1);
    const afterWith = previous === 'WITH' || previous === 'RECURSIVE' || previous === ',';
    if (clause[i] === 'WITH' && afterWith && (t.kind === 'identifier' || t.kind === 'function')) {
      let at = i + 1;
      let listed: string[] | undefined;
      if (upper(at) === '(') {
        listed = columnList(tokens, close, at);
        at = close[at] + 1;
      }
      if (upper(at) === 'AS' && nesting.opens[at + 1] !== undefined) {
        found.push({ name: nameOf(t), cte: true, listed, open: at + 1, end: close[at + 1] });
      }
    }
    if (nesting.opens[i] !== undefined && (clause[i] === 'FROM' || clause[i] === 'JOIN')) {
      const end = close[i];
      const at = upper(end + 1) === 'AS' ? end + 2 : end + 1;
      // `s` in `s(a, b)` is read as a function's name.
      const alias = tokens[at];
      if (alias?.kind === 'identifier' || alias?.kind === 'function') {
        const listed = upper(at + 1) === '(' ? columnList(tokens, close, at + 1) : undefined;
        found.push({ name: nameOf(alias), cte: false, listed, open: i, end });
      }
    }
  });

  found.sort((a, b) => a.end - b.end);
  const done: Derived[] = [];
  // Each one's columns are read with those found before it.
  const withDone = { ...statement, derived: done };
  for (const f of found) {
    const returned = outputs(withDone, nesting.opens[f.open] ?? 0);
    const columns = renamed(returned.map(({ name }) => ({ name, type: '' })), f.listed);
    const type = f.cte ? 'cte' : 'subquery';
    const recursive = f.cte && nesting.queries[nesting.query[f.open]].recursive;
    done.push({ namespace: '', name: f.name, type, columns, cte: f.cte, open: f.open, end: f.end, recursive });
  }
  return done;
}

/**
 * A column a query returns: its name (none for an expression without an alias), and whether
 * its value is an aggregate's or a window function's, which GROUP BY cannot name.
 */
interface Output {
  name?: string;
  aggregate: boolean;
}

/**
 * The columns the query `q` returns, in order (see outputNames; its `*` stands for the tables in
 * its own FROM): for a query with branches, those of the first branch, as in PostgreSQL; for
 * VALUES, the names the server gives.
 */
function outputs(statement: Statement, q: number): Output[] {
  const { tokens, nesting } = statement;
  const { queries } = nesting;
  let first = queries[q]?.firstBranch ?? q;
  let body = queries[first]?.body;
  // A first branch in parentheses: its query's, in a loop, as pasted parentheses may nest
  // deeper than a stack goes.
  for (;;) {
    const inner = body === undefined ? undefined : nesting.opens[body];
    if (inner === undefined) break;
    first = queries[inner].firstBranch ?? inner;
    body = queries[first].body;
  }
  if (body === undefined) return [];
  // The query's end: the `)` of the innermost parentheses around it.
  let around: number | undefined = first;
  while (around !== undefined && queries[around].open === undefined) around = queries[around].around;
  const open = around === undefined ? undefined : queries[around].open;
  const end = open === undefined ? tokens.length : nesting.close[open];
  if (tokens[body].text.toUpperCase() === 'VALUES') {
    return valuesColumns(span(tokens, body + 1, end)).map((name) => ({ name, aggregate: false }));
  }
  return outputNames(span(tokens, body, end), tablesNamed(statement, first));
}

/**
 * The tokens from `from` to `to` (exclusive), read as they are needed: a query runs to the end
 * of its parentheses, but only its first part is read, and copying the rest for each of many
 * nested queries would take time in their number squared.
 */
function* span(tokens: Token[], from: number, to: number): Generator<Token> {
  for (let i = from; i < to; i++) yield tokens[i];
}

/**
 * The names the server gives the columns of `VALUES (1, 'a'), ...`, given the tokens after
 * VALUES: `column1`, `column2`, ..., one for each value of the first row.
 */
function valuesColumns(rows: Iterable<Token>): string[] {
  let depth = 0;
  let count = 0;
  for (const t of rows) {
    if (t.text === '(') {
      depth++;
      count = Math.max(count, 1);
    } else if (t.text === ')') depth = Math.max(0, depth - 1);
    else if (t.text === ',' && depth === 1) count++;
    if (depth === 0) break;
  }
  return Array.from({ length: count }, (_, i) => `column${i + 1}`);
}

/**
 * The columns a query (`SELECT ...`, maybe after a WITH) returns, named: a column's name
 * (`t.title` is `title`), an alias (`count(*) AS n`, `count(*) n`), the columns of every table
 * `*` stands for, or of `t` for `t.*`. An expression without an alias gets none (the server
 * would name it after the expression).
 */
function outputNames(query: Iterable<Token>, named: Map<string, CatalogTable | null>): Output[] {
  // The select list: from the first SELECT outside parentheses to FROM (or the end), split at
  // its commas.
  const items: Token[][] = [];
  let depth = 0;
  let inList = false;
  for (const t of query) {
    const word = t.kind === 'keyword' ? t.text.toUpperCase() : '';
    if (depth === 0 && !inList && word === 'SELECT') {
      inList = true;
      items.push([]);
      continue;
    }
    if (depth === 0 && inList && CLAUSES.has(word)) break;
    if (inList) {
      if (depth === 0 && t.text === ',') items.push([]);
      else items.at(-1)?.push(t);
    }
    if (t.text === '(') depth++;
    else if (t.text === ')') depth = Math.max(0, depth - 1);
  }

  const outputs: Output[] = [];
  const columnsOf = (t: CatalogTable | null | undefined) =>
    t?.columns.map((c) => ({ name: c.name, aggregate: false })) ?? [];
  for (const all of items) {
    const item = ['DISTINCT', 'ALL'].includes(all[0]?.text.toUpperCase() ?? '') ? all.slice(1) : all;
    const last = item.at(-1);
    const second = item.at(-2);
    // `a.b.c`: words joined by dots.
    const reference = item.length % 2 === 1 && item.every((t, i) => (i % 2 ? t.text === '.' : isWord(t)));
    if (item.length === 1 && last?.text === '*') {
      for (const t of new Set(named.values())) outputs.push(...columnsOf(t));
      continue;
    }
    if (last?.text === '*' && second?.text === '.') {
      outputs.push(...columnsOf(named.get(item.slice(0, -2).map(nameOf).join('').toLowerCase())));
      continue;
    }
    const aliased =
      (second?.text.toUpperCase() === 'AS' && isWord(last)) ||
      (reference && !LITERALS.has(last?.text.toUpperCase() ?? '')) ||
      (last?.kind === 'identifier' && endsValue(item.slice(0, -1)));
    outputs.push({ name: aliased && last ? nameOf(last) : undefined, aggregate: aggregates(item) });
  }
  return outputs;
}

/**
 * Whether a select list item calls an aggregate (`count(*) + 1`) or window function (`... OVER
 * (...)`) outside the queries in it (`(SELECT count(*) ...)` is one value per row).
 */
function aggregates(item: Token[]): boolean {
  // For each `(` the item is in at a token, whether it is in a query there.
  const inQuery: boolean[] = [];
  for (let i = 0; i < item.length; i++) {
    const word = item[i].text.toUpperCase();
    const next = item[i + 1]?.text.toUpperCase();
    if (word === '(') {
      const opensQuery = next === 'SELECT' || next === 'WITH' || next === 'VALUES';
      inQuery.push(inQuery.at(-1) === true || opensQuery);
    } else if (word === ')') inQuery.pop();
    else if (!inQuery.at(-1) && (word === 'OVER' || (next === '(' && AGGREGATES.has(word)))) return true;
  }
  return false;
}

/**
 * Whether a select list item `value` ends with a value, so that a name after it is its alias
 * given without AS: `count(*) n`, `t.title name`, `'x' label`, `1 one`, `CASE ... END x`,
 * `done::int n`.
 */
function endsValue(value: Token[]): boolean {
  const last = value.at(-1);
  if (!last) return false;
  if (value.at(-2)?.text === '::') return isWord(last);
  return (
    last.text === ')' ||
    ['string', 'number', 'parameter', 'identifier'].includes(last.kind) ||
    last.text.toUpperCase() === 'END'
  );
}

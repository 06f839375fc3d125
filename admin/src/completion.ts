// What the SQL editor offers at the caret: columns of the tables the statement names first,
// then keywords and functions, tables (`ns.table`) and namespaces; after FROM, JOIN, INTO,
// UPDATE and TABLE only tables and namespaces; after `ns.` that namespace's tables; after
// `table.` or `alias.` that table's columns.
import type { Catalog, CatalogTable } from './catalog';
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

/** At most this many entries are offered. */
const MAX_ITEMS = 50;
/** Words after which a table name comes. */
const BEFORE_TABLE = new Set(['FROM', 'JOIN', 'INTO', 'UPDATE', 'TABLE']);
/** Words after which a namespace name comes. */
const BEFORE_NAMESPACE = new Set(['NAMESPACE', 'USE', 'DATABASE']);

/**
 * The completions for the word at `caret` in `text`, or null where nothing is completed
 * (inside a string or comment, a number). `namespace` is the default namespace: its tables
 * also complete unqualified. Unless `explicit` (Ctrl+Space), an empty word gets nothing and
 * an entry equal to the word is left out (it would change nothing).
 */
export function complete(
  text: string,
  caret: number,
  catalog: Catalog,
  namespace: string | undefined,
  explicit: boolean,
): Completions | null {
  const tokens = tokenize(text);
  if (tokens.some((t) => openAt(t, caret))) return null;
  let from = caret;
  while (from > 0 && /[\w.]/.test(text[from - 1])) from--;
  let to = caret;
  while (to < text.length && /\w/.test(text[to])) to++;
  const word = text.slice(from, caret);
  if (/^\d/.test(word) || (!word && !explicit)) return null;

  const statement = statementAt(tokens, caret);
  const before = statement.filter((t) => t.end <= from && significant(t));
  const previous = before.at(-1)?.text.toUpperCase() ?? '';
  const named = tablesNamed(statement.filter(significant), catalog, namespace);
  const out: Completion[] = [];
  const table = (t: CatalogTable, text = `${t.namespace}.${t.name}`) => ({ text, kind: 'table' as const, detail: t.type });
  // Tables of the default namespace also by their bare name.
  const tables = () => catalog.tables.flatMap((t) => (t.namespace === namespace ? [table(t, t.name), table(t)] : [table(t)]));
  const namespaces = () => catalog.namespaces.map((ns) => ({ text: `${ns}.`, kind: 'namespace' as const, detail: 'namespace' }));
  const columns = (t: CatalogTable, prefix = '') =>
    t.columns.map((c) => ({ text: prefix + c.name, kind: 'column' as const, detail: `${t.namespace}.${t.name} ${c.type}` }));

  const dot = word.lastIndexOf('.');
  if (dot >= 0) {
    const qualifier = word.slice(0, dot).toLowerCase();
    out.push(...catalog.tables.filter((t) => t.namespace.toLowerCase() === qualifier).map((t) => table(t)));
    const qualified = named.get(qualifier) ?? resolve(catalog, qualifier, namespace);
    if (qualified) out.push(...columns(qualified, word.slice(0, dot + 1)));
  } else if (BEFORE_NAMESPACE.has(previous) || (previous === 'IN' && before.at(-2)?.text.toUpperCase() === 'TABLES')) {
    out.push(...catalog.namespaces.map((ns) => ({ text: ns, kind: 'namespace' as const, detail: 'namespace' })));
  } else if (BEFORE_TABLE.has(previous)) {
    out.push(...tables(), ...namespaces());
  } else {
    const lower = word !== '' && word === word.toLowerCase();
    const cased = (w: string) => (lower ? w.toLowerCase() : w);
    const inStatement = new Set(named.values());
    for (const t of inStatement) out.push(...columns(t));
    out.push(...KEYWORDS.map((k) => ({ text: cased(k), kind: 'keyword' as const, detail: 'keyword' })));
    out.push(...FUNCTIONS.map((f) => ({ text: cased(f), kind: 'function' as const, detail: 'function' })));
    out.push(...tables(), ...namespaces());
    // Before the statement names a table, the columns of every table.
    if (inStatement.size === 0) for (const t of catalog.tables) out.push(...columns(t));
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
  return { from, to, items: items.slice(0, MAX_ITEMS) };
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
function resolve(catalog: Catalog, name: string, namespace: string | undefined): CatalogTable | undefined {
  const [ns, table] = (name.includes('.') ? name.split('.', 2) : [namespace ?? '', name]).map((n) => n.toLowerCase());
  return catalog.tables.find((t) => t.namespace.toLowerCase() === ns && t.name.toLowerCase() === table);
}

/**
 * The tables a statement names, by the names it may use for them (lower case): `ns.table`
 * anywhere, a bare `table` of the default namespace after FROM, JOIN, INTO, UPDATE or TABLE,
 * and each one's alias (`FROM app.todos t`, `... AS t`) and bare name.
 */
function tablesNamed(tokens: Token[], catalog: Catalog, namespace: string | undefined): Map<string, CatalogTable> {
  const named = new Map<string, CatalogTable>();
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (t.kind !== 'identifier') continue;
    const qualified = tokens[i + 1]?.text === '.' && tokens[i + 2]?.kind === 'identifier';
    const name = qualified ? `${t.text}.${tokens[i + 2].text}` : t.text;
    if (!qualified && !BEFORE_TABLE.has(tokens[i - 1]?.text.toUpperCase() ?? '')) continue;
    const table = resolve(catalog, name, namespace);
    if (!table) continue;
    named.set(name.toLowerCase(), table);
    named.set(table.name.toLowerCase(), table);
    i += qualified ? 2 : 0;
    const next = tokens[i + 1]?.text.toUpperCase() === 'AS' ? tokens[i + 2] : tokens[i + 1];
    if (next?.kind === 'identifier' && !isKeyword(next.text)) named.set(next.text.toLowerCase(), table);
  }
  return named;
}

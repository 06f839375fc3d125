// What the SQL editor offers at the caret: the crate kalamdb-complete (complete/, the shell's
// completion too) as WebAssembly, built by scripts/build-admin.sh into admin/wasm. The rules
// are its, and its cases (complete/tests/completion-cases.json); here only how the console
// loads it: on the editor's first completion (the console's first load does not carry it), and
// the catalog handed over once per catalog read, not per keystroke.
import type { Catalog } from './catalog';
import type { CompletionCatalog } from '../wasm/kalamdb_complete';

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
  /** Best first. */
  items: Completion[];
}

/**
 * The completions for the word at `caret` in `text`, or null where nothing is completed (in a
 * string or comment, a number). `session` is the session's namespace; unless `explicit`
 * (Ctrl+Space), an empty word gets nothing. At most `limit` entries come, the first ones.
 */
export type Complete = (
  text: string,
  caret: number,
  catalog: Catalog,
  session: string | undefined,
  explicit: boolean,
  limit?: number,
) => Completions | null;

/** At most this many entries are offered (the list on screen). */
const MAX_ITEMS = 50;

let loading: Promise<Complete> | null = null;

/**
 * The catalog as the module takes it: flat lists of strings (see complete/src/wasm.rs), which
 * cross faster than JSON and need no JSON reader in the module.
 */
function handOver(make: typeof CompletionCatalog, catalog: Catalog): CompletionCatalog {
  const tables = catalog.tables.flatMap((t) => [t.namespace, t.name, t.type]);
  const counts = Uint32Array.from(catalog.tables, (t) => t.columns.length);
  const columns = catalog.tables.flatMap((t) => t.columns.flatMap((c) => [c.name, c.type]));
  return new make(catalog.namespaces, tables, counts, columns);
}

/**
 * Completion, loaded on first use (the module and its .wasm are files of their own). A failed
 * load is tried again on the next use.
 */
export function loadCompletion(): Promise<Complete> {
  loading ??= import('../wasm/kalamdb_complete.js').then(async (wasm) => {
    await wasm.default();
    let handed: { catalog: Catalog; ready: CompletionCatalog } | null = null;
    return (text, caret, catalog, session, explicit, limit = MAX_ITEMS) => {
      if (handed?.catalog !== catalog) {
        handed?.ready.free();
        handed = { catalog, ready: handOver(wasm.CompletionCatalog, catalog) };
      }
      const found = handed.ready.complete(text, caret, session, explicit, limit);
      return found === undefined ? null : (JSON.parse(found) as Completions);
    };
  });
  loading.catch(() => {
    loading = null;
  });
  return loading;
}

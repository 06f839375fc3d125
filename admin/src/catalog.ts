// The catalog the console reads: namespaces and tables for the schema page, and with their
// columns the names the SQL editor completes (kept for the session; read again after DDL run
// here, and when objects may have been created elsewhere: see `refreshIfStale`).
import { useEffect, useState } from 'preact/hooks';
import { onSession, sql } from './api';
import { tokenize } from './sqlsyntax';
import { objects } from './ui';
import type { Value } from './wire';

/** The namespaces, then the tables (what the schema page lists). */
export const CATALOG_SQL =
  'SELECT name FROM system.namespaces ORDER BY name; ' +
  'SELECT namespace, table_name, table_type, schema_version, flush_policy, deleted_retention_hours, ' +
  'access_level, storage, created_at FROM system.tables ORDER BY namespace, table_name';

/**
 * The columns of those tables (the rows DESCRIBE TABLE shows), then those of the system
 * tables, which `system.tables` does not list.
 */
const COLUMNS_SQL =
  'SELECT namespace, table_name, column_name, data_type FROM system.columns ' +
  'ORDER BY namespace, table_name, ordinal_position; ' +
  "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'system' " +
  'ORDER BY table_name, ordinal_position';

export interface CatalogColumn {
  name: string;
  type: string;
}

export interface CatalogTable {
  namespace: string;
  name: string;
  /** `user`, `shared`, `stream` or `system`. */
  type: string;
  columns: CatalogColumn[];
}

/** What the editor completes. */
export interface Catalog {
  namespaces: string[];
  tables: CatalogTable[];
}

const EMPTY: Catalog = { namespaces: [], tables: [] };

let loading: Promise<Catalog> | null = null;
/** When the catalog being shown was read (ms since the epoch); 0: not yet. */
let readAt = 0;
let reading = false;
const listeners = new Set<(c: Catalog) => void>();

/**
 * How old the catalog may get before the editor's focus reads it again: tables created from
 * another tab, the shell or an app show up without a reload, at the cost of one request.
 */
export const CATALOG_MAX_AGE_MS = 5_000;

/** Reads the catalog again if it is older than `maxAgeMs` (and was read, and is not being read). */
export function refreshIfStale(maxAgeMs = CATALOG_MAX_AGE_MS): void {
  if (!reading && readAt > 0 && Date.now() - readAt > maxAgeMs) refreshCatalog();
}

// A tab shown again may have missed changes made meanwhile.
if (typeof document !== 'undefined') {
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && listeners.size > 0) refreshIfStale(0);
  });
}

// Another session may see another catalog.
onSession((s) => {
  if (!s) {
    loading = null;
    readAt = 0;
  }
});

/** Reads the catalog in one request. A failure gives no names (completion is a help only). */
async function read(): Promise<Catalog> {
  const { results } = await sql(`${CATALOG_SQL}; ${COLUMNS_SQL}`);
  const [namespaces, tables, columns, systemColumns] = results.map((r) => objects(r));
  const byName = new Map<string, CatalogTable>();
  for (const t of tables ?? []) {
    const table = { namespace: str(t.namespace), name: str(t.table_name), type: str(t.table_type), columns: [] };
    byName.set(`${table.namespace}.${table.name}`, table);
  }
  for (const c of columns ?? []) {
    byName.get(`${str(c.namespace)}.${str(c.table_name)}`)?.columns.push({ name: str(c.column_name), type: str(c.data_type) });
  }
  for (const c of systemColumns ?? []) {
    const key = `system.${str(c.table_name)}`;
    let table = byName.get(key);
    if (!table) byName.set(key, (table = { namespace: 'system', name: str(c.table_name), type: 'system', columns: [] }));
    table.columns.push({ name: str(c.column_name), type: str(c.data_type) });
  }
  const names = (namespaces ?? []).map((n) => str(n.name));
  if (systemColumns?.length) names.push('system');
  return { namespaces: names, tables: [...byName.values()] };
}

function str(v: Value | undefined): string {
  return typeof v === 'string' ? v : String(v ?? '');
}

/** The session's catalog, read on first use; a failed read is tried again on the next use. */
export function loadCatalog(): Promise<Catalog> {
  if (!loading) {
    reading = true;
    loading = read().then(
      (c) => {
        reading = false;
        readAt = Date.now();
        return c;
      },
      () => {
        reading = false;
        loading = null;
        return EMPTY;
      },
    );
  }
  return loading;
}

/** Reads the catalog again and hands it to every editor that shows one. */
export function refreshCatalog(): void {
  loading = null;
  void loadCatalog().then((c) => {
    for (const fn of listeners) fn(c);
  });
}

/** Whether `text` has DDL, after which the catalog is read again. */
export function changesCatalog(text: string): boolean {
  return tokenize(text).some((t) => t.kind === 'keyword' && /^(CREATE|ALTER|DROP)$/i.test(t.text));
}

/** The catalog for a component: empty until read, then kept up to date. */
export function useCatalog(): Catalog {
  const [catalog, setCatalog] = useState<Catalog>(EMPTY);
  useEffect(() => {
    let live = true;
    void loadCatalog().then((c) => live && setCatalog(c));
    listeners.add(setCatalog);
    return () => {
      live = false;
      listeners.delete(setCatalog);
    };
  }, []);
  return catalog;
}

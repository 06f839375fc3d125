// Building statements from what the pages show, and the query history.

/** A SQL string literal (user names, passwords, ids are values). */
export function lit(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** A namespace, table or storage name as the catalog lists it; anything else is refused. */
export function ident(s: string): string {
  if (!NAME.test(s)) throw new Error(`not a valid name: ${s}`);
  return s;
}

export function tableRef(namespace: string, table: string): string {
  return `${ident(namespace)}.${ident(table)}`;
}

const HISTORY_KEY = 'kalamdb-admin.history';
const HISTORY_MAX = 50;
/** Statements that carry secrets are not kept, as in the shell's history. */
const SECRET = /\b(PASSWORD|SECRET_ACCESS_KEY)\b/i;

export interface HistoryEntry {
  sql: string;
  at: string;
  ok: boolean;
}

export function history(): HistoryEntry[] {
  try {
    const parsed: unknown = JSON.parse(sessionStorage.getItem(HISTORY_KEY) ?? '[]');
    return Array.isArray(parsed) ? (parsed as HistoryEntry[]) : [];
  } catch {
    return [];
  }
}

/** Adds a statement to this tab's history (newest first, no duplicates, no secrets). */
export function remember(sql: string, ok: boolean): HistoryEntry[] {
  const text = sql.trim();
  if (!text || SECRET.test(text)) return history();
  const next = [{ sql: text, at: new Date().toISOString(), ok }, ...history().filter((h) => h.sql !== text)].slice(
    0,
    HISTORY_MAX,
  );
  sessionStorage.setItem(HISTORY_KEY, JSON.stringify(next));
  return next;
}

export function clearHistory(): void {
  sessionStorage.removeItem(HISTORY_KEY);
}

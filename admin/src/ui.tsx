// Shared pieces: the results grid, errors, two-step confirmations, polling queries.
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, sql } from './api';
import { cell } from './format';
import type { ColumnInfo, StatementResult, Value } from './wire';

/** Rows rendered per page of the grid. */
const GRID_PAGE_ROWS = 1000;

export function Grid(props: { schema: ColumnInfo[]; rows: Value[][]; testid?: string; rowKey?: (r: Value[], i: number) => string }) {
  const [sort, setSort] = useState<{ col: number; desc: boolean } | null>(null);
  const [page, setPage] = useState(0);
  const rows = useMemo(() => {
    if (!sort) return props.rows;
    const { col, desc } = sort;
    const sorted = [...props.rows].sort((a, b) => compare(a[col], b[col]));
    return desc ? sorted.reverse() : sorted;
  }, [props.rows, sort]);
  const pages = Math.max(1, Math.ceil(rows.length / GRID_PAGE_ROWS));
  // New rows (another query, a live change) may have fewer pages than the one shown.
  const current = Math.min(page, pages - 1);
  const from = current * GRID_PAGE_ROWS;
  const shown = rows.length > GRID_PAGE_ROWS ? rows.slice(from, from + GRID_PAGE_ROWS) : rows;
  return (
    <div>
      <div class="grid-wrap">
      <table class="grid" data-testid={props.testid ?? 'grid'}>
        <thead>
          <tr>
            {props.schema.map((c, i) => (
              <th
                key={c.name}
                title={`${c.name} ${c.type} (click to sort)`}
                onClick={() => setSort(sort?.col === i ? { col: i, desc: !sort.desc } : { col: i, desc: false })}
              >
                {c.name}
                <span class="type">{c.type}</span>
                {sort?.col === i ? <span class="sort">{sort.desc ? '▼' : '▲'}</span> : null}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {shown.map((r, i) => (
            <tr key={props.rowKey ? props.rowKey(r, from + i) : from + i}>
              {r.map((v, j) => (
                <td key={j} class={v === null ? 'null' : typeof v === 'number' ? 'num' : undefined}>
                  {cell(v)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
      </div>
      <div class="grid-foot">
        {rows.length > GRID_PAGE_ROWS ? (
          <span class="pager" data-testid="pager">
            <button type="button" disabled={current === 0} onClick={() => setPage(current - 1)} data-testid="page-prev">
              Previous
            </button>
            <span data-testid="page-rows">
              Rows {(from + 1).toLocaleString('en')}–{(from + shown.length).toLocaleString('en')} of{' '}
              {rows.length.toLocaleString('en')}
            </span>
            <button type="button" disabled={current >= pages - 1} onClick={() => setPage(current + 1)} data-testid="page-next">
              Next
            </button>
          </span>
        ) : null}
        {rows.length > 0 ? (
          <button type="button" class="link" data-testid="download-csv" onClick={() => downloadCsv(props.schema, rows)}>
            Download CSV
          </button>
        ) : null}
      </div>
    </div>
  );
}

/** The rows (in the grid's order) as CSV (RFC 4180: a header line, fields quoted when needed). */
export function toCsv(schema: ColumnInfo[], rows: Value[][]): string {
  const field = (v: Value | undefined) => {
    const text = v === null || v === undefined ? '' : cell(v);
    return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  const lines = [schema.map((c) => field(c.name)), ...rows.map((r) => r.map(field))];
  return lines.map((l) => l.join(',')).join('\r\n') + '\r\n';
}

function downloadCsv(schema: ColumnInfo[], rows: Value[][]) {
  const url = URL.createObjectURL(new Blob([toCsv(schema, rows)], { type: 'text/csv' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = 'result.csv';
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function compare(a: Value | undefined, b: Value | undefined): number {
  if (a === b) return 0;
  if (a === null || a === undefined) return -1;
  if (b === null || b === undefined) return 1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return cell(a).localeCompare(cell(b));
}

/** One statement's result: a grid for queries, the message for the rest. */
export function Result(props: { result: StatementResult; index: number; count: number }) {
  const { result } = props;
  const label = props.count > 1 ? `Statement ${props.index + 1}: ` : '';
  if (result.schema.length === 0) {
    return (
      <p class="message" data-testid="result-message">
        {label}
        {result.message ?? `${result.row_count} row(s)`}
      </p>
    );
  }
  return (
    <section class="result" data-testid="result">
      <p class="meta">
        {label}({result.rows.length} {result.rows.length === 1 ? 'row' : 'rows'}){result.message ? ` ${result.message}` : ''}
      </p>
      <Grid schema={result.schema} rows={result.rows} />
    </section>
  );
}

export function ErrorBox(props: { error: unknown }) {
  const e = props.error;
  if (!e) return null;
  const text =
    e instanceof ApiError
      ? `${e.code}: ${e.message}${e.statement ? ` (statement ${e.statement})` : ''}`
      : e instanceof Error
        ? e.message
        : String(e);
  return (
    <p class="error" role="alert" data-testid="error">
      {text}
    </p>
  );
}

/** A button that asks once more before it acts. */
export function Confirm(props: {
  label: string;
  question: string;
  onConfirm: () => void | Promise<void>;
  testid?: string;
  danger?: boolean;
}) {
  const [asking, setAsking] = useState(false);
  if (!asking) {
    return (
      <button type="button" class={props.danger ? 'danger' : undefined} data-testid={props.testid} onClick={() => setAsking(true)}>
        {props.label}
      </button>
    );
  }
  return (
    <span class="confirm">
      {props.question}{' '}
      <button
        type="button"
        class="danger"
        data-testid="confirm-yes"
        onClick={async () => {
          setAsking(false);
          await props.onConfirm();
        }}
      >
        Yes
      </button>{' '}
      <button type="button" data-testid="confirm-no" onClick={() => setAsking(false)}>
        No
      </button>
    </span>
  );
}

export interface QueryState {
  result: StatementResult | null;
  error: unknown;
  loading: boolean;
  reload: () => Promise<void>;
}

/**
 * Runs `text` (one or more statements; the last result is kept) now, whenever `text` changes,
 * and every `intervalMs` while the page is visible.
 */
export function useQuery(text: string | null, intervalMs?: number): QueryState {
  // Each answer is kept with the text it answers, so a new text never shows the old result.
  const [answer, setAnswer] = useState<{ text: string; result: StatementResult | null; error: unknown } | null>(null);
  const [loading, setLoading] = useState(false);
  const current = useRef(text);
  current.current = text;
  const reload = useCallback(async () => {
    const t = current.current;
    if (!t) return;
    setLoading(true);
    try {
      const { results } = await sql(t);
      if (current.current === t) setAnswer({ text: t, result: results[results.length - 1] ?? null, error: null });
    } catch (e) {
      if (current.current === t) setAnswer((a) => ({ text: t, result: a?.text === t ? a.result : null, error: e }));
    } finally {
      setLoading(false);
    }
  }, []);
  useEffect(() => void reload(), [text, reload]);
  useInterval(() => {
    if (document.visibilityState === 'visible') void reload();
  }, intervalMs);
  const mine = answer?.text === text ? answer : null;
  return { result: mine?.result ?? null, error: mine?.error ?? null, loading, reload };
}

export function useInterval(fn: () => void, ms: number | undefined): void {
  const saved = useRef(fn);
  saved.current = fn;
  useEffect(() => {
    if (!ms) return;
    const t = setInterval(() => saved.current(), ms);
    return () => clearInterval(t);
  }, [ms]);
}

/** The rows of a result as objects keyed by column name. */
export function objects(result: StatementResult | null): Record<string, Value>[] {
  if (!result) return [];
  return result.rows.map((r) => Object.fromEntries(result.schema.map((c, i) => [c.name, r[i] ?? null])));
}

export function Page(props: { title: string; actions?: ComponentChildren; children: ComponentChildren; testid?: string }) {
  return (
    <section class="page" data-testid={props.testid}>
      <header class="page-head">
        <h1>{props.title}</h1>
        <div class="actions">{props.actions}</div>
      </header>
      {props.children}
    </section>
  );
}

/** Auto refresh on/off and a refresh-now button. */
export function Refresh(props: { auto: boolean; setAuto: (v: boolean) => void; reload: () => void; loading: boolean }) {
  return (
    <>
      <label class="inline">
        <input type="checkbox" checked={props.auto} onChange={(e) => props.setAuto((e.target as HTMLInputElement).checked)} /> auto
        refresh
      </label>
      <button type="button" data-testid="refresh" onClick={props.reload} disabled={props.loading}>
        Refresh
      </button>
    </>
  );
}

/**
 * Runs a page's statements (create, alter, kill, flush): the answer's message becomes the
 * page's notice, a failure its error; the page's query is reloaded either way.
 */
export function useStatements(reload: () => Promise<void>) {
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState<string | null>(null);
  /** True if `text` succeeded; `done` is the notice when the server sends no message. */
  const run = async (text: string, done = 'Done.'): Promise<boolean> => {
    setError(null);
    setNotice(null);
    try {
      const { results } = await sql(text);
      setNotice(results[0]?.message ?? done);
      return true;
    } catch (e) {
      setError(e);
      return false;
    } finally {
      await reload();
    }
  };
  /** Shows `e` as the page's error (input the page refuses before sending anything). */
  const fail = (e: unknown) => {
    setNotice(null);
    setError(e);
  };
  return { run, fail, error, notice };
}

/** What the last statement of a page answered. */
export function Notice(props: { text: string | null }) {
  return props.text ? (
    <p class="notice" data-testid="notice">
      {props.text}
    </p>
  ) : null;
}

/** The header of a list table; its last column holds each row's actions. */
export function ListHead(props: { columns: string[] }) {
  return (
    <thead>
      <tr>
        {props.columns.map((c) => (
          <th key={c}>{c}</th>
        ))}
        <th />
      </tr>
    </thead>
  );
}

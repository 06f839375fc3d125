import { useEffect, useState } from 'preact/hooks';
import { sql } from '../api';
import { CATALOG_SQL } from '../catalog';
import { when } from '../format';
import { tableRef } from '../sqltext';
import { go, handoff, jobTotals } from '../store';
import { ErrorBox, Grid, objects, Page, useQuery } from '../ui';
import type { StatementResult, Value } from '../wire';

interface TableRow {
  namespace: string;
  table_name: string;
  table_type: string;
  schema_version: number;
  flush_policy: string | null;
  deleted_retention_hours: number | null;
  access_level: string | null;
  storage: string | null;
  created_at: string;
}

/** Namespaces and their tables; a table's columns, rows, schema history and statistics. */
export function SchemaView(props: { selected?: string }) {
  const [namespaces, setNamespaces] = useState<string[]>([]);
  const [tables, setTables] = useState<TableRow[]>([]);
  const [error, setError] = useState<unknown>(null);
  const load = async () => {
    try {
      const { results } = await sql(CATALOG_SQL);
      setNamespaces(objects(results[0] ?? null).map((r) => String(r.name)));
      setTables(objects(results[1] ?? null) as unknown as TableRow[]);
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => void load(), []);
  const selected = tables.find((t) => `${t.namespace}.${t.table_name}` === props.selected);

  return (
    <Page
      title="Schema"
      testid="schema-page"
      actions={
        <button type="button" data-testid="refresh" onClick={load}>
          Refresh
        </button>
      }
    >
      <ErrorBox error={error} />
      <div class="schema-layout">
        <nav class="tree" data-testid="schema-tree" aria-label="Namespaces and tables">
          {namespaces.length === 0 && !error ? <p class="note">No namespaces yet: CREATE NAMESPACE in the SQL page.</p> : null}
          {namespaces.map((ns) => (
            <details key={ns} open data-testid="namespace" data-namespace={ns}>
              <summary>{ns}</summary>
              <ul>
                {tables
                  .filter((t) => t.namespace === ns)
                  .map((t) => {
                    const name = `${t.namespace}.${t.table_name}`;
                    return (
                      <li key={name}>
                        <a
                          href={`#/schema/${name}`}
                          data-testid="table-link"
                          data-table={name}
                          aria-current={name === props.selected ? 'page' : undefined}
                        >
                          {t.table_name}
                          <span class={`kind kind-${t.table_type}`}>{t.table_type}</span>
                        </a>
                      </li>
                    );
                  })}
              </ul>
            </details>
          ))}
        </nav>
        <div class="table-detail">
          {selected ? (
            <TableDetail key={props.selected} table={selected} />
          ) : props.selected && tables.length ? (
            <p class="note">No table {props.selected}.</p>
          ) : (
            <p class="note">Pick a table.</p>
          )}
        </div>
      </div>
    </Page>
  );
}

type Tab = 'columns' | 'rows' | 'history' | 'stats';

function TableDetail(props: { table: TableRow }) {
  const t = props.table;
  const ref = tableRef(t.namespace, t.table_name);
  const [tab, setTab] = useState<Tab>('columns');
  const [flushError, setFlushError] = useState<unknown>(null);
  const text =
    tab === 'columns'
      ? `DESCRIBE TABLE ${ref}`
      : tab === 'rows'
        ? `SELECT * FROM ${ref} LIMIT 100`
        : tab === 'history'
          ? `DESCRIBE TABLE ${ref} HISTORY`
          : `SHOW STATS FOR TABLE ${ref}`;
  const q = useQuery(text);
  const flush = async () => {
    setFlushError(null);
    try {
      const stats = objects((await sql(`SHOW STATS FOR TABLE ${ref}`)).results[0] ?? null)[0];
      const { results } = await sql(`FLUSH TABLE ${ref}`);
      const jobId = results[0]?.rows[0]?.[0];
      if (typeof jobId === 'string' && typeof stats?.hot_rows === 'number') jobTotals.set(jobId, stats.hot_rows);
      go('jobs');
    } catch (e) {
      setFlushError(e);
    }
  };
  const flushable = t.table_type !== 'stream';
  return (
    <article data-testid="table-detail" data-table={`${t.namespace}.${t.table_name}`}>
      <header class="detail-head">
        <h2>
          {t.namespace}.{t.table_name} <span class={`kind kind-${t.table_type}`}>{t.table_type}</span>
        </h2>
        <div class="actions">
          <button
            type="button"
            onClick={() => {
              handoff.sql = `SELECT * FROM ${ref} LIMIT 100`;
              go('sql');
            }}
          >
            Open in SQL
          </button>
          <button
            type="button"
            data-testid="watch-live"
            onClick={() => {
              handoff.live = `SELECT * FROM ${ref}`;
              go('live');
            }}
          >
            Watch live
          </button>
          {flushable ? (
            <button type="button" data-testid="flush" onClick={flush}>
              Flush
            </button>
          ) : null}
        </div>
      </header>
      <dl class="facts">
        <dt>schema version</dt>
        <dd>{t.schema_version}</dd>
        <dt>created</dt>
        <dd>{when(t.created_at)}</dd>
        {t.flush_policy ? (
          <>
            <dt>flush policy</dt>
            <dd>{t.flush_policy}</dd>
          </>
        ) : null}
        {t.deleted_retention_hours !== null ? (
          <>
            <dt>tombstones kept</dt>
            <dd>{t.deleted_retention_hours} h</dd>
          </>
        ) : null}
        {t.access_level ? (
          <>
            <dt>access level</dt>
            <dd>{t.access_level}</dd>
          </>
        ) : null}
        {t.storage ? (
          <>
            <dt>storage</dt>
            <dd>{t.storage}</dd>
          </>
        ) : null}
      </dl>
      <ErrorBox error={flushError} />
      <div class="tabs" role="tablist">
        {(['columns', 'rows', 'history', 'stats'] as Tab[]).map((name) => (
          <button
            key={name}
            type="button"
            role="tab"
            aria-selected={tab === name}
            data-testid={`tab-${name}`}
            onClick={() => setTab(name)}
          >
            {name === 'history' ? 'schema history' : name}
          </button>
        ))}
      </div>
      {tab === 'rows' && t.table_type !== 'shared' ? (
        <p class="note">A {t.table_type} table: these are the rows of your own partition (every user sees only theirs).</p>
      ) : null}
      <ErrorBox error={q.error} />
      {q.result ? <TabResult result={q.result} tab={tab} /> : q.loading ? <p class="note">Loading…</p> : null}
    </article>
  );
}

function TabResult(props: { result: StatementResult; tab: Tab }) {
  const r = props.result;
  if (r.schema.length === 0) return <p class="message">{r.message}</p>;
  return (
    <div data-testid={`tab-${props.tab}-content`}>
      {r.message ? <p class="meta">{r.message}</p> : null}
      <Grid schema={r.schema} rows={r.rows as Value[][]} testid={`grid-${props.tab}`} />
      <p class="meta">({r.rows.length} rows)</p>
    </div>
  );
}

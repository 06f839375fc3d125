import { useEffect, useRef, useState } from 'preact/hooks';
import { cell } from '../format';
import { type LiveChange, watch } from '../live';
import { handoff } from '../store';
import { Grid, Page } from '../ui';
import type { ColumnInfo, Value } from '../wire';

/** Changes kept in the log (newest first). */
const LOG_MAX = 200;

interface State {
  status: 'idle' | 'connecting' | 'loading' | 'live' | 'reconnecting' | 'ended';
  liveId?: string;
  schema: ColumnInfo[];
  pk: number;
  rows: Map<string, Value[]>;
  log: LiveChange[];
  ended?: string;
  /** While reconnecting: the attempt and its wait. */
  retry?: { attempt: number; delayMs: number };
}

const idle: State = { status: 'idle', schema: [], pk: 0, rows: new Map(), log: [] };
const key = (v: Value | undefined) => cell(v);

/** A live query: its current rows and each change as it commits. */
export function LiveView() {
  const [text, setText] = useState(() => {
    const t = handoff.live ?? 'SELECT * FROM ';
    handoff.live = undefined;
    return t;
  });
  const [state, setState] = useState<State>(idle);
  const stop = useRef<(() => void) | null>(null);
  useEffect(() => () => stop.current?.(), []);

  const start = () => {
    stop.current?.();
    let s: State = { ...idle, status: 'connecting', rows: new Map(), log: [] };
    setState(s);
    const update = (next: Partial<State>) => {
      s = { ...s, ...next };
      setState(s);
    };
    stop.current = watch(text.trim(), {
      subscribed(liveId, schema, primaryKey) {
        update({ status: 'loading', liveId, schema, pk: Math.max(0, schema.findIndex((c) => c.name === primaryKey)) });
      },
      batch(rows, deleted, reset, last) {
        const map = reset ? new Map<string, Value[]>() : new Map(s.rows);
        for (const d of deleted) map.delete(key(d));
        for (const r of rows) map.set(key(r[s.pk]), r);
        update({ rows: map, status: last ? 'live' : 'loading' });
      },
      change(c) {
        const map = new Map(s.rows);
        if (c.op === 'delete') map.delete(key(c.row[s.pk]));
        else map.set(key(c.row[s.pk]), c.row);
        update({ rows: map, log: [c, ...s.log].slice(0, LOG_MAX) });
      },
      reconnecting(attempt, delayMs) {
        update({ status: 'reconnecting', retry: { attempt, delayMs } });
      },
      ended(code, message) {
        stop.current = null;
        update({ status: 'ended', ended: code === 'CLOSED' ? message : `${code}: ${message}` });
      },
    });
  };
  const running = state.status !== 'idle' && state.status !== 'ended';

  return (
    <Page title="Live query" testid="live-page">
      <form
        class="live-form"
        onSubmit={(e) => {
          e.preventDefault();
          if (running) stop.current?.();
          else start();
        }}
      >
        <input
          class="sql-line"
          data-testid="live-sql"
          value={text}
          spellcheck={false}
          aria-label="Live query"
          maxLength={16384}
          onInput={(e) => setText((e.target as HTMLInputElement).value)}
        />
        <button type="submit" class={running ? 'danger' : 'primary'} data-testid={running ? 'live-stop' : 'live-start'}>
          {running ? 'Stop' : 'Start'}
        </button>
      </form>
      <p class="hint">
        <code>SELECT cols FROM ns.table [WHERE …]</code> over one USER, SHARED or STREAM table. USER tables show your own
        partition.
      </p>
      <p class="live-status" data-testid="live-status" data-status={state.status}>
        {state.status === 'idle' ? 'Not started.' : null}
        {state.status === 'connecting' ? 'Connecting…' : null}
        {state.status === 'loading' ? `Loading rows (live id ${state.liveId})…` : null}
        {state.status === 'live' ? `Live (live id ${state.liveId}): ${state.rows.size} rows, waiting for changes.` : null}
        {state.status === 'reconnecting' && state.retry
          ? `Connection lost; reconnecting (attempt ${state.retry.attempt}, in ${(state.retry.delayMs / 1000).toFixed(1)} s). The rows catch up from where they were.`
          : null}
        {state.status === 'ended' ? `Ended: ${state.ended}` : null}
      </p>
      {state.schema.length ? (
        <div class="live-layout">
          <section>
            <h2>Rows</h2>
            <Grid schema={state.schema} rows={[...state.rows.values()]} testid="live-rows" rowKey={(r) => key(r[state.pk])} />
          </section>
          <section>
            <h2>Changes</h2>
            {state.log.length === 0 ? <p class="note">None yet.</p> : null}
            <ol class="changes" data-testid="live-changes">
              {state.log.map((c) => (
                <li key={c.seq} data-testid="live-change" data-op={c.op} class={`op-${c.op}`}>
                  <span class="op">{c.op.toUpperCase()}</span>
                  <time>{c.at.toLocaleTimeString(undefined, { hour12: false })}</time>
                  <span class="what">{describe(c, state.schema, state.pk)}</span>
                </li>
              ))}
            </ol>
          </section>
        </div>
      ) : null}
    </Page>
  );
}

/** `id=3, title='bread'`; for an update the key and what changed, like the shell's \live. */
function describe(c: LiveChange, schema: ColumnInfo[], pk: number): string {
  const show = (v: Value | undefined) => (typeof v === 'string' ? `'${v}'` : cell(v));
  if (c.op === 'update' && c.old) {
    const changed = schema
      .map((col, i) => (i !== pk && cell(c.old?.[i]) !== cell(c.row[i]) ? `${col.name} ${show(c.old?.[i])} → ${show(c.row[i])}` : null))
      .filter(Boolean);
    return `${schema[pk]?.name}=${show(c.row[pk])}: ${changed.join(', ') || 'no visible change'}`;
  }
  return schema.map((col, i) => `${col.name}=${show(c.row[i])}`).join(', ');
}

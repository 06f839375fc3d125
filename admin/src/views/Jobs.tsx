import { useEffect, useState } from 'preact/hooks';
import { bytes, duration, when } from '../format';
import { lit } from '../sqltext';
import { jobTotals } from '../store';
import { Confirm, ErrorBox, ListHead, Notice, objects, Page, Refresh, useQuery, useStatements } from '../ui';
import type { Value } from '../wire';

const LIST =
  'SELECT job_id, job_type, status, namespace, table_name, trigger, created_at, started_at, finished_at, ' +
  'rows, bytes, files, error, node FROM system.jobs ORDER BY created_at DESC LIMIT 200';

const ACTIVE = new Set(['queued', 'running']);

/** `system.jobs` with progress; KILL JOB for queued and running ones. */
export function JobsView() {
  const [auto, setAuto] = useState(true);
  // Poll fast while something runs, slowly otherwise.
  const [fast, setFast] = useState(true);
  const q = useQuery(LIST, auto ? (fast ? 1000 : 5000) : undefined);
  const rows = objects(q.result);
  const active = rows.some((r) => ACTIVE.has(String(r.status)));
  useEffect(() => {
    if (q.result) setFast(active);
  }, [q.result, active]);

  const statements = useStatements(q.reload);
  const { error, notice } = statements;
  const run = async (text: string) => {
    setFast(true);
    await statements.run(text);
  };
  return (
    <Page
      title="Jobs"
      testid="jobs-page"
      actions={
        <>
          <Confirm label="Flush all tables" question="Flush every table?" onConfirm={() => run('FLUSH ALL TABLES')} />
          <Refresh auto={auto} setAuto={setAuto} reload={q.reload} loading={q.loading} />
        </>
      }
    >
      <ErrorBox error={q.error ?? error} />
      <Notice text={notice} />
      <table class="grid" data-testid="jobs">
        <ListHead columns={['job', 'type', 'scope', 'status', 'progress', 'created', 'took']} />
        <tbody>
          {rows.map((r) => {
            const id = String(r.job_id);
            const status = String(r.status);
            return (
              <tr key={id} data-testid="job" data-job-id={id} data-status={status}>
                <td class="mono">{id}</td>
                <td>
                  {String(r.job_type)}
                  {r.trigger !== 'manual' ? <span class="note"> ({String(r.trigger)})</span> : null}
                </td>
                <td>{r.namespace ? `${String(r.namespace)}${r.table_name ? `.${String(r.table_name)}` : ''}` : 'all'}</td>
                <td>
                  <span class={`status status-${status}`}>{status}</span>
                  {r.error ? <div class="error-text">{String(r.error)}</div> : null}
                </td>
                <td>
                  <Progress id={id} status={status} rows={r.rows} />
                  <div class="note">
                    {count(r.rows, 'row')}, {count(r.files, 'file')}, {bytes(typeof r.bytes === 'number' ? r.bytes : 0)}
                  </div>
                </td>
                <td>{when(r.created_at)}</td>
                <td>{took(r.started_at, r.finished_at)}</td>
                <td>
                  {ACTIVE.has(status) ? (
                    <Confirm label="Kill" question="Cancel it?" danger testid="kill-job" onConfirm={() => run(`KILL JOB ${lit(id)}`)} />
                  ) : null}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {q.result && rows.length === 0 ? <p class="note">No jobs yet. FLUSH, BACKUP and RESTORE start jobs.</p> : null}
    </Page>
  );
}

function count(v: Value | undefined, noun: string): string {
  const n = typeof v === 'number' ? v : 0;
  return `${n.toLocaleString()} ${noun}${n === 1 ? '' : 's'}`;
}

/** A bar: full when finished; a fraction when the total is known; moving otherwise. */
function Progress(props: { id: string; status: string; rows: Value | undefined }) {
  const done = typeof props.rows === 'number' ? props.rows : 0;
  if (!ACTIVE.has(props.status)) {
    return <progress value={1} max={1} class={`bar-${props.status}`} aria-label={props.status} />;
  }
  const total = jobTotals.get(props.id);
  if (total && props.status === 'running') {
    return <progress value={Math.min(done, total)} max={total} aria-label={`${done} of ${total} rows`} />;
  }
  if (props.status === 'queued') return <progress value={0} max={1} aria-label="queued" />;
  return <progress aria-label="running" />;
}

function took(start: Value | undefined, end: Value | undefined): string {
  if (typeof start !== 'string') return '';
  const a = Date.parse(start);
  const b = typeof end === 'string' ? Date.parse(end) : Date.now();
  const secs = (b - a) / 1000;
  if (!Number.isFinite(secs)) return '';
  return secs < 1 ? `${Math.round(secs * 1000)} ms` : duration(secs);
}

import { Fragment } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { clusterHealth, health, metrics } from '../api';
import { duration } from '../format';
import { ErrorBox, objects, Page, Refresh, useInterval, useQuery } from '../ui';
import type { HealthResponse } from '../wire';

const COUNTS =
  'SELECT (SELECT count(*) FROM system.users) AS users, ' +
  '(SELECT count(*) FROM system.namespaces) AS namespaces, ' +
  '(SELECT count(*) FROM system.tables) AS tables, ' +
  '(SELECT count(*) FROM system.live_queries) AS live_queries, ' +
  "(SELECT count(*) FROM system.jobs WHERE status IN ('queued', 'running')) AS active_jobs, " +
  "(SELECT count(*) FROM system.jobs WHERE status = 'failed') AS failed_jobs, " +
  '(SELECT count(*) FROM system.cluster) AS cluster_nodes';

const REFRESH_MS = 5000;

const COUNTERS: [string, string][] = [
  ['kalamdb_sql_requests_total', 'SQL requests'],
  ['kalamdb_sql_statements_total', 'statements'],
  ['kalamdb_sql_errors_total', 'failed requests'],
  ['kalamdb_logins_total', 'sign-ins'],
  ['kalamdb_failed_logins_total', 'failed sign-ins'],
];

interface Sample {
  at: number;
  values: Map<string, number>;
}

/** `/health`, `/metrics` (with rates between refreshes), catalog counts, cluster state. */
export function HealthView() {
  const [auto, setAuto] = useState(true);
  const counts = useQuery(COUNTS, auto ? REFRESH_MS : undefined);
  const [info, setInfo] = useState<HealthResponse | null>(null);
  const [sample, setSample] = useState<Sample | null>(null);
  const previous = useRef<Sample | null>(null);
  const [cluster, setCluster] = useState<Record<string, unknown> | null>(null);
  const [error, setError] = useState<unknown>(null);
  const c = objects(counts.result)[0];
  const clustered = typeof c?.cluster_nodes === 'number' && c.cluster_nodes > 0;

  const load = async () => {
    try {
      const [h, m] = await Promise.all([health(), metrics()]);
      setInfo(h);
      setSample((s) => {
        previous.current = s;
        return { at: performance.now(), values: m };
      });
      // Single nodes answer 404 there: ask only when system.cluster lists members.
      setCluster(clustered ? await clusterHealth() : null);
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => void load(), [clustered]);
  useInterval(() => document.visibilityState === 'visible' && void load(), auto ? REFRESH_MS : undefined);

  const prev = previous.current;
  const rate = (name: string) => {
    if (!prev || !sample) return null;
    const dt = (sample.at - prev.at) / 1000;
    const dv = (sample.values.get(name) ?? 0) - (prev.values.get(name) ?? 0);
    return dt > 0 ? dv / dt : null;
  };
  const uptime = sample?.values.get('kalamdb_uptime_seconds');

  return (
    <Page
      title="Health and metrics"
      testid="health-page"
      actions={
        <Refresh
          auto={auto}
          setAuto={setAuto}
          loading={counts.loading}
          reload={() => {
            void counts.reload();
            void load();
          }}
        />
      }
    >
      <ErrorBox error={error ?? counts.error} />
      <div class="cards">
        <div class="card" data-testid="health-status">
          <h2>Server</h2>
          <p class={info?.status === 'ok' ? 'big ok' : 'big'}>{info ? info.status : '…'}</p>
          <p class="note">
            version {info?.version ?? '…'}
            {uptime !== undefined ? `, up ${duration(uptime)}` : ''}
          </p>
        </div>
        {c
          ? (
              [
                ['users', 'users'],
                ['namespaces', 'namespaces'],
                ['tables', 'tables'],
                ['live_queries', 'live queries'],
                ['active_jobs', 'queued or running jobs'],
                ['failed_jobs', 'failed jobs'],
              ] as const
            ).map(([k, label]) => (
              <div class="card" key={k} data-testid={`count-${k}`}>
                <h2>{label}</h2>
                <p class="big">{String(c[k] ?? 0)}</p>
              </div>
            ))
          : null}
      </div>
      <h2>Counters</h2>
      <table class="grid" data-testid="metrics">
        <thead>
          <tr>
            <th>metric</th>
            <th>total</th>
            <th>per second (since the last refresh)</th>
          </tr>
        </thead>
        <tbody>
          {COUNTERS.map(([name, label]) => {
            const r = rate(name);
            return (
              <tr key={name}>
                <td title={name}>{label}</td>
                <td class="num">{sample?.values.get(name)?.toLocaleString() ?? ''}</td>
                <td class="num">{r === null ? '' : r.toFixed(1)}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <h2>Cluster</h2>
      {cluster ? (
        <dl class="facts" data-testid="cluster">
          {Object.entries(cluster).map(([k, v]) => (
            <Fragment key={k}>
              <dt>{k}</dt>
              <dd>{typeof v === 'object' ? JSON.stringify(v) : String(v)}</dd>
            </Fragment>
          ))}
        </dl>
      ) : (
        <p class="note">{c ? 'A single node (no cluster settings).' : '…'}</p>
      )}
    </Page>
  );
}

import { useState } from 'preact/hooks';
import { when } from '../format';
import { lit } from '../sqltext';
import { Confirm, ErrorBox, ListHead, Notice, objects, Page, Refresh, useQuery, useStatements } from '../ui';

const LIST =
  'SELECT live_id, username, namespace, table_name, query, created_at, changes, node ' +
  'FROM system.live_queries ORDER BY created_at';

/** `system.live_queries`, each with KILL LIVE QUERY. */
export function LiveQueriesView() {
  const [auto, setAuto] = useState(true);
  const q = useQuery(LIST, auto ? 3000 : undefined);
  const { run, error, notice } = useStatements(q.reload);
  const rows = objects(q.result);
  const kill = async (liveId: string) => {
    await run(`KILL LIVE QUERY ${lit(liveId)}`, `Killed ${liveId}`);
  };
  return (
    <Page
      title="Live queries"
      testid="live-queries-page"
      actions={<Refresh auto={auto} setAuto={setAuto} reload={q.reload} loading={q.loading} />}
    >
      <ErrorBox error={q.error ?? error} />
      <Notice text={notice} />
      <p class="meta" data-testid="live-count">
        {q.result ? `${rows.length} live ${rows.length === 1 ? 'query' : 'queries'}` : 'Loading…'}
      </p>
      <table class="grid" data-testid="live-queries">
        <ListHead columns={['live id', 'user', 'table', 'query', 'since', 'changes', 'node']} />
        <tbody>
          {rows.map((r) => {
            const id = String(r.live_id);
            return (
              <tr key={id} data-testid="live-query" data-live-id={id}>
                <td class="mono">{id}</td>
                <td>{String(r.username)}</td>
                <td>
                  {String(r.namespace)}.{String(r.table_name)}
                </td>
                <td class="mono wrap">{String(r.query)}</td>
                <td>{when(r.created_at)}</td>
                <td class="num">{String(r.changes)}</td>
                <td>{String(r.node ?? '')}</td>
                <td>
                  <Confirm label="Kill" question="Kill it?" danger testid="kill" onConfirm={() => kill(id)} />
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </Page>
  );
}

import { useState } from 'preact/hooks';
import { when } from '../format';
import { ident, lit } from '../sqltext';
import { Confirm, ErrorBox, ListHead, Notice, objects, Page, useQuery, useStatements } from '../ui';

const LIST = 'SELECT * FROM system.storages ORDER BY storage_id';

/** `system.storages`; CREATE STORAGE (filesystem or S3) and DROP STORAGE. */
export function StoragesView() {
  const q = useQuery(LIST);
  const [type, setType] = useState<'filesystem' | 's3'>('filesystem');
  const { run, fail, error, notice } = useStatements(q.reload);
  const rows = objects(q.result);

  const create = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const d = new FormData(form);
    const v = (k: string) => String(d.get(k) ?? '').trim();
    let text: string;
    try {
      text = `CREATE STORAGE ${ident(v('id'))} TYPE ${lit(type)}`;
    } catch (err) {
      fail(err);
      return;
    }
    if (type === 'filesystem') text += ` PATH ${lit(v('path'))}`;
    else {
      text += ` BUCKET ${lit(v('bucket'))}`;
      if (v('prefix')) text += ` PREFIX ${lit(v('prefix'))}`;
      if (v('region')) text += ` REGION ${lit(v('region'))}`;
      if (v('endpoint')) text += ` ENDPOINT ${lit(v('endpoint'))}`;
      if (v('access_key_id')) text += ` ACCESS_KEY_ID ${lit(v('access_key_id'))} SECRET_ACCESS_KEY ${lit(v('secret'))}`;
      if (d.get('allow_http')) text += ' ALLOW_HTTP';
    }
    if (await run(text)) form.reset();
  };

  return (
    <Page title="Storages" testid="storages-page">
      <ErrorBox error={q.error ?? error} />
      <Notice text={notice} />
      <table class="grid" data-testid="storages">
        <ListHead columns={['storage', 'type', 'location', 'region / endpoint', 'credentials', 'tables', 'created']} />
        <tbody>
          {rows.map((r) => {
            const id = String(r.storage_id);
            return (
              <tr key={id} data-testid="storage" data-storage={id}>
                <td>{id}</td>
                <td>{String(r.storage_type)}</td>
                <td class="mono">{String(r.location ?? '')}</td>
                <td>{[r.region, r.endpoint].filter(Boolean).map(String).join(' ')}</td>
                <td>{r.access_key_id ? `${String(r.access_key_id)} / ${String(r.secret_access_key ?? '')}` : ''}</td>
                <td class="num">{String(r.table_count ?? 0)}</td>
                <td>{when(r.created_at)}</td>
                <td>
                  {id !== 'local' ? (
                    <Confirm label="Drop" question={`Drop ${id}?`} danger testid="drop-storage" onConfirm={() => void run(`DROP STORAGE ${ident(id)}`)} />
                  ) : null}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <form class="create" data-testid="create-storage" onSubmit={create}>
        <h2>New storage</h2>
        <label>
          id
          <input name="id" required maxLength={64} pattern="[A-Za-z_][A-Za-z0-9_]*" />
        </label>
        <label>
          type
          <select name="type" value={type} onChange={(e) => setType((e.target as HTMLSelectElement).value as 'filesystem' | 's3')}>
            <option value="filesystem">filesystem</option>
            <option value="s3">s3</option>
          </select>
        </label>
        {type === 'filesystem' ? (
          <label>
            path (absolute, on the server)
            <input name="path" required maxLength={4096} placeholder="/srv/kalamdb-cold" />
          </label>
        ) : (
          <>
            <label>
              bucket
              <input name="bucket" required maxLength={256} />
            </label>
            <label>
              prefix
              <input name="prefix" maxLength={1024} />
            </label>
            <label>
              region
              <input name="region" maxLength={64} placeholder="us-east-1" />
            </label>
            <label>
              endpoint
              <input name="endpoint" maxLength={1024} placeholder="(AWS)" />
            </label>
            <label>
              access key id
              <input name="access_key_id" maxLength={256} autocomplete="off" />
            </label>
            <label>
              secret access key
              <input name="secret" type="password" maxLength={1024} autocomplete="off" />
            </label>
            <label class="inline">
              <input name="allow_http" type="checkbox" /> allow http
            </label>
          </>
        )}
        <button type="submit" class="primary">
          Create storage
        </button>
      </form>
    </Page>
  );
}

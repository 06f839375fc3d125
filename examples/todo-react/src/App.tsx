import { useEffect, useState } from 'react';
import type { FormEvent } from 'react';
import { createClient, KalamError } from '@kalamdb/client';
import type { KalamClient } from '@kalamdb/client';
import { KalamProvider, useKalam, useLiveQuery, useSyncStatus } from '@kalamdb/client/react';
import { NotesEditor } from './NotesEditor';

/** A row of `app.todos` (see README: `CREATE USER TABLE app.todos (...)`). */
export interface Todo {
  id: string;
  title: string;
  done: boolean | null;
  body: string | null;
  list_id: string | null;
}

/** A list (`app.lists`) with its number of open todos. */
export interface ListSummary {
  id: string;
  name: string;
  open: number;
}

export const TABLE = 'app.todos';

/**
 * Lists with their open-item counts: a join + aggregate over both synced tables, run on the
 * local replica (offline too) and kept live by `useLiveQuery` as either table changes.
 */
export const LIST_COUNTS =
  'SELECT l.id, l.name, count(t.id) AS open FROM app.lists l ' +
  'LEFT JOIN app.todos t ON t.list_id = l.id AND NOT coalesce(t.done, false) ' +
  'GROUP BY l.id, l.name ORDER BY l.name, l.id';

interface Session {
  username: string;
  password: string;
}

// The example keeps the credentials in sessionStorage (per tab, gone when the tab closes) so a
// reload, also offline, reopens the same replica without asking again. A real app would keep a
// refresh token instead.
const SESSION_KEY = 'kalamdb-todo-session';

function loadSession(): Session | null {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? 'null');
  } catch {
    return null;
  }
}

function open(session: Session): KalamClient {
  // url defaults to location.origin: Vite proxies /v1 to the KalamDB server.
  const client = createClient({ auth: session, backoffMaxMs: 2000 });
  (window as unknown as { kalam: KalamClient }).kalam = client; // for the e2e tests and the console
  return client;
}

export function App() {
  const [client, setClient] = useState<KalamClient | null>(() => {
    const s = loadSession();
    return s ? open(s) : null;
  });
  const [username, setUsername] = useState(() => loadSession()?.username ?? '');

  if (!client) {
    return (
      <SignIn
        onSignedIn={(c, name) => {
          setUsername(name);
          setClient(c);
        }}
      />
    );
  }
  return (
    <KalamProvider client={client}>
      <Todos
        username={username}
        onSignOut={() => {
          sessionStorage.removeItem(SESSION_KEY);
          void client.close();
          setClient(null);
        }}
      />
    </KalamProvider>
  );
}

function SignIn({ onSignedIn }: { onSignedIn: (c: KalamClient, username: string) => void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const session = { username, password };
    const client = open(session);
    try {
      await client.user(); // signs in: rejects on wrong credentials
      sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
      onSignedIn(client, username);
    } catch (err) {
      void client.close();
      setError(err instanceof KalamError ? `${err.code}: ${err.message}` : String(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main>
      <h1>KalamDB TODO — sign in</h1>
      <form onSubmit={submit} data-testid="signin">
        <input type="text" placeholder="username" value={username} onChange={(e) => setUsername(e.target.value)} name="username" autoComplete="username" />
        <input type="password" placeholder="password" value={password} onChange={(e) => setPassword(e.target.value)} name="password" autoComplete="current-password" />
        <button type="submit" disabled={busy || !username || !password}>
          Sign in
        </button>
      </form>
      {error && (
        <p className="error" data-testid="signin-error">
          {error}
        </p>
      )}
    </main>
  );
}

function Todos({ username, onSignOut }: { username: string; onSignOut: () => void }) {
  const client = useKalam();
  const status = useSyncStatus();
  const [synced, setSynced] = useState(false);
  // Known once the replica is open (IndexedDB, or memory when another tab owns the database).
  const [storage, setStorage] = useState<string | null>(null);
  const [syncError, setSyncError] = useState<string | null>(null);
  // Local queries need the table declared first: run nothing (null) until sync() resolved.
  const { rows, loading, error } = useLiveQuery<Todo>(synced ? 'SELECT id, title, done, body, list_id FROM app.todos ORDER BY id' : null);
  const { rows: lists } = useLiveQuery<ListSummary>(synced ? LIST_COUNTS : null);
  const [title, setTitle] = useState('');
  const [listId, setListId] = useState(''); // the list of the next new todo ('' = none)
  const [listName, setListName] = useState('');
  const [workOffline, setWorkOffline] = useState(false);
  const [openNotes, setOpenNotes] = useState<Record<string, boolean>>({});
  const todos = client.table<Todo>(TABLE);

  useEffect(() => {
    client.ready.then(() => setStorage(client.storage)).catch((e) => setSyncError(String(e?.message ?? e)));
  }, [client]);

  useEffect(() => {
    // Declares what this device replicates (one table per subscription; the lists' counts are
    // joined locally); idempotent, so calling it on every start is fine.
    Promise.all([client.sync('todos', 'SELECT * FROM app.todos'), client.sync('lists', 'SELECT * FROM app.lists')]).then(
      () => setSynced(true),
      (e) => setSyncError(e instanceof KalamError ? `${e.code}: ${e.message}` : String(e)),
    );
  }, [client]);

  useEffect(() => {
    // When the browser regains the network, reconnect now rather than after the backoff.
    const onOnline = () => {
      if (!workOffline) client.setOnline(true);
    };
    window.addEventListener('online', onOnline);
    return () => window.removeEventListener('online', onOnline);
  }, [client, workOffline]);

  function toggleOffline() {
    const next = !workOffline;
    setWorkOffline(next);
    client.setOnline(!next);
  }

  async function add(e: FormEvent) {
    e.preventDefault();
    if (!title.trim()) return;
    try {
      await todos.insert({ title: title.trim(), done: false, list_id: listId || null });
      setTitle('');
    } catch (e) {
      setSyncError(e instanceof KalamError ? `${e.code}: ${e.message}` : String(e));
    }
  }

  async function addList(e: FormEvent) {
    e.preventDefault();
    if (!listName.trim()) return;
    try {
      await client.table('app.lists').insert({ name: listName.trim() });
      setListName('');
    } catch (e) {
      setSyncError(e instanceof KalamError ? `${e.code}: ${e.message}` : String(e));
    }
  }

  return (
    <main data-storage={storage ?? ''}>
      <h1>
        {username}'s TODOs {storage && <span className="muted">({storage} replica)</span>}
      </h1>
      <div className="bar">
        <span className={`badge ${status.online ? 'online' : 'offline'}`} data-testid="connection">
          {status.online ? 'online' : 'offline'}
        </span>
        <span className="pending" data-testid="pending">
          {status.pendingWrites} pending
        </span>
        {status.syncing && <span className="muted">syncing…</span>}
        <button className="secondary" onClick={toggleOffline} data-testid="toggle-offline">
          {workOffline ? 'Go online' : 'Go offline'}
        </button>
        <button className="secondary" onClick={onSignOut}>
          Sign out
        </button>
      </div>
      <section className="lists">
        <ul data-testid="lists">
          {lists.map((l) => (
            <li key={l.id} className="list" data-testid="list" data-id={l.id} data-name={l.name} data-open={String(l.open)}>
              {l.name} <span className="muted">{l.open} open</span>
            </li>
          ))}
        </ul>
        <form onSubmit={addList}>
          <input type="text" placeholder="New list" value={listName} onChange={(e) => setListName(e.target.value)} data-testid="new-list" />
          <button type="submit" className="secondary" data-testid="add-list" disabled={!synced}>
            Add list
          </button>
        </form>
      </section>
      <form onSubmit={add}>
        <input type="text" placeholder="What needs doing?" value={title} onChange={(e) => setTitle(e.target.value)} data-testid="new-title" />
        <select value={listId} onChange={(e) => setListId(e.target.value)} data-testid="new-todo-list" aria-label="list">
          <option value="">no list</option>
          {lists.map((l) => (
            <option key={l.id} value={l.id}>
              {l.name}
            </option>
          ))}
        </select>
        {/* Until sync() has declared the tables, an insert would not know their key column. */}
        <button type="submit" data-testid="add" disabled={!synced}>
          Add
        </button>
      </form>
      {(error || syncError) && <p className="error">{error?.message ?? syncError}</p>}
      {loading || !synced ? (
        <p className="muted">loading…</p>
      ) : (
        <ul data-testid="todos">
          {rows.map((t) => (
            <li key={t.id} className={`todo${t.done ? ' done' : ''}`} data-testid="todo" data-id={t.id} data-title={t.title}>
              <div className="row">
                <input type="checkbox" checked={!!t.done} onChange={() => void todos.update(t.id, { done: !t.done })} data-testid="done" />
                <span className="title">{t.title}</span>
                <button className="secondary" onClick={() => setOpenNotes((o) => ({ ...o, [t.id]: !o[t.id] }))} data-testid="notes-toggle">
                  notes
                </button>
                <button className="danger" onClick={() => void todos.delete(t.id)} data-testid="delete" aria-label="delete">
                  ✕
                </button>
              </div>
              {openNotes[t.id] ? <NotesEditor id={t.id} text={t.body} /> : t.body ? <div className="muted">{t.body}</div> : null}
            </li>
          ))}
        </ul>
      )}
      {synced && !loading && rows.length === 0 && <p className="muted">Nothing to do.</p>}
    </main>
  );
}

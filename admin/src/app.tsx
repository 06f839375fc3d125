import { useEffect, useState } from 'preact/hooks';
import { currentSession, onSession, restoreSession, type Session, signOut } from './api';
import { HealthView } from './views/Health';
import { JobsView } from './views/Jobs';
import { LiveView } from './views/Live';
import { LiveQueriesView } from './views/LiveQueries';
import { SchemaView } from './views/Schema';
import { SignIn } from './views/SignIn';
import { SqlView } from './views/Sql';
import { StoragesView } from './views/Storages';
import { UsersView } from './views/Users';

const PAGES = [
  ['sql', 'SQL'],
  ['schema', 'Schema'],
  ['live', 'Live query'],
  ['live-queries', 'Live queries'],
  ['jobs', 'Jobs'],
  ['users', 'Users'],
  ['storages', 'Storages'],
  ['health', 'Health'],
] as const;

/** `#/page[/arg]`: routes live in the fragment, which never reaches the server. */
function parseRoute(): { page: string; arg?: string } {
  const [page = 'sql', ...rest] = location.hash.replace(/^#\/?/, '').split('/');
  return { page: page || 'sql', arg: rest.length ? decodeURIComponent(rest.join('/')) : undefined };
}

export function App() {
  const [session, setSession] = useState<Session | null>(currentSession());
  const [notice, setNotice] = useState<string | undefined>();
  const [restoring, setRestoring] = useState(true);
  const [route, setRoute] = useState(parseRoute);

  useEffect(() => {
    const off = onSession((s, reason) => {
      setSession(s);
      if (!s) setNotice(reason);
    });
    restoreSession()
      .catch((e: Error) => setNotice(e.message))
      .finally(() => setRestoring(false));
    const onHash = () => setRoute(parseRoute());
    window.addEventListener('hashchange', onHash);
    return () => {
      off();
      window.removeEventListener('hashchange', onHash);
    };
  }, []);

  if (restoring) return <main class="signin" aria-busy="true" />;
  if (!session) return <SignIn notice={notice} />;

  return (
    <div class="shell">
      <header class="top">
        <a class="brand" href="#/sql">
          <span class="logo" aria-hidden="true" />
          KalamDB admin
        </a>
        <nav aria-label="Pages">
          {PAGES.map(([id, label]) => (
            <a key={id} href={`#/${id}`} data-testid={`nav-${id}`} aria-current={route.page === id ? 'page' : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <span class="who" data-testid="who">
          {session.user.username} <span class="role">{session.user.role}</span>
        </span>
        <button type="button" data-testid="sign-out" onClick={() => signOut()}>
          Sign out
        </button>
      </header>
      <main class="content">
        <Route page={route.page} arg={route.arg} />
      </main>
    </div>
  );
}

function Route(props: { page: string; arg?: string }) {
  switch (props.page) {
    case 'schema':
      return <SchemaView selected={props.arg} />;
    case 'live':
      return <LiveView />;
    case 'live-queries':
      return <LiveQueriesView />;
    case 'jobs':
      return <JobsView />;
    case 'users':
      return <UsersView />;
    case 'storages':
      return <StoragesView />;
    case 'health':
      return <HealthView />;
    default:
      return <SqlView />;
  }
}

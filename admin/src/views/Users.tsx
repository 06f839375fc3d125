import { useState } from 'preact/hooks';
import { currentSession } from '../api';
import { when } from '../format';
import { lit } from '../sqltext';
import { Confirm, ErrorBox, ListHead, Notice, objects, Page, useQuery, useStatements } from '../ui';
import { ROLES, type Role } from '../wire';

const LIST =
  'SELECT user_id, username, role, email, created_at, updated_at, failed_logins, locked_until ' +
  'FROM system.users ORDER BY username';

/** `system.users`; CREATE USER, ALTER USER (role, password), DROP USER. */
export function UsersView() {
  const q = useQuery(LIST);
  const { run, error, notice } = useStatements(q.reload);
  const rows = objects(q.result);
  const me = currentSession()?.user;
  // A dba cannot grant system (docs/sql.md); offer only what the server would accept.
  const grantable = ROLES.filter((r) => r !== 'system' || me?.role === 'system');

  // Statements with passwords travel only in the request body (`run` posts them).

  const create = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const d = new FormData(form);
    const email = String(d.get('email') ?? '').trim();
    const ok = await run(
      `CREATE USER ${lit(String(d.get('username')))} WITH PASSWORD ${lit(String(d.get('password')))} ROLE ${String(d.get('role'))}` +
        (email ? ` EMAIL ${lit(email)}` : ''),
    );
    if (ok) form.reset();
  };

  return (
    <Page title="Users and roles" testid="users-page">
      <form class="create" data-testid="create-user" onSubmit={create}>
        <h2>New user</h2>
        <label>
          name
          <input name="username" required maxLength={64} autocomplete="off" />
        </label>
        <label>
          password
          <input name="password" type="password" required minLength={8} maxLength={1024} autocomplete="new-password" />
        </label>
        <label>
          role
          <select name="role">
            {grantable.map((r) => (
              <option key={r} value={r} selected={r === 'user'}>
                {r}
              </option>
            ))}
          </select>
        </label>
        <label>
          email
          <input name="email" type="email" maxLength={256} placeholder="(optional)" />
        </label>
        <button type="submit" class="primary">
          Create user
        </button>
      </form>
      <details class="roles">
        <summary>What each role may do</summary>
        <dl class="facts">
          <dt>user</dt>
          <dd>its own partition of USER tables; reads public SHARED tables; its own password and email</dd>
          <dt>service</dt>
          <dd>+ SHARED tables, EXECUTE AS USER, FLUSH</dd>
          <dt>dba</dt>
          <dd>+ DDL, users (not granting system), system.* tables, KILL, backup and restore; by default, this console</dd>
          <dt>system</dt>
          <dd>everything; by default, this console</dd>
        </dl>
      </details>
      <ErrorBox error={q.error ?? error} />
      <Notice text={notice} />
      <table class="grid" data-testid="users">
        <ListHead columns={['user', 'role', 'email', 'created', 'failed logins', 'password']} />
        <tbody>
          {rows.map((r) => (
            <UserRow
              key={String(r.user_id)}
              username={String(r.username)}
              role={String(r.role) as Role}
              email={r.email === null ? '' : String(r.email)}
              created={when(r.created_at)}
              failed={`${String(r.failed_logins)}${r.locked_until ? ` (locked until ${when(r.locked_until)})` : ''}`}
              grantable={grantable}
              run={run}
            />
          ))}
        </tbody>
      </table>
    </Page>
  );
}

function UserRow(props: {
  username: string;
  role: Role;
  email: string;
  created: string;
  failed: string;
  grantable: Role[];
  run: (sql: string) => Promise<boolean>;
}) {
  const [role, setRole] = useState<Role>(props.role);
  const [password, setPassword] = useState('');
  const name = lit(props.username);
  return (
    <tr data-testid="user" data-username={props.username} data-role={props.role}>
      <td>{props.username}</td>
      <td>
        <select
          aria-label={`role of ${props.username}`}
          data-testid="role"
          value={role}
          onChange={(e) => setRole((e.target as HTMLSelectElement).value as Role)}
        >
          {(props.grantable.includes(props.role) ? props.grantable : [...props.grantable, props.role]).map((r) => (
            <option key={r} value={r}>
              {r}
            </option>
          ))}
        </select>{' '}
        {role !== props.role ? (
          <button type="button" data-testid="set-role" onClick={() => props.run(`ALTER USER ${name} SET ROLE ${role}`)}>
            Set role
          </button>
        ) : null}
      </td>
      <td>{props.email}</td>
      <td>{props.created}</td>
      <td class="num">{props.failed}</td>
      <td>
        <form
          class="inline"
          onSubmit={async (e) => {
            e.preventDefault();
            if (await props.run(`ALTER USER ${name} SET PASSWORD ${lit(password)}`)) setPassword('');
          }}
        >
          <input
            type="password"
            aria-label={`new password for ${props.username}`}
            placeholder="new password"
            minLength={8}
            maxLength={1024}
            required
            autocomplete="new-password"
            value={password}
            onInput={(e) => setPassword((e.target as HTMLInputElement).value)}
          />
          <button type="submit" data-testid="set-password">
            Set
          </button>
        </form>
      </td>
      <td>
        <Confirm
          label="Drop"
          question={`Drop ${props.username}?`}
          danger
          testid="drop-user"
          onConfirm={async () => void (await props.run(`DROP USER ${name}`))}
        />
      </td>
    </tr>
  );
}

import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import { ApiError, signIn } from '../api';

/** The sign-in form; `notice` says why the previous session ended. */
export function SignIn(props: { notice?: string }) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const user = useRef<HTMLInputElement>(null);
  // Runs right after the form is in the DOM with its handlers: the page is usable from here,
  // which scripts/measure-admin.mjs reports as time to interactive.
  useLayoutEffect(() => {
    user.current?.focus();
    performance.mark('kalamdb-admin-interactive');
    document.documentElement.dataset.ready = 'sign-in';
  }, []);
  const submit = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const data = new FormData(form);
    setBusy(true);
    setError(null);
    try {
      await signIn(String(data.get('username') ?? ''), String(data.get('password') ?? ''));
    } catch (err) {
      setError(
        err instanceof ApiError && err.code === 'UNAUTHORIZED'
          ? 'Invalid user name or password.'
          : err instanceof Error
            ? err.message
            : String(err),
      );
      (form.elements.namedItem('password') as HTMLInputElement | null)?.select();
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <form onSubmit={submit} data-testid="sign-in" autocomplete="on">
        <h1>
          <span class="logo" aria-hidden="true" />
          KalamDB admin
        </h1>
        <p class="hint">Sign in with an administrator account (by default, role dba or system).</p>
        {props.notice && !error ? (
          <p class="notice" data-testid="notice">
            {props.notice}
          </p>
        ) : null}
        <label>
          User
          <input ref={user} name="username" autocomplete="username" required maxLength={64} />
        </label>
        <label>
          Password
          <input name="password" type="password" autocomplete="current-password" required maxLength={1024} />
        </label>
        {error ? (
          <p class="error" role="alert" data-testid="sign-in-error">
            {error}
          </p>
        ) : null}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}

// The session and the HTTP calls. The access token lives in memory and in sessionStorage
// (so a reload keeps this tab signed in, and nothing outlives the tab); the refresh token in
// memory only. Neither is ever put in a URL or in localStorage.
import type { ErrorCode, HealthResponse, SessionResponse, SqlResponse, StatementResult, TokenResponse, UserInfo } from './wire';

const SESSION_KEY = 'kalamdb-admin.session';

export interface Session {
  token: string;
  expiresAt: string;
  user: UserInfo;
}

/** An error answered by the server (or a network failure, code `NETWORK_ERROR`). */
export class ApiError extends Error {
  readonly code: ErrorCode | 'NETWORK_ERROR' | 'BAD_RESPONSE';
  readonly status: number;
  /** 1-based statement of a SQL request that failed. */
  readonly statement?: number;

  constructor(code: ApiError['code'], message: string, status: number, statement?: number) {
    super(message);
    this.code = code;
    this.status = status;
    this.statement = statement;
  }
}

let session: Session | null = null;
let refreshToken: string | null = null;
let refreshTimer: ReturnType<typeof setTimeout> | undefined;
const listeners = new Set<(s: Session | null, reason?: string) => void>();

/** Called with the new session on sign-in, renewal and sign-out (`null`, with a reason). */
export function onSession(fn: (s: Session | null, reason?: string) => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function currentSession(): Session | null {
  return session;
}

function setSession(next: Session | null, reason?: string): void {
  session = next;
  clearTimeout(refreshTimer);
  if (next) {
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(next));
    scheduleRefresh(next);
  } else {
    refreshToken = null;
    // Everything the console keeps in this tab: the session, the query history.
    for (const key of Object.keys(sessionStorage)) if (key.startsWith('kalamdb-admin.')) sessionStorage.removeItem(key);
  }
  for (const fn of listeners) fn(next, reason);
}

function fromTokens(t: TokenResponse): Session {
  refreshToken = t.refresh_token;
  return { token: t.access_token, expiresAt: t.expires_at, user: t.user };
}

/** Renews the access token a minute before it expires, while the refresh token is known. */
function scheduleRefresh(s: Session): void {
  if (!refreshToken) return;
  const wait = Math.max(5_000, Date.parse(s.expiresAt) - Date.now() - 60_000);
  refreshTimer = setTimeout(() => {
    const token = refreshToken;
    if (!token || session !== s) return;
    post<TokenResponse>('/admin/api/refresh', { refresh_token: token })
      .then((t) => setSession(fromTokens(t)))
      .catch((e: ApiError) => {
        if (e.status === 401 || e.status === 403) setSession(null, e.message);
      });
  }, wait);
}

async function parse<T>(res: Response): Promise<T> {
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    throw new ApiError('BAD_RESPONSE', `the server answered ${res.status} without JSON`, res.status);
  }
  const err = (body as { status?: string; error?: { code: ErrorCode; message: string; statement?: number } }).error;
  if (!res.ok || (body as { status?: string }).status === 'error') {
    if (err) throw new ApiError(err.code, err.message, res.status, err.statement);
    throw new ApiError('BAD_RESPONSE', `the server answered ${res.status}`, res.status);
  }
  return body as T;
}

async function request(path: string, init: RequestInit): Promise<Response> {
  try {
    // Same origin only; the token goes in a header, never the URL.
    return await fetch(path, { ...init, credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer' });
  } catch (e) {
    throw new ApiError('NETWORK_ERROR', `cannot reach the server (${(e as Error).message})`, 0);
  }
}

async function post<T>(path: string, body: unknown, token?: string): Promise<T> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  return parse<T>(await request(path, { method: 'POST', headers, body: JSON.stringify(body) }));
}

/** Signs in through the console's login, which refuses roles the console is not open to. */
export async function signIn(username: string, password: string): Promise<Session> {
  const s = fromTokens(await post<TokenResponse>('/admin/api/login', { username, password }));
  setSession(s);
  return s;
}

/** Signs in again with the token this tab kept, if the server still accepts it. */
export async function restoreSession(): Promise<Session | null> {
  const raw = sessionStorage.getItem(SESSION_KEY);
  if (!raw) return null;
  let saved: Session;
  try {
    saved = JSON.parse(raw) as Session;
  } catch {
    sessionStorage.removeItem(SESSION_KEY);
    return null;
  }
  try {
    const res = await request('/admin/api/session', { headers: { authorization: `Bearer ${saved.token}` } });
    const info = await parse<SessionResponse>(res);
    const s = { ...saved, user: info.user };
    setSession(s);
    return s;
  } catch (e) {
    if (e instanceof ApiError && e.code === 'NETWORK_ERROR') throw e;
    setSession(null, e instanceof ApiError && e.status === 403 ? e.message : undefined);
    return null;
  }
}

export function signOut(reason?: string): void {
  setSession(null, reason);
}

/** A token for the WebSocket's `auth` frame. */
export function accessToken(): string {
  if (!session) throw new ApiError('UNAUTHORIZED', 'not signed in', 401);
  return session.token;
}

export interface SqlOutcome {
  results: StatementResult[];
  tookMs: number;
  /** Round trip as the page saw it. */
  elapsedMs: number;
}

/** Runs SQL through `POST /v1/api/sql` as the signed-in user. */
export async function sql(text: string, opts: { namespace?: string; params?: unknown[] } = {}): Promise<SqlOutcome> {
  const token = accessToken();
  const started = performance.now();
  const body: Record<string, unknown> = { sql: text };
  if (opts.namespace) body.namespace = opts.namespace;
  if (opts.params) body.params = opts.params;
  try {
    const res = await post<SqlResponse & { status: 'success' }>('/v1/api/sql', body, token);
    return { results: res.results, tookMs: res.took_ms, elapsedMs: performance.now() - started };
  } catch (e) {
    // An expired or revoked token ends the session: the page goes back to the sign-in form.
    if (e instanceof ApiError && e.status === 401 && session?.token === token) signOut(`Your session ended: ${e.message}`);
    throw e;
  }
}

/** The rows of a one-statement query as objects. */
export async function query<R = Record<string, unknown>>(text: string): Promise<R[]> {
  const { results } = await sql(text);
  const last = results[results.length - 1];
  if (!last) return [];
  return last.rows.map((r) => Object.fromEntries(last.schema.map((c, i) => [c.name, r[i]])) as R);
}

export async function health(): Promise<HealthResponse> {
  return parse<HealthResponse>(await request('/health', {}));
}

/** Prometheus text from `/metrics`, as name → value. */
export async function metrics(): Promise<Map<string, number>> {
  const res = await request('/metrics', {});
  if (!res.ok) throw new ApiError('BAD_RESPONSE', `/metrics answered ${res.status}`, res.status);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const [name, value] = line.split(/\s+/);
    if (name && value !== undefined) out.set(name, Number(value));
  }
  return out;
}

/** `/v1/api/cluster/health`, or `null` on a single node (404). */
export async function clusterHealth(): Promise<Record<string, unknown> | null> {
  const res = await request('/v1/api/cluster/health', {});
  if (res.status === 404) return null;
  if (!res.ok) throw new ApiError('BAD_RESPONSE', `cluster health answered ${res.status}`, res.status);
  return (await res.json()) as Record<string, unknown>;
}

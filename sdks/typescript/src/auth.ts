/** Access tokens: sign-in, refresh, and the token function handed to the sync engine. */

import { KalamError, errorCode } from './errors.js';
import { parseJsonWithBigInts } from './json.js';
import type { Auth, UserInfo } from './types.js';

/** The fields of a KalamDB JWT the client reads (it never verifies them: the server does). */
export interface TokenClaims {
  /** User id. */
  sub?: string;
  username?: string;
  /** Expiry, seconds since the Unix epoch. */
  exp?: number;
}

/** Decodes a JWT's payload without verifying it; `null` if it is not a JWT. */
export function decodeToken(token: string): TokenClaims | null {
  const part = token.split('.')[1];
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const json = new TextDecoder().decode(base64ToBytes(b64 + '='.repeat((4 - (b64.length % 4)) % 4)));
    const claims = JSON.parse(json);
    return claims && typeof claims === 'object' ? (claims as TokenClaims) : null;
  } catch {
    return null;
  }
}

/** Standard base64 (padded) to bytes; works in browsers and Node. */
export function base64ToBytes(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Bytes to standard padded base64; works in browsers and Node. */
export function bytesToBase64(bytes: Uint8Array): string {
  let bin = '';
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) {
    bin += String.fromCharCode.apply(null, Array.from(bytes.subarray(i, i + chunk)));
  }
  return btoa(bin);
}

interface LoginResponse {
  access_token: string;
  refresh_token: string;
  expires_at: string;
  user: UserInfo;
}

/** Hands out valid access tokens for one {@link Auth} setting. */
export class TokenProvider {
  private access: string | null = null;
  private refreshToken: string | null = null;
  private expiresAtMs = 0;
  private inflight: Promise<string> | null = null;
  /** The user of the last sign-in or token, if known. */
  user: UserInfo | null = null;

  /**
   * @param baseUrl the server's HTTP base URL (no trailing slash)
   * @param auth the credentials
   * @param fetchFn the `fetch` to use
   * @param marginSecs renew this long before expiry
   */
  constructor(
    private readonly baseUrl: string,
    private readonly auth: Auth,
    private readonly fetchFn: typeof fetch,
    private readonly marginSecs = 60,
  ) {
    if (typeof auth === 'object' && 'token' in auth) this.adopt(auth.token);
  }

  /** The username from the credentials or the token, if it can be known without a request. */
  knownUsername(): string | null {
    if (typeof this.auth === 'object' && 'username' in this.auth) return this.auth.username;
    return this.user?.username ?? (this.access ? decodeToken(this.access)?.username ?? null : null);
  }

  private adopt(token: string): void {
    this.access = token;
    const claims = decodeToken(token);
    this.expiresAtMs = claims?.exp ? claims.exp * 1000 : Number.POSITIVE_INFINITY;
    if (claims?.username && claims.sub && (!this.user || this.user.username !== claims.username)) {
      this.user = { id: claims.sub, username: claims.username, role: this.user?.role ?? 'unknown' };
    }
  }

  private fresh(): boolean {
    return this.access !== null && Date.now() < this.expiresAtMs - this.marginSecs * 1000;
  }

  /**
   * A valid access token: the cached one, or a renewed one (refresh, else sign in again).
   * `force` discards the cached token (after the server refused it).
   */
  async token(force = false): Promise<string> {
    const auth = this.auth;
    if (typeof auth === 'function') {
      const t = await auth();
      if (typeof t !== 'string' || !t) throw new KalamError('UNAUTHORIZED', 'the token function returned no token');
      this.adopt(t);
      return t;
    }
    if ('token' in auth) return auth.token;
    if (force) this.access = null;
    if (this.fresh()) return this.access!;
    // One renewal at a time: concurrent callers share it.
    if (!this.inflight) {
      this.inflight = this.renew().finally(() => {
        this.inflight = null;
      });
    }
    return this.inflight;
  }

  private async renew(): Promise<string> {
    if (this.refreshToken) {
      try {
        return this.accept(await this.post('/v1/api/auth/refresh', { refresh_token: this.refreshToken }));
      } catch (e) {
        // A revoked or expired refresh token: sign in again below. Network errors propagate.
        if (!(e instanceof KalamError) || e.code !== 'UNAUTHORIZED') throw e;
        this.refreshToken = null;
      }
    }
    const auth = this.auth as { username: string; password: string };
    return this.accept(await this.post('/v1/api/auth/login', { username: auth.username, password: auth.password }));
  }

  private accept(r: LoginResponse): string {
    this.access = r.access_token;
    this.refreshToken = r.refresh_token ?? null;
    const exp = Date.parse(r.expires_at);
    this.expiresAtMs = Number.isFinite(exp) ? exp : decodeToken(r.access_token)?.exp ?? 0;
    this.user = r.user;
    return r.access_token;
  }

  private async post(path: string, body: unknown): Promise<LoginResponse> {
    const res = await httpJson(this.fetchFn, this.baseUrl + path, { method: 'POST', body: JSON.stringify(body) });
    return res as LoginResponse;
  }
}

/**
 * Sends a JSON request and returns the parsed JSON body, or throws a {@link KalamError}
 * built from KalamDB's error shape `{status:"error", error:{code, message, statement?}}`.
 */
export async function httpJson(
  fetchFn: typeof fetch,
  url: string,
  init: { method: string; body?: string; headers?: Record<string, string>; signal?: AbortSignal },
  /** Read integers beyond ±(2^53 − 1) as exact `bigint`s (SQL results). */
  exactIntegers = false,
): Promise<unknown> {
  let res: Response;
  try {
    res = await fetchFn(url, {
      method: init.method,
      body: init.body,
      signal: init.signal,
      headers: { 'content-type': 'application/json', accept: 'application/json', ...init.headers },
    });
  } catch (e) {
    if ((e as { name?: string })?.name === 'AbortError') throw e;
    // A browser says only "Failed to fetch", whether the server is down, the URL wrong or the
    // page's origin not allowed: name all three.
    const hint =
      typeof window === 'undefined'
        ? 'check the URL and that the server is running'
        : `check the URL, that the server is running, and that it allows this page's origin (${window.location.origin}) with --cors-origins`;
    throw new KalamError('NETWORK_ERROR', `cannot reach ${url}: ${(e as Error)?.message ?? e} (${hint})`, {
      cause: e,
    });
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = text ? (exactIntegers ? parseJsonWithBigInts(text) : JSON.parse(text)) : null;
  } catch {
    throw new KalamError('BAD_RESPONSE', `HTTP ${res.status} from ${url}: not JSON: ${text.slice(0, 200)}`, {
      status: res.status,
    });
  }
  const err = (body as { error?: { code?: string; message?: string; statement?: number } } | null)?.error;
  if (!res.ok || (body as { status?: string } | null)?.status === 'error') {
    throw new KalamError(errorCode(err?.code), err?.message ?? `HTTP ${res.status} from ${url}`, {
      status: res.status,
      statement: err?.statement,
    });
  }
  return body;
}

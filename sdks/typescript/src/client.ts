/** The `KalamClient` class: SQL over HTTP plus the local replica run by the WebAssembly engine. */

import { TokenProvider, base64ToBytes, bytesToBase64, httpJson } from './auth.js';
import { KalamError, errorCode } from './errors.js';
import { stringifyJsonWithBigInts } from './json.js';
import type {
  ClientEvents,
  ClientOptions,
  CrdtCell,
  ErrorEvent,
  MutationEvent,
  MutationOp,
  MutationState,
  PrimaryKey,
  Row,
  SettledState,
  SqlOptions,
  SqlResult,
  StorageKind,
  SyncStatus,
  UserInfo,
} from './types.js';
import type { WasmClient, WasmLoader, WasmResultSet, WasmSubscription } from './wasm-api.js';
import type { MutationState as WireMutationState } from './generated/MutationState.js';
import type { SyncEvent } from './generated/SyncEvent.js';
import type { SyncStatus as WireSyncStatus } from './generated/SyncStatus.js';

/** The status reported before the engine says anything. */
export const INITIAL_STATUS: SyncStatus = Object.freeze({
  online: false,
  syncing: false,
  pendingWrites: 0,
  lastSyncedMs: null,
  firstSyncRows: 0,
  lastError: null,
});

/** A local write accepted into the outbox, with its way to the server. */
export interface WriteReceipt {
  /** This replica's writer id (one per replica, kept across restarts). */
  clientId: string;
  /** The write's sequence number for `clientId`. */
  seq: number;
  /** Primary keys of the inserted rows, in op order (generated keys included). */
  insertedKeys: PrimaryKey[];
  /** The first inserted key (the key of a single `insert`), if any. */
  key?: PrimaryKey;
  /** Where the write stands now: pending, applied or rejected. */
  status(): Promise<MutationState>;
  /**
   * Resolves once the server applied the write (`{status: 'applied'}`) or refused it
   * (`{status: 'rejected', code, reason}`; the optimistic change was rolled back). Never
   * rejects; stays pending while offline.
   */
  settled: Promise<SettledState>;
}

/** Write helpers for one table, from {@link KalamClient.table}. */
export interface TableHandle<R extends Row = Row> {
  /** The qualified table name (`namespace.table`). */
  readonly name: string;
  /** Inserts a row locally at once and queues it. A missing TEXT primary key is generated (UUIDv7). */
  insert(row: Partial<R>): Promise<WriteReceipt>;
  /** Changes some columns of the row with primary key `pk`. */
  update(pk: PrimaryKey, changes: Partial<R>): Promise<WriteReceipt>;
  /** Deletes the row with primary key `pk` (a soft delete on the server). */
  delete(pk: PrimaryKey): Promise<WriteReceipt>;
  /**
   * Merges a Yjs v1 update (e.g. `Y.encodeStateAsUpdate(doc)`) into the CRDT_TEXT `column`
   * of row `pk`; concurrent edits from other devices are kept.
   */
  editText(pk: PrimaryKey, column: string, update: Uint8Array): Promise<WriteReceipt>;
  /** The CRDT_TEXT `column` of row `pk`: its text and Yjs state; see {@link KalamClient.crdt}. */
  crdt(pk: PrimaryKey, column: string): Promise<CrdtCell | null>;
}

/** Called with every result of a live query. */
export type LiveCallback<R = Row> = (rows: R[]) => void;

/** Stops a live query or an event listener. */
export type Unsubscribe = () => void;

/** `{update: base64}`: the write form of a Yjs update for a CRDT_TEXT column. */
export function crdtUpdate(update: Uint8Array): { update: string } {
  return { update: bytesToBase64(update) };
}

/**
 * A comparison key for query parameters: their JSON text, with `bigint`s (which JSON cannot
 * hold) written as tagged strings. Live-query bindings re-subscribe when it changes.
 * @internal
 */
export function paramsKey(params: unknown[] | undefined): string {
  return JSON.stringify(params ?? [], (_k, v: unknown) => (typeof v === 'bigint' ? `bigint:${v}` : v));
}

/** Converts `{columns, rows}` (rows as arrays) to row objects. */
export function toObjects<R = Row>(columns: string[], rows: unknown[][]): R[] {
  return rows.map((r) => {
    const o: Record<string, unknown> = {};
    for (let i = 0; i < columns.length; i++) o[columns[i]!] = r[i];
    return o as R;
  });
}

/** Derives the sync WebSocket URL from the HTTP base URL: `http(s)://h/p` → `ws(s)://h/p/v1/ws`. */
export function wsUrlOf(httpBase: string): string {
  const u = new URL(httpBase);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new KalamError('CLIENT_ERROR', `url must be http(s)://..., got ${httpBase}`);
  }
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  u.pathname = u.pathname.replace(/\/+$/, '') + '/v1/ws';
  u.search = '';
  u.hash = '';
  return u.toString();
}

function statusFrom(s: WireSyncStatus): SyncStatus {
  return {
    online: s.online,
    syncing: s.syncing,
    pendingWrites: s.pending_writes,
    lastSyncedMs: s.last_synced_ms ?? null,
    firstSyncRows: s.first_sync_rows,
    lastError: s.last_error ?? null,
  };
}

function stateFrom(s: WireMutationState | undefined | null): MutationState | undefined {
  switch (s?.status) {
    case undefined:
      return undefined;
    case 'pending':
      return { status: 'pending' };
    case 'applied':
      return { status: 'applied', cursor: s.cursor ?? null };
    case 'rejected':
      return { status: 'rejected', code: errorCode(s.code), reason: s.reason };
  }
}

function cellFrom(v: unknown): CrdtCell | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return { text: v, state: null };
  const o = v as { text?: unknown; state?: unknown };
  return {
    text: typeof o.text === 'string' ? o.text : '',
    state: typeof o.state === 'string' ? base64ToBytes(o.state) : null,
  };
}

/** SQL text of a literal for the few statements the client writes itself. */
function sqlLiteral(v: PrimaryKey): string {
  if (typeof v === 'bigint') return String(v);
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new KalamError('CLIENT_ERROR', 'invalid primary key');
    return String(v);
  }
  return `'${String(v).replace(/'/g, "''")}'`;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/;

/** Environment hooks given by the entry point (browser or Node). @internal */
export interface Environment {
  load: WasmLoader;
  defaultStorage: StorageKind;
  defaultUrl?: () => string | undefined;
  /** Holds the host process alive while the client is open; returns the release. */
  keepAlive?: () => () => void;
}

type Listener<K extends keyof ClientEvents> = (event: ClientEvents[K]) => void;

/**
 * A KalamDB client: SQL on the server over HTTP, and a local replica of the subscribed rows
 * that is queried locally (also offline), written optimistically and kept in sync over one
 * WebSocket. Create it with {@link createClient}.
 */
export class KalamClient {
  /** The server's HTTP base URL (no trailing slash). */
  readonly url: string;
  /** The sync WebSocket URL. */
  readonly wsUrl: string;
  /**
   * Where the replica lives. Starts as requested; becomes `'memory'` if IndexedDB was the
   * default but the engine or the environment does not support it.
   */
  storage: StorageKind;
  /**
   * Resolves once the engine is loaded and the replica open; rejects if that failed (every
   * replica method then rejects with the same error).
   */
  readonly ready: Promise<void>;

  private readonly options: ClientOptions;
  private readonly tokens: TokenProvider;
  private readonly fetchFn: typeof fetch;
  private engineP: Promise<WasmClient>;
  private engineV: WasmClient | null = null;
  private eventSub: WasmSubscription | null = null;
  private statusV: SyncStatus = INITIAL_STATUS;
  private readonly listeners: { [K in keyof ClientEvents]: Set<Listener<K>> } = {
    status: new Set(),
    mutation: new Set(),
    error: new Set(),
  };
  /** Outcomes of writes settled since open, for receipts created after the event arrived. */
  private readonly outcomes = new Map<string, SettledState>();
  private readonly waiters = new Map<string, Array<(s: SettledState) => void>>();
  private closed = false;
  private forceTokenRenewal = false;
  private releaseTabLock: (() => void) | null = null;
  private releaseKeepAlive: (() => void) | null = null;

  /** Use {@link createClient}. @internal */
  constructor(options: ClientOptions, env: Environment) {
    this.options = options;
    const url = options.url ?? env.defaultUrl?.();
    if (!url) throw new KalamError('CLIENT_ERROR', 'createClient: `url` is required outside browsers');
    this.url = url.replace(/\/+$/, '');
    this.wsUrl = wsUrlOf(this.url);
    if (!options.auth) throw new KalamError('CLIENT_ERROR', 'createClient: `auth` is required');
    const f = options.fetch ?? globalThis.fetch;
    if (!f) throw new KalamError('CLIENT_ERROR', 'no fetch() in this environment: pass options.fetch');
    this.fetchFn = f.bind(globalThis);
    this.tokens = new TokenProvider(this.url, options.auth, this.fetchFn, options.refreshMarginSecs ?? 60);
    this.storage = options.storage ?? env.defaultStorage;
    this.releaseKeepAlive = env.keepAlive?.() ?? null;
    this.engineP = this.open(env);
    this.ready = this.engineP.then(() => undefined);
    // Avoid unhandled-rejection noise: callers see the error through `ready` or any method.
    this.ready.catch(() => {});
  }

  private async open(env: Environment): Promise<WasmClient> {
    const mod = await env.load();
    const explicit = this.options.storage !== undefined;
    const token = () => {
      const force = this.forceTokenRenewal;
      this.forceTokenRenewal = false;
      return this.tokens.token(force);
    };
    const base: Record<string, unknown> = { url: this.wsUrl, online: this.options.online ?? true };
    if (this.options.pingIntervalMs !== undefined) base.pingIntervalMs = this.options.pingIntervalMs;
    if (this.options.backoffMaxMs !== undefined) base.backoffMaxMs = this.options.backoffMaxMs;
    let engine: WasmClient;
    if (this.storage === 'indexeddb') {
      let dbName = this.options.dbName;
      if (!dbName) {
        let username = this.tokens.knownUsername();
        if (!username) {
          await this.tokens.token();
          username = this.tokens.knownUsername();
        }
        dbName = `kalamdb:${new URL(this.url).host}:${username ?? 'default'}`;
      }
      try {
        if (typeof indexedDB === 'undefined') throw new Error('unknown storage: no IndexedDB in this environment');
        const multiTab = typeof mod.KalamClient.supportsMultiTab === 'function' && mod.KalamClient.supportsMultiTab();
        if (!multiTab && !(await this.acquireTabLock(dbName))) {
          // Two engines on one database would reuse each other's client id and sequence numbers.
          throw new Error('IndexedDB replica in use by another tab (this engine has no multi-tab support)');
        }
        engine = await mod.KalamClient.open({ ...base, storage: 'indexeddb', dbName }, token);
      } catch (e) {
        const msg = (e as Error)?.message ?? String(e);
        this.releaseTabLock?.();
        this.releaseTabLock = null;
        if (explicit || !/storage|dbName|IndexedDB/i.test(msg)) throw KalamError.from(e);
        // The default storage is unavailable here (older engine or no IndexedDB): keep working
        // with an in-memory replica rather than not at all.
        console.warn(`@kalamdb/client: IndexedDB replica unavailable (${msg}); using memory storage`);
        this.storage = 'memory';
        engine = await mod.KalamClient.open({ ...base, storage: 'memory' }, token);
      }
    } else {
      engine = await mod.KalamClient.open({ ...base, storage: this.storage }, token);
    }
    if (this.closed) {
      await engine.close();
      throw new KalamError('CLIENT_ERROR', 'the client is closed');
    }
    this.engineV = engine;
    this.eventSub = engine.onEvent((e) => this.dispatch(e));
    return engine;
  }

  /**
   * Takes the Web Lock naming this replica without waiting; false if another tab holds it.
   * Held until {@link close} (or the tab goes away).
   */
  private acquireTabLock(dbName: string): Promise<boolean> {
    type Locks = {
      request(name: string, opts: { ifAvailable: boolean }, cb: (lock: unknown) => Promise<void> | undefined): Promise<unknown>;
    };
    const locks = (globalThis as { navigator?: { locks?: Locks } }).navigator?.locks;
    if (!locks?.request) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      locks
        .request(`kalamdb-replica:${dbName}`, { ifAvailable: true }, (lock) => {
          if (!lock) {
            resolve(false);
            return undefined;
          }
          resolve(true);
          return new Promise<void>((release) => {
            this.releaseTabLock = release;
          });
        })
        .catch(() => resolve(true));
    });
  }

  private dispatch(e: SyncEvent): void {
    switch (e.type) {
      case 'status': {
        this.statusV = statusFrom(e);
        this.emit('status', this.statusV);
        break;
      }
      case 'mutation': {
        const state = stateFrom(e.state);
        if (!state) return;
        const ev: MutationEvent = { clientId: e.client_id, seq: e.seq, state };
        if (state.status !== 'pending') this.settle(ev.clientId, ev.seq, state);
        this.emit('mutation', ev);
        break;
      }
      case 'subscription_error':
      case 'connection_failed':
      case 'error': {
        const ev: ErrorEvent = { code: errorCode(e.code), message: e.message };
        if (e.type === 'subscription_error') ev.subscriptionId = String(e.id);
        if (ev.code === 'UNAUTHORIZED') this.forceTokenRenewal = true;
        this.emit('error', ev);
        break;
      }
    }
  }

  private emit<K extends keyof ClientEvents>(kind: K, event: ClientEvents[K]): void {
    for (const cb of [...this.listeners[kind]]) {
      try {
        cb(event);
      } catch (err) {
        console.error(`@kalamdb/client: '${kind}' listener threw`, err);
      }
    }
  }

  private settle(clientId: string, seq: number, state: SettledState): void {
    const key = `${clientId}#${seq}`;
    this.outcomes.set(key, state);
    if (this.outcomes.size > 10000) {
      const oldest = this.outcomes.keys().next().value;
      if (oldest !== undefined) this.outcomes.delete(oldest);
    }
    const ws = this.waiters.get(key);
    if (ws) {
      this.waiters.delete(key);
      for (const w of ws) w(state);
    }
  }

  private async engine(): Promise<WasmClient> {
    if (this.closed) throw new KalamError('CLIENT_ERROR', 'the client is closed');
    return this.engineV ?? this.engineP;
  }

  private async call<T>(f: (e: WasmClient) => Promise<T>): Promise<T> {
    const e = await this.engine();
    try {
      return await f(e);
    } catch (err) {
      throw KalamError.from(err);
    }
  }

  // ---- server ---------------------------------------------------------------------------------

  /**
   * Runs SQL on the server (`POST /v1/api/sql`): one or more statements separated by `;`, with
   * `$1..$n` bound from `params`. Resolves with one result per statement; rejects with a
   * {@link KalamError} (`code`, HTTP `status`, failing `statement`). Statements before a failing
   * one stay applied.
   */
  async sql<R = Row>(sql: string, params?: unknown[], options: SqlOptions = {}): Promise<SqlResult<R>[]> {
    const body: Record<string, unknown> = { sql };
    if (params && params.length) body.params = params;
    const ns = options.namespace ?? this.options.namespace;
    if (ns) body.namespace = ns;
    // BIGINT values beyond ±(2^53 − 1) stay exact both ways, as `bigint`s.
    const send = async (force: boolean) =>
      httpJson(
        this.fetchFn,
        `${this.url}/v1/api/sql`,
        {
          method: 'POST',
          body: stringifyJsonWithBigInts(body),
          headers: { authorization: `Bearer ${await this.tokens.token(force)}` },
          signal: options.signal,
        },
        true,
      );
    let res: unknown;
    try {
      res = await send(false);
    } catch (e) {
      // A token the server no longer accepts (restart with a new secret, revoked): renew once.
      const auth = this.options.auth;
      if (!(e instanceof KalamError && e.code === 'UNAUTHORIZED' && typeof auth === 'object' && 'username' in auth)) {
        throw e;
      }
      res = await send(true);
    }
    const results = (res as { results?: unknown }).results;
    if (!Array.isArray(results)) throw new KalamError('BAD_RESPONSE', 'the server answered without results');
    return results.map((r: Record<string, unknown>) => {
      const schema = (r.schema as { name: string; type: string }[] | undefined) ?? [];
      const rawRows = (r.rows as unknown[][] | undefined) ?? [];
      return {
        schema,
        rows: toObjects<R>(
          schema.map((c) => c.name),
          rawRows,
        ),
        rawRows,
        rowCount: Number(r.row_count ?? rawRows.length),
        message: (r.message as string | null | undefined) ?? null,
      };
    });
  }

  /**
   * The signed-in user. Signs in first if needed, so it is also a way to check credentials:
   * rejects with `KalamError` `UNAUTHORIZED` (or `ACCOUNT_LOCKED`) if they are wrong. With a
   * token or token function the role is `'unknown'` (the token does not carry it).
   */
  async user(): Promise<UserInfo> {
    await this.tokens.token();
    const u = this.tokens.user;
    if (!u) throw new KalamError('UNAUTHORIZED', 'the token does not name a user');
    return u;
  }

  /** A valid access token for other requests to the same server (renewed when near expiry). */
  token(): Promise<string> {
    return this.tokens.token();
  }

  // ---- replica --------------------------------------------------------------------------------

  /**
   * Declares what to replicate: `SELECT <columns|*> FROM namespace.table [WHERE ...]`, kept
   * under `id` (also across restarts with IndexedDB). Resolves once the subscription is
   * registered locally; the rows arrive in the background (see {@link settled}). Idempotent for
   * the same `id` and SQL.
   */
  sync(id: string, sql: string): Promise<void> {
    return this.call((e) => e.sync(id, sql));
  }

  /** Stops replicating subscription `id` and drops its rows from the replica. */
  unsync(id: string): Promise<void> {
    return this.call((e) => e.unsync(id));
  }

  /**
   * Runs a query on the local replica (works offline), in KalamDB's query language — the one
   * the server speaks: SELECT over the synced tables with INNER and LEFT joins, WHERE with
   * arithmetic and functions (lower, upper, length, coalesce, abs, round, date_trunc), GROUP BY
   * with count/sum/avg/min/max, HAVING, DISTINCT, ORDER BY, LIMIT/OFFSET and `$n` or `?`
   * parameters (a `bigint` parameter stays exact). DECIMAL and TIMESTAMP compare as numbers
   * and instants. Local writes not yet confirmed are included; CRDT_TEXT columns read as their
   * text. Values are encoded as in {@link Row}. See docs/client.md, "Local query language".
   */
  async query<R = Row>(sql: string, params?: unknown[]): Promise<R[]> {
    const rs = await this.call((e) => e.query(sql, params ?? null));
    return toObjects<R>(rs.columns, rs.rows);
  }

  /**
   * A live local query: `callback(rows)` with the current result at once, then after every
   * local write or synced change to one of the tables it reads (all the tables of a join) that
   * changes it. Returns a function that stops it. Errors
   * (bad SQL, closed client) go to `onError`, else to the `'error'` event. A query on a table
   * whose schema has not arrived yet (right after `sync()`) waits for it instead of failing;
   * if it still fails once everything is loaded, `onError` is called and it keeps waiting.
   */
  live<R = Row>(sql: string, callback: LiveCallback<R>): Unsubscribe;
  live<R = Row>(
    sql: string,
    params: unknown[] | undefined,
    callback: LiveCallback<R>,
    onError?: (e: KalamError) => void,
  ): Unsubscribe;
  live<R = Row>(
    sql: string,
    a: unknown[] | undefined | LiveCallback<R>,
    b?: LiveCallback<R>,
    onError?: (e: KalamError) => void,
  ): Unsubscribe {
    const params = typeof a === 'function' ? undefined : a;
    const callback = (typeof a === 'function' ? a : b) as LiveCallback<R>;
    if (typeof callback !== 'function') throw new KalamError('CLIENT_ERROR', 'live(): a callback is required');
    let stopped = false;
    let sub: WasmSubscription | null = null;
    let inflight = false;
    let again = false;
    let offStatus: Unsubscribe | null = null;
    const start = () => {
      if (stopped || sub) return;
      if (inflight) {
        again = true;
        return;
      }
      inflight = true;
      this.call((e) =>
        e.live(sql, params ?? null, (rs: WasmResultSet) => {
          if (!stopped) callback(toObjects<R>(rs.columns, rs.rows));
        }),
      ).then(
        (s) => {
          inflight = false;
          if (stopped) return stopSub(s);
          sub = s;
          offStatus?.();
          offStatus = null;
        },
        (err: unknown) => {
          inflight = false;
          if (stopped) return;
          const ke = KalamError.from(err);
          // The table is declared but its schema has not arrived yet (first sync running or
          // offline): retry whenever the sync status changes instead of failing for good.
          const notYet = /not synced|does not exist|unknown (table|column)/i.test(ke.message);
          if (!notYet) {
            offStatus?.();
            offStatus = null;
          }
          const st = this.currentStatus;
          if (!notYet || (st.online && !st.syncing)) {
            if (onError) onError(ke);
            else this.emit('error', { code: ke.code, message: ke.message });
          }
          if (again) {
            again = false;
            start();
          }
        },
      );
    };
    // Listening before the first attempt: a status change (the schema arriving) while that
    // attempt is in flight makes it run again rather than be missed.
    offStatus = this.on('status', () => start());
    start();
    return () => {
      if (stopped) return;
      stopped = true;
      offStatus?.();
      offStatus = null;
      if (sub) stopSub(sub);
    };
  }

  /** Write helpers for `table` (`namespace.table`). */
  table<R extends Row = Row>(name: string): TableHandle<R> {
    return {
      name,
      insert: (row) => this.mutate([{ table: name, op: 'insert', row: row as Row }]),
      update: (pk, changes) => this.mutate([{ table: name, op: 'update', pk, row: changes as Row }]),
      delete: (pk) => this.mutate([{ table: name, op: 'delete', pk }]),
      editText: (pk, column, update) =>
        this.mutate([{ table: name, op: 'update', pk, row: { [column]: crdtUpdate(update) } }]),
      crdt: (pk, column) => this.crdt(name, pk, column),
    };
  }

  /**
   * Applies several writes at once, locally and optimistically, and queues them as one
   * mutation: the server applies all of them or none (exactly once, also across retries).
   * An insert made right after the first `sync()`, before the server has described the
   * table, resolves once the table's columns arrive (online, up to 30 s) so that its key
   * can be generated; later writes wait behind it.
   */
  async mutate(ops: MutationOp[]): Promise<WriteReceipt> {
    const r = await this.call((e) => e.mutate(ops));
    const clientId = r.clientId;
    const seq = Number(r.seq);
    const key = `${clientId}#${seq}`;
    const insertedKeys = (r.insertedKeys ?? []) as PrimaryKey[];
    const settled = new Promise<SettledState>((resolve) => {
      const known = this.outcomes.get(key);
      if (known) return resolve(known);
      const list = this.waiters.get(key) ?? [];
      list.push(resolve);
      this.waiters.set(key, list);
    });
    const receipt: WriteReceipt = {
      clientId,
      seq,
      insertedKeys,
      status: async () => {
        const known = this.outcomes.get(key);
        if (known) return known;
        const s = stateFrom(await this.call((e) => e.mutationState(clientId, BigInt(seq))));
        return s ?? this.outcomes.get(key) ?? { status: 'pending' };
      },
      settled,
    };
    if (insertedKeys.length) receipt.key = insertedKeys[0];
    return receipt;
  }

  /**
   * A CRDT_TEXT cell of row `pk`: its text and its Yjs document state, to start an editor
   * (`Y.applyUpdate(doc, cell.state)`). Read from the replica (pending local edits merged) when
   * the engine supports it, else from the server (needs a connection; the primary-key column
   * is `pkColumn`, default `id`). `null` if the row or the value does not exist.
   */
  async crdt(table: string, pk: PrimaryKey, column: string, pkColumn = 'id'): Promise<CrdtCell | null> {
    const e = await this.engine();
    if (typeof e.crdtCell === 'function') {
      try {
        return cellFrom(await e.crdtCell(table, pk, column));
      } catch (err) {
        throw KalamError.from(err);
      }
    }
    return this.crdtFromServer(table, pk, column, pkColumn);
  }

  private async crdtFromServer(table: string, pk: PrimaryKey, column: string, pkColumn: string): Promise<CrdtCell | null> {
    if (!IDENT.test(table) || !IDENT.test(column) || !IDENT.test(pkColumn)) {
      throw new KalamError('CLIENT_ERROR', 'invalid table or column name');
    }
    const token = await this.tokens.token();
    const WS = (globalThis as { WebSocket?: typeof WebSocket }).WebSocket;
    if (!WS) throw new KalamError('CLIENT_ERROR', 'no WebSocket in this environment');
    const sql = `SELECT ${pkColumn}, ${column} FROM ${table} WHERE ${pkColumn} = ${sqlLiteral(pk)}`;
    return new Promise<CrdtCell | null>((resolve, reject) => {
      const ws = new WS(this.wsUrl);
      let schema: { name: string }[] = [];
      let found: unknown = undefined;
      const timer = setTimeout(() => finish(new KalamError('NETWORK_ERROR', 'timed out reading the CRDT cell')), 10000);
      const finish = (err: KalamError | null, value?: CrdtCell | null) => {
        clearTimeout(timer);
        ws.onmessage = ws.onclose = ws.onerror = null;
        try {
          ws.close();
        } catch {
          /* already closed */
        }
        if (err) reject(err);
        else resolve(value ?? null);
      };
      ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token }));
      ws.onerror = () => finish(new KalamError('NETWORK_ERROR', `cannot reach ${this.wsUrl}`));
      ws.onclose = () => finish(new KalamError('NETWORK_ERROR', 'the connection closed'));
      ws.onmessage = (ev: MessageEvent) => {
        const m = JSON.parse(String(ev.data));
        if (m.type === 'auth_ok') ws.send(JSON.stringify({ type: 'subscribe', id: 'crdt', sql }));
        else if (m.type === 'subscribed') schema = m.schema;
        else if (m.type === 'batch') {
          const idx = schema.findIndex((c) => c.name === column);
          for (const row of m.rows as unknown[][]) if (idx >= 0) found = row[idx];
          if (m.last) finish(null, cellFrom(found));
        } else if (m.type === 'error') finish(new KalamError(errorCode(m.code), String(m.message)));
      };
    });
  }

  // ---- status and events ------------------------------------------------------------------

  /** The engine's current sync status. */
  async status(): Promise<SyncStatus> {
    const s = statusFrom(await this.call((e) => e.status()));
    this.statusV = s;
    return s;
  }

  /** The last status reported (synchronous; {@link INITIAL_STATUS} before the first report). */
  get currentStatus(): SyncStatus {
    return this.statusV;
  }

  /**
   * Listens to `'status'` (every status change), `'mutation'` (a write settled) or `'error'`
   * (a subscription was refused or ended, or a connection error). Returns a function that
   * removes the listener.
   */
  on<K extends keyof ClientEvents>(event: K, callback: (e: ClientEvents[K]) => void): Unsubscribe {
    const set = this.listeners[event] as Set<Listener<K>>;
    if (!set) throw new KalamError('CLIENT_ERROR', `unknown event '${String(event)}'`);
    set.add(callback);
    return () => {
      set.delete(callback);
    };
  }

  /**
   * Goes offline (`false`: closes the WebSocket, keeps working on the replica, queues writes)
   * or back online (`true`: reconnects, catches up, sends queued writes).
   */
  setOnline(online: boolean): void {
    if (this.engineV) this.engineV.setOnline(online);
    else this.engineP.then((e) => e.setOnline(online), () => {});
  }

  /**
   * Resolves once online, every subscription loaded and every local write confirmed. Until the
   * server has accepted this client's connection once, rejects with a {@link KalamError} when
   * connecting fails (`NETWORK_ERROR`, `UNAUTHORIZED`, ...: the same as the `'error'` event),
   * at once if it is already failing; retries go on, so a later call can resolve. Once
   * connected, outages (a server restart, the network gone) are waited out.
   */
  settled(): Promise<void> {
    return this.call((e) => e.settled());
  }

  /** Stops syncing and releases the engine. The IndexedDB replica is kept for the next start. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const e = this.engineV ?? (await this.engineP.catch(() => null));
    if (this.eventSub) stopSub(this.eventSub);
    this.eventSub = null;
    this.releaseTabLock?.();
    this.releaseTabLock = null;
    this.releaseKeepAlive?.();
    this.releaseKeepAlive = null;
    // Not freed explicitly: async engine calls may still hold it; the wasm-bindgen finalizer
    // releases it once unreachable.
    if (e) await e.close();
    this.engineV = null;
  }
}

function stopSub(s: WasmSubscription): void {
  try {
    s.stop();
    s.free?.();
  } catch {
    /* already stopped */
  }
}

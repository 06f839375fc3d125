/** Public types of `@kalamdb/client`. */

import type { KalamErrorCode } from './errors.js';
import type { ColumnInfo } from './generated/ColumnInfo.js';
import type { Role } from './generated/Role.js';
import type { UserInfo as WireUserInfo } from './generated/UserInfo.js';

/**
 * A row as an object keyed by column name. Values are encoded as the server's JSON results:
 * BOOLEAN `boolean`; SMALLINT, INT, BIGINT, FLOAT, DOUBLE `number` (NaN and infinities as the
 * strings `"NaN"`, `"inf"`, `"-inf"`); DECIMAL a `string` with its exact digits (`"9.50"`);
 * TIMESTAMP an RFC 3339 `string` (`"2024-03-15T10:20:30.000000Z"`); DATE `"YYYY-MM-DD"`; BYTES
 * base64; JSON columns the JSON value; TEXT and CRDT_TEXT `string`. In local query results an
 * integer beyond ±(2^53 − 1), such as a snowflake id, is a `bigint`, so no digit is lost.
 */
export type Row = Record<string, unknown>;

/** A primary-key value (TEXT keys are strings, integer keys numbers, or bigints beyond 2^53). */
export type PrimaryKey = string | number | bigint;

/**
 * How the client authenticates.
 *
 * - `{ username, password }`: signs in with `POST /v1/api/auth/login` and renews the access
 *   token with `POST /v1/api/auth/refresh` shortly before it expires (signing in again if the
 *   refresh token is refused).
 * - `{ token }`: a fixed access token (JWT).
 * - a function returning (a promise of) an access token: called for every connection, every
 *   HTTP request and before a token expires; it is responsible for renewing it.
 */
export type Auth =
  | { username: string; password: string }
  | { token: string }
  | (() => string | Promise<string>);

/**
 * Where the local replica lives: `'indexeddb'` (browsers: survives reloads, shared by tabs)
 * or `'memory'` (Node.js and tests: gone when the process ends).
 */
export type StorageKind = 'memory' | 'indexeddb';

/** Options of {@link createClient}. */
export interface ClientOptions {
  /**
   * The server's HTTP(S) base URL, e.g. `http://127.0.0.1:8080`. The WebSocket URL is derived
   * from it (`ws(s)://.../v1/ws`). In a browser it defaults to `location.origin` (useful behind
   * a reverse proxy or a dev-server proxy, since the server sends no CORS headers).
   */
  url?: string;
  /** Credentials; see {@link Auth}. */
  auth: Auth;
  /** Replica storage; default `'indexeddb'` in browsers, `'memory'` in Node.js. */
  storage?: StorageKind;
  /**
   * IndexedDB database name. Default: `kalamdb:<host>:<username>`, one replica per user per
   * server (the username comes from the credentials or the token).
   */
  dbName?: string;
  /** Start connected (default `true`); see {@link KalamClient.setOnline}. */
  online?: boolean;
  /** Default namespace for unqualified table names in {@link KalamClient.sql}. */
  namespace?: string;
  /** Interval of WebSocket keep-alive pings in milliseconds. */
  pingIntervalMs?: number;
  /** Upper bound of the reconnect backoff in milliseconds. */
  backoffMaxMs?: number;
  /** Renew tokens this many seconds before they expire (default 60). */
  refreshMarginSecs?: number;
  /** `fetch` to use for HTTP requests (default: the global `fetch`). */
  fetch?: typeof fetch;
}

/** A column of a result: its name and KalamDB type (`TEXT`, `BIGINT`, `CRDT_TEXT`, ...). */
export type { ColumnInfo } from './generated/ColumnInfo.js';

/** One statement's result from {@link KalamClient.sql}. */
export interface SqlResult<R = Row> {
  /** Result columns (empty for DDL and DML). */
  schema: ColumnInfo[];
  /** Rows as objects keyed by column name. */
  rows: R[];
  /** Rows as arrays in schema order, as the server sent them. */
  rawRows: unknown[][];
  /** Rows returned, or rows affected by DML. */
  rowCount: number;
  /** A human-readable summary for DDL and DML (`"Inserted 1 row(s)"`), else `null`. */
  message: string | null;
}

/** Options of {@link KalamClient.sql}. */
export interface SqlOptions {
  /** Default namespace for unqualified table names (overrides {@link ClientOptions.namespace}). */
  namespace?: string;
  /** Aborts the request. */
  signal?: AbortSignal;
}

/** A user's role (user, service, dba, system); each includes the permissions of the ones before it. */
export type { Role } from './generated/Role.js';

/**
 * The signed-in user, as the server reports it at sign-in. `role` is `'unknown'` when the
 * client was given a bare token (a token does not carry the role).
 */
export type UserInfo = Omit<WireUserInfo, 'role'> & { role: Role | 'unknown' };

/** A snapshot of the replica's sync state. */
export interface SyncStatus {
  /** Connected and authenticated. */
  online: boolean;
  /** An initial load or catch-up is running. */
  syncing: boolean;
  /** Local writes the server has not confirmed, or whose change has not reached the replica yet. */
  pendingWrites: number;
  /** When the replica last received data (ms since the Unix epoch), if ever. */
  lastSyncedMs: number | null;
  /** Rows received so far by subscriptions still in their first sync. */
  firstSyncRows: number;
  /** The last connection or authentication problem; cleared once online again. */
  lastError: string | null;
}

/** Where a local write stands. */
export type MutationState =
  | { status: 'pending' }
  | { status: 'applied'; cursor: number | null }
  | { status: 'rejected'; code: KalamErrorCode; reason: string };

/** A write's final outcome: applied or rejected. */
export type SettledState = Exclude<MutationState, { status: 'pending' }>;

/** One write operation of {@link KalamClient.mutate}. */
export type MutationOp =
  | { table: string; op: 'insert'; row: Row }
  | { table: string; op: 'update'; pk: PrimaryKey; row: Row }
  | { table: string; op: 'delete'; pk: PrimaryKey };

/** The `'mutation'` event: a write settled. */
export interface MutationEvent {
  clientId: string;
  seq: number;
  state: MutationState;
}

/**
 * The `'error'` event: the server refused or ended a subscription, refused the connection
 * (`UNAUTHORIZED`, `RATE_LIMITED`, ...), or the client could not connect at all: signing in
 * or opening the socket failed (`NETWORK_ERROR`: the server could not be reached; `SIGN_IN_FAILED`:
 * the token function failed otherwise; or the sign-in's own error code). A failure to connect is
 * reported once while it repeats; the client keeps retrying with backoff.
 */
export interface ErrorEvent {
  /** The subscription concerned, for subscription errors. */
  subscriptionId?: string;
  code: KalamErrorCode;
  message: string;
}

/** Events of {@link KalamClient.on}. */
export interface ClientEvents {
  status: SyncStatus;
  mutation: MutationEvent;
  error: ErrorEvent;
}

/** A CRDT_TEXT cell: its text and its whole Yjs document (a v1 update). */
export interface CrdtCell {
  /** The document's text. */
  text: string;
  /** `Y.encodeStateAsUpdate(doc)` of the document, or `null` if no document exists yet. */
  state: Uint8Array | null;
}

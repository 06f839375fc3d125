// One live query over `/v1/ws` (docs/protocol.md): auth, subscribe, the initial batches, then
// each change. On `schema_changed` it subscribes again from its cursor, as the shell does; after a
// dropped connection it connects and subscribes again from its cursor.
import { accessToken, onSession } from './api';
import type { ChangeOp, ClientFrame, ColumnInfo, ErrorCode, ServerFrame, Value } from './wire';

export interface LiveChange {
  /** Arrival order on this page (a key for lists). */
  seq: number;
  op: ChangeOp;
  row: Value[];
  old?: Value[];
  cursor: number;
  at: Date;
}

export interface LiveHandlers {
  /** Subscribed (again): the schema and the live id. */
  subscribed(liveId: string, schema: ColumnInfo[], primaryKey: string): void;
  /** Rows of the initial load; `reset` replaces what was shown. */
  batch(rows: Value[][], deleted: Value[], reset: boolean, last: boolean): void;
  change(c: LiveChange): void;
  /** The connection dropped; another attempt starts in `delayMs`. */
  reconnecting(attempt: number, delayMs: number): void;
  /** The subscription ended for good (KILLED, UNAUTHORIZED, stopped, signed out...). */
  ended(code: ErrorCode | 'CLOSED', message: string): void;
}

const SUBSCRIPTION = 'console';
const PING_MS = 20_000;
/** Waits between reconnection attempts: doubling from the first, up to the last. */
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 8_000;

/**
 * Starts a live query; returns a function that stops it. A dropped connection is opened
 * again (with growing waits) and the query subscribed again from its cursor, so the rows
 * catch up with what changed meanwhile; an error from the server ends it.
 */
export function watch(sqlText: string, on: LiveHandlers): () => void {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  let ws: WebSocket | undefined;
  let cursor: number | undefined;
  let done = false;
  let seq = 0;
  let attempt = 0;
  let ping: ReturnType<typeof setInterval> | undefined;
  let retry: ReturnType<typeof setTimeout> | undefined;
  const send = (f: ClientFrame) => ws?.readyState === WebSocket.OPEN && ws.send(JSON.stringify(f));
  const subscribe = () => send({ type: 'subscribe', id: SUBSCRIPTION, sql: sqlText, since: cursor });
  const close = () => {
    clearInterval(ping);
    if (ws && (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING)) ws.close(1000);
  };
  const finish = (code: ErrorCode | 'CLOSED', message: string) => {
    if (done) return;
    done = true;
    clearTimeout(retry);
    offSession();
    close();
    on.ended(code, message);
  };
  // A renewed access token renews the socket's sign-in, so it outlives the first token.
  const offSession = onSession((s) => {
    if (s) send({ type: 'auth', token: s.token });
    else finish('CLOSED', 'signed out');
  });
  const dropped = (socket: WebSocket) => {
    // Both `error` and `close` arrive for one drop: the first one counts.
    if (done || socket !== ws) return;
    close();
    ws = undefined;
    attempt += 1;
    const delay = Math.min(RETRY_FIRST_MS * 2 ** (attempt - 1), RETRY_MAX_MS);
    on.reconnecting(attempt, delay);
    retry = setTimeout(connect, delay);
  };

  function connect() {
    if (done) return;
    const socket = new WebSocket(`${scheme}//${location.host}/v1/ws`);
    ws = socket;
    let started = false;
    socket.onopen = () => {
      try {
        send({ type: 'auth', token: accessToken() });
      } catch (e) {
        finish('UNAUTHORIZED', (e as Error).message);
        return;
      }
      ping = setInterval(() => send({ type: 'ping' }), PING_MS);
    };
    socket.onmessage = (ev) => {
      let f: ServerFrame;
      try {
        f = JSON.parse(String(ev.data)) as ServerFrame;
      } catch {
        return;
      }
      switch (f.type) {
        case 'auth_ok':
          // The first auth_ok starts the subscription; renewals answer auth_ok too.
          if (!started) {
            started = true;
            subscribe();
          }
          break;
        case 'subscribed':
          attempt = 0;
          on.subscribed(f.live_id, f.schema, f.primary_key);
          break;
        case 'batch':
          cursor = f.cursor;
          on.batch(f.rows, f.deleted ?? [], f.reset === true, f.last);
          break;
        case 'change':
          cursor = f.cursor;
          on.change({ seq: ++seq, op: f.op, row: f.row, old: f.old, cursor: f.cursor, at: new Date() });
          break;
        case 'schema_changed':
          subscribe();
          break;
        case 'error':
          finish(f.code, f.message);
          break;
        default:
          break;
      }
    };
    socket.onerror = () => dropped(socket);
    socket.onclose = () => dropped(socket);
  }
  connect();

  return () => {
    if (done) return;
    send({ type: 'unsubscribe', id: SUBSCRIPTION });
    finish('CLOSED', 'stopped');
  };
}

// One live query over `/v1/ws` (docs/protocol.md): auth, subscribe, the initial batches, then
// each change. On `schema_changed` it subscribes again from its cursor, as the shell does.
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
  /** The subscription or the connection ended (KILLED, UNAUTHORIZED, a closed socket...). */
  ended(code: ErrorCode | 'CLOSED', message: string): void;
}

const SUBSCRIPTION = 'console';
const PING_MS = 20_000;

/** Starts a live query; returns a function that stops it. */
export function watch(sqlText: string, on: LiveHandlers): () => void {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${scheme}//${location.host}/v1/ws`);
  let cursor: number | undefined;
  let done = false;
  let started = false;
  let seq = 0;
  let ping: ReturnType<typeof setInterval> | undefined;
  const send = (f: ClientFrame) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify(f));
  const subscribe = () => send({ type: 'subscribe', id: SUBSCRIPTION, sql: sqlText, since: cursor });
  const finish = (code: ErrorCode | 'CLOSED', message: string) => {
    if (done) return;
    done = true;
    clearInterval(ping);
    offSession();
    on.ended(code, message);
    if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(1000);
  };
  // A renewed access token renews the socket's sign-in, so it outlives the first token.
  const offSession = onSession((s) => {
    if (s) send({ type: 'auth', token: s.token });
    else finish('CLOSED', 'signed out');
  });

  ws.onopen = () => {
    try {
      send({ type: 'auth', token: accessToken() });
    } catch (e) {
      finish('UNAUTHORIZED', (e as Error).message);
      return;
    }
    ping = setInterval(() => send({ type: 'ping' }), PING_MS);
  };
  ws.onmessage = (ev) => {
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
  ws.onerror = () => finish('CLOSED', 'the connection failed');
  ws.onclose = (ev) => finish('CLOSED', ev.reason ? `connection closed: ${ev.reason}` : 'connection closed');

  return () => {
    if (done) return;
    send({ type: 'unsubscribe', id: SUBSCRIPTION });
    finish('CLOSED', 'stopped');
  };
}

// A small KalamDB sync server inside the test page, behind a replacement for the global
// WebSocket, so browser tests can drive the client without a server process. It speaks the
// frames of docs/protocol.md that the client uses (auth, subscribe/batch/change, mutate with
// exactly-once per (client_id, seq), ping) and records what clients send.

const delay = (f) => setTimeout(f, 0);

export class FakeServer {
  constructor() {
    this.tables = new Map(); // name -> {primaryKey, columns, rows: Map<pk, row>}
    this.cursor = 1_000;
    this.sockets = new Set();
    this.connections = 0;
    // Every mutate frame received: {conn, client_id, seq}.
    this.mutates = [];
    // Every subscribe frame received: {conn, id, table, since}.
    this.subscribes = [];
    // Highest cursor sent per table.
    this.sentCursor = new Map();
    this.outcomes = new Map(); // "client_id/seq" -> cursor
    const server = this;
    this.original = globalThis.WebSocket;
    globalThis.WebSocket = class {
      constructor(url) {
        this.url = url;
        this.conn = ++server.connections;
        this.subs = new Map(); // subscription id -> table
        this.open = true;
        server.sockets.add(this);
        delay(() => this.onopen && this.onopen({}));
      }
      send(text) {
        if (!this.open) throw new Error('socket closed');
        const msg = JSON.parse(text);
        delay(() => server.handle(this, msg));
      }
      close() {
        if (!this.open) return;
        this.open = false;
        server.sockets.delete(this);
        delay(() => this.onclose && this.onclose({ code: 1000, reason: '' }));
      }
    };
  }

  uninstall() {
    globalThis.WebSocket = this.original;
  }

  createTable(name, primaryKey, columns) {
    this.tables.set(name, { primaryKey, columns, rows: new Map() });
  }

  insert(table, row) {
    this.apply(table, { op: 'insert', row });
  }

  frame(socket, msg) {
    if (!socket.open) return;
    if (msg.cursor !== undefined && socket.subs.has(msg.id)) {
      const t = socket.subs.get(msg.id);
      this.sentCursor.set(t, Math.max(this.sentCursor.get(t) ?? 0, msg.cursor));
    }
    const text = JSON.stringify(msg);
    delay(() => socket.open && socket.onmessage && socket.onmessage({ data: text }));
  }

  values(t, row) {
    return t.columns.map(([name]) => row[name] ?? null);
  }

  // Applies one write and sends the change to every subscription of the table.
  apply(table, op) {
    const t = this.tables.get(table);
    if (!t) throw new Error(`no table ${table}`);
    const cursor = ++this.cursor;
    let row;
    if (op.op === 'insert') {
      row = { ...op.row, _updated: cursor };
      t.rows.set(JSON.stringify(row[t.primaryKey]), row);
    } else {
      const key = JSON.stringify(op.pk);
      const old = t.rows.get(key);
      if (!old) throw new Error(`no row ${key}`);
      row = op.op === 'update' ? { ...old, ...op.row, _updated: cursor } : { ...old, _updated: cursor };
      if (op.op === 'update') t.rows.set(key, row);
      else t.rows.delete(key);
    }
    for (const socket of this.sockets) {
      for (const [id, subTable] of socket.subs) {
        if (subTable === table) {
          this.frame(socket, { type: 'change', id, op: op.op, row: this.values(t, row), cursor });
        }
      }
    }
    return cursor;
  }

  handle(socket, msg) {
    switch (msg.type) {
      case 'auth':
        this.frame(socket, {
          type: 'auth_ok',
          user: { id: 'u1', username: 'alice', role: 'user' },
          expires_at: '2099-01-01T00:00:00Z',
        });
        break;
      case 'subscribe': {
        const table = /FROM\s+([\w.]+)/i.exec(msg.sql)[1];
        const t = this.tables.get(table);
        this.subscribes.push({ conn: socket.conn, id: msg.id, table, since: msg.since ?? null });
        if (!t) {
          this.frame(socket, { type: 'error', id: msg.id, code: 'NOT_FOUND', message: `no table ${table}` });
          break;
        }
        socket.subs.set(msg.id, table);
        const since = msg.since ?? 0;
        const rows = [...t.rows.values()].filter((r) => r._updated > since);
        this.frame(socket, {
          type: 'subscribed',
          id: msg.id,
          live_id: `live-${socket.conn}-${msg.id}`,
          schema: t.columns.map(([name, type]) => ({ name, type })),
          primary_key: t.primaryKey,
        });
        this.frame(socket, {
          type: 'batch',
          id: msg.id,
          rows: rows.map((r) => this.values(t, r)),
          cursor: Math.max(since, this.cursor),
          last: true,
        });
        break;
      }
      case 'unsubscribe':
        socket.subs.delete(msg.id);
        this.frame(socket, { type: 'unsubscribed', id: msg.id });
        break;
      case 'mutate': {
        this.mutates.push({ conn: socket.conn, client_id: msg.client_id, seq: msg.seq });
        const key = `${msg.client_id}/${msg.seq}`;
        if (this.outcomes.has(key)) {
          const cursor = this.outcomes.get(key);
          this.frame(socket, { type: 'mutate_result', client_id: msg.client_id, seq: msg.seq, status: 'duplicate', cursor });
          break;
        }
        let cursor = null;
        for (const op of msg.ops) cursor = this.apply(op.table, op);
        this.outcomes.set(key, cursor);
        this.frame(socket, { type: 'mutate_result', client_id: msg.client_id, seq: msg.seq, status: 'applied', cursor });
        break;
      }
      case 'ping':
        this.frame(socket, { type: 'pong' });
        break;
    }
  }

  // JSON text of the records, for assertions on the Rust side.
  report() {
    return JSON.stringify({
      connections: this.connections,
      open: this.sockets.size,
      mutates: this.mutates,
      subscribes: this.subscribes,
      sentCursor: Object.fromEntries(this.sentCursor),
    });
  }
}

// The SQL editor's completion as the console loads it: the crate kalamdb-complete as
// WebAssembly (admin/wasm, built by scripts/build-admin.sh, which scripts/test-admin.sh runs
// first), under Node, no server or browser. The rules are the crate's and its Rust tests own
// them; this runs the shared cases (complete/tests/completion-cases.json) through the module
// again, to check what only the binding does: the catalog handed over as flat lists, offsets
// in UTF-16 code units, the limit, "nothing" as null.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';

const wasmDir = new URL('../wasm/', import.meta.url);
if (!existsSync(new URL('kalamdb_complete_bg.wasm', wasmDir))) {
  throw new Error('admin/wasm is missing: run scripts/build-admin.sh');
}
const wasm = await import(new URL('kalamdb_complete.js', wasmDir).href);
wasm.initSync({ module: readFileSync(new URL('kalamdb_complete_bg.wasm', wasmDir)) });

const shared = JSON.parse(readFileSync(new URL('../../complete/tests/completion-cases.json', import.meta.url), 'utf8'));
/** The shared cases' catalog as complete.ts hands one over (types only show as details). */
const tables = shared.catalog.tables;
const catalog = new wasm.CompletionCatalog(
  shared.catalog.namespaces,
  tables.flatMap((t) => [t.namespace, t.name, 'user']),
  Uint32Array.from(tables, (t) => t.columns.length),
  tables.flatMap((t) => t.columns.flatMap((name) => [name, 'Utf8'])),
);
/** What the console's complete.ts does with the module's answer. */
const complete = (text, caret, session, explicit, limit) => {
  const found = catalog.complete(text, caret, session, explicit, limit);
  return found === undefined ? null : JSON.parse(found);
};
const sorted = (names) => [...new Set(names)].sort();

test('the shared cases, through the module', () => {
  const failed = [];
  for (const c of shared.cases) {
    const caret = c.sql.indexOf('|');
    const text = c.sql.slice(0, caret) + c.sql.slice(caret + 1);
    const items = complete(text, caret, c.namespace, true)?.items ?? [];
    const all = sorted(items.map((i) => i.text));
    const columns = sorted(items.filter((i) => i.kind === 'column').map((i) => i.text));
    const wrong =
      (c.columns && JSON.stringify(columns) !== JSON.stringify(sorted(c.columns))) ||
      (c.exactly && JSON.stringify(all) !== JSON.stringify(sorted(c.exactly))) ||
      (c.offered ?? []).some((o) => !all.includes(o)) ||
      (c.not_offered ?? []).some((o) => all.includes(o));
    if (wrong) failed.push(`${c.name}: ${c.sql} -> ${all.join(' ')}`);
  }
  assert.deepEqual(failed, []);
  assert.ok(shared.cases.length > 150);
});

test('offsets are UTF-16 code units, as the editor counts them', () => {
  // `é` is one unit (two bytes), `𝒳` two units (four bytes).
  const text = "SELECT '𝒳é', ti FROM app.todos";
  const caret = text.indexOf('ti') + 2;
  const found = complete(text, caret, 'app', false);
  assert.deepEqual([found.from, found.to], [text.indexOf('ti'), caret]);
  assert.equal(found.items[0].text, 'title');
  assert.deepEqual(found.items[0], { text: 'title', kind: 'column', detail: 'app.todos Utf8' });
});

test('the limit, and null where nothing completes', () => {
  assert.equal(complete('SELECT ', 7, 'app', true, 50).items.length, 50);
  assert.ok(complete('SELECT ', 7, 'app', true).items.length > 50);
  assert.equal(complete("SELECT 'ti", 10, 'app', true), null);
  assert.equal(complete('SELECT ', 7, 'app', false), null);
  assert.throws(() => new wasm.CompletionCatalog([], ['app', 'todos'], Uint32Array.of(0), []), /catalog/);
});

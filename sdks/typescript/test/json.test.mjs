// The exact-integer JSON used by sql(): unit tests (no server).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseJsonWithBigInts, stringifyJsonWithBigInts } from '../dist/json.js';

test('integers beyond 2^53 parse as exact bigints, everything else as JSON.parse does', () => {
  const text =
    '{"rows":[[9007199254740993,-9223372036854775808,9007199254740991,1e20,1.5,12345678901234567.0,' +
    '"9007199254740993","a \\"quoted\\" 12345678901234567890 text \\\\",null,true]],"n":2}';
  assert.deepEqual(parseJsonWithBigInts(text), {
    rows: [
      [
        9007199254740993n,
        -9223372036854775808n,
        9007199254740991,
        1e20,
        1.5,
        12345678901234567.0,
        '9007199254740993',
        'a "quoted" 12345678901234567890 text \\',
        null,
        true,
      ],
    ],
    n: 2,
  });
  const plain = '{"a":[1,2.5,"x"],"b":{"c":null}}';
  assert.deepEqual(parseJsonWithBigInts(plain), JSON.parse(plain));
  assert.throws(() => parseJsonWithBigInts('{"a": 12345678901234567890'), SyntaxError);
});

test('bigints stringify as bare integers, round-tripping through the parser', () => {
  const value = { sql: 'SELECT $1', params: [9007199254740993n, -5n, 'x"y', 1.5, null, [2n ** 70n]] };
  const text = stringifyJsonWithBigInts(value);
  assert.equal(text, '{"sql":"SELECT $1","params":[9007199254740993,-5,"x\\"y",1.5,null,[1180591620717411303424]]}');
  assert.deepEqual(parseJsonWithBigInts(text), { ...value, params: [9007199254740993n, -5, 'x"y', 1.5, null, [2n ** 70n]] });
  assert.equal(stringifyJsonWithBigInts({ a: 1 }), '{"a":1}');
});

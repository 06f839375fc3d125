/**
 * JSON with exact big integers. KalamDB sends BIGINT values as JSON numbers, and `JSON.parse`
 * rounds any integer beyond ±(2^53 − 1) (a snowflake id, say) to the nearest double. These two
 * functions keep such integers exact as `bigint`s, both ways, without `JSON.rawJSON` or the
 * reviver's source text (neither is in Node 20).
 *
 * How: a scan of the text (skipping strings) finds integer literals that are not safe
 * integers and wraps each in a string carrying a marker with a random nonce; `JSON.parse`'s
 * reviver turns those strings back into `bigint`s. Text with no run of 16 digits, nearly every
 * response, is parsed by `JSON.parse` alone.
 *
 * @module
 */

const SIXTEEN_DIGITS = /\d{16}/;

function marker(): string {
  return `\u0000kalamdb-bigint-${Math.random().toString(36).slice(2)}:`;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** Whether `c` may continue a JSON number (fraction, exponent). */
function continuesNumber(c: number): boolean {
  return isDigit(c) || c === 46 /* . */ || c === 101 /* e */ || c === 69 /* E */ || c === 43 /* + */ || c === 45 /* - */;
}

/** `JSON.parse`, with integers beyond ±(2^53 − 1) as exact `bigint`s. */
export function parseJsonWithBigInts(text: string): unknown {
  if (!SIXTEEN_DIGITS.test(text)) return JSON.parse(text);
  const mark = marker();
  const escaped = JSON.stringify(mark).slice(1, -1); // its NUL as `\u0000`, as JSON text needs
  let out = '';
  let copied = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34 /* " */) {
      for (i++; i < text.length && text.charCodeAt(i) !== 34; i++) {
        if (text.charCodeAt(i) === 92 /* \ */) i++;
      }
      continue;
    }
    if (c !== 45 && !isDigit(c)) continue;
    const start = i;
    let end = c === 45 ? i + 1 : i;
    while (end < text.length && isDigit(text.charCodeAt(end))) end++;
    let after = end;
    while (after < text.length && continuesNumber(text.charCodeAt(after))) after++;
    const literal = text.slice(start, end);
    // An integer (nothing after its digits) that a double cannot hold exactly.
    if (after === end && end - start >= 16 && !Number.isSafeInteger(Number(literal))) {
      out += `${text.slice(copied, start)}"${escaped}${literal}"`;
      copied = end;
    }
    i = after - 1;
  }
  if (copied === 0) return JSON.parse(text);
  out += text.slice(copied);
  return JSON.parse(out, (_key, v: unknown) =>
    typeof v === 'string' && v.startsWith(mark) ? BigInt(v.slice(mark.length)) : v,
  );
}

/** `JSON.stringify`, writing `bigint`s as exact JSON integers (where it would throw). */
export function stringifyJsonWithBigInts(value: unknown): string {
  let mark: string | null = null;
  const text = JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v !== 'bigint') return v;
    mark ??= marker();
    return `${mark}${v}`;
  });
  if (mark === null) return text;
  const quoted = `"${JSON.stringify(mark).slice(1, -1)}`;
  // Each marked string becomes the bare integer: `"<mark>-123"` → `-123`.
  return text.split(quoted).map((part, i) => (i === 0 ? part : part.replace(/^(-?\d+)"/, '$1'))).join('');
}

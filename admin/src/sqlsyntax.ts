// SQL as the editor colours it: tokens, and the words of KalamDB's SQL (docs/sql.md) and the
// common DataFusion query words. Colouring runs on the console's first paint, so it stays
// here in TypeScript; completion (complete.ts) is the crate kalamdb-complete, loaded on use,
// whose keyword list (complete/src/words.rs) this one follows.

/** What a piece of SQL text is, as the editor colours it. */
export type TokenKind =
  | 'keyword'
  | 'function'
  | 'identifier'
  | 'string'
  | 'number'
  | 'comment'
  | 'parameter'
  | 'operator'
  | 'space';

/** A token: its kind and where it is in the text (`end` exclusive). */
export interface Token {
  kind: TokenKind;
  text: string;
  start: number;
  end: number;
}

/** Reserved and statement words, upper case. */
const KEYWORDS: readonly string[] = [
  'ACCESS', 'ACCESS_KEY_ID', 'ADD', 'ALL', 'ALLOW_HTTP', 'ALTER', 'AND', 'ANY', 'AS', 'ASC', 'BACKUP',
  'BETWEEN', 'BIGINT', 'BOOLEAN', 'BUCKET', 'BY', 'BYTES', 'CASCADE', 'CASE', 'CAST', 'CLUSTER', 'COLUMN',
  'CRDT_TEXT', 'CREATE', 'CROSS', 'CURRENT_TIMESTAMP', 'DATABASE', 'DATE', 'DECIMAL', 'DEFAULT', 'DELETE',
  'DESC', 'DESCRIBE', 'DISTINCT', 'DOUBLE', 'DROP', 'ELSE', 'EMAIL', 'END', 'ENDPOINT', 'EXCEPT', 'EXECUTE',
  'EXISTS', 'EXPLAIN', 'FALSE', 'FIRST', 'FLOAT', 'FLUSH', 'FOR', 'FROM', 'FULL', 'GROUP', 'HAVING',
  'HISTORY', 'IF', 'ILIKE', 'IN', 'INNER', 'INSERT', 'INT', 'INTEGER', 'INTERSECT', 'INTERVAL', 'INTO', 'IS',
  'JOB', 'JOIN', 'JSON', 'KEY', 'KILL', 'LAST', 'LATERAL', 'LEFT', 'LEVEL', 'LIKE', 'LIMIT', 'LIVE', 'MODIFY',
  'NAMESPACE', 'NAMESPACES', 'NATURAL', 'NODE', 'NOT', 'NULL', 'NULLS', 'OFFSET', 'ON', 'OPTIONS', 'OR', 'ORDER',
  'OUTER', 'OVER', 'PARTITION', 'PASSWORD', 'PATH', 'POLICY', 'PREFIX', 'PRIMARY', 'QUERY', 'RECURSIVE', 'REGION',
  'REMOVE', 'RENAME', 'RESTORE', 'RIGHT', 'ROLE', 'ROWS', 'SECRET_ACCESS_KEY', 'SELECT', 'SET', 'SHARED',
  'SHOW', 'SMALLINT', 'STATS', 'STORAGE', 'STORAGES', 'STREAM', 'STRING', 'TABLE', 'TABLES', 'TEXT', 'THEN',
  'TIMESTAMP', 'TO', 'TRUE', 'TYPE', 'UNION', 'UPDATE', 'USE', 'USER', 'USING', 'VALUES', 'VARCHAR', 'WHEN',
  'WHERE', 'WITH',
];

const KEYWORD_SET = new Set(KEYWORDS);

/** Whether `word` (any case) is one of the keywords. */
function isKeyword(word: string): boolean {
  return KEYWORD_SET.has(word.toUpperCase());
}

/**
 * The lexical rules, tried in order at each position (sticky). Unterminated strings, quoted
 * names and block comments run to the end of the text, as the server would read them.
 * `word` is split into keyword, function and identifier afterwards.
 */
const RULES: [TokenKind | 'word', RegExp][] = [
  ['space', /\s+/y],
  ['comment', /--[^\n]*|\/\*[\s\S]*?(?:\*\/|$)/y],
  // 'text', with '' for a quote; E'...' and X'0A0B' (bytes) too.
  ['string', /[EeXx]?'(?:[^']|'')*(?:'|$)/y],
  // "Quoted name", with "" for a quote.
  ['identifier', /"(?:[^"]|"")*(?:"|$)/y],
  ['number', /(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/y],
  ['parameter', /\$\d+/y],
  // A name in any script, as the server reads names (and the shell's lexer).
  ['word', /[\p{Alphabetic}_][\p{Alphabetic}\p{N}_]*/uy],
  ['operator', /<>|<=|>=|!=|\|\||::|->>|->|[\s\S]/y],
];

/** Splits `text` into tokens that cover it exactly, in order. */
export function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let at = 0;
  while (at < text.length) {
    for (const [kind, re] of RULES) {
      re.lastIndex = at;
      const m = re.exec(text);
      if (!m || m[0].length === 0) continue;
      const end = at + m[0].length;
      tokens.push({ kind: kind === 'word' ? 'identifier' : kind, text: m[0], start: at, end });
      if (kind === 'word') classifyWord(tokens[tokens.length - 1], text, end);
      at = end;
      break;
    }
  }
  return tokens;
}

/** A bare word is a keyword, a function (a name before `(`) or an identifier. */
function classifyWord(token: Token, text: string, end: number): void {
  if (isKeyword(token.text)) token.kind = 'keyword';
  else if (/^\s*\(/.test(text.slice(end, end + 64))) token.kind = 'function';
}

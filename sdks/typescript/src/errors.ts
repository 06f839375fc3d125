import type { ErrorCode } from './generated/ErrorCode.js';

export type { ErrorCode };

/** Codes the client reports itself, when no server verdict is involved. */
export type ClientErrorCode = 'NETWORK_ERROR' | 'SIGN_IN_FAILED' | 'BAD_RESPONSE' | 'CLIENT_ERROR';

/**
 * Every code a {@link KalamError} carries: the server's ({@link ErrorCode}, generated from the
 * Rust definition by ts-rs) or the client's own.
 */
export type KalamErrorCode = ErrorCode | ClientErrorCode;

/**
 * `code` from a server answer as a {@link KalamErrorCode}; an answer without one is not a
 * KalamDB answer (`BAD_RESPONSE`).
 */
export function errorCode(code: unknown): KalamErrorCode {
  return typeof code === 'string' && code !== '' ? (code as KalamErrorCode) : 'BAD_RESPONSE';
}

/**
 * An error from KalamDB or from the client.
 *
 * `code` is the server's error code (`TABLE_NOT_FOUND`, `UNAUTHORIZED`, `VALIDATION_ERROR`,
 * ..., see docs/http-api.md) or one of the client's own: `NETWORK_ERROR` (the server could not
 * be reached), `SIGN_IN_FAILED` (the token function failed for another reason), `BAD_RESPONSE`
 * (not a KalamDB answer), `CLIENT_ERROR` (the local engine refused a call: bad local SQL, invalid
 * write, closed client).
 */
export class KalamError extends Error {
  /** Machine-readable error code. */
  readonly code: KalamErrorCode;
  /** HTTP status, for errors of HTTP requests. */
  readonly status?: number;
  /** 1-based index of the failing statement of a multi-statement `sql()` request. */
  readonly statement?: number;

  /** Creates an error; `details` carries the HTTP status and failing statement, if any. */
  constructor(code: KalamErrorCode, message: string, details: { status?: number; statement?: number; cause?: unknown } = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'KalamError';
    this.code = code;
    if (details.status !== undefined) this.status = details.status;
    if (details.statement !== undefined) this.statement = details.statement;
  }

  /** Wraps anything thrown by the WebAssembly engine as a `KalamError`. */
  static from(e: unknown, code: KalamErrorCode = 'CLIENT_ERROR'): KalamError {
    if (e instanceof KalamError) return e;
    const message = e instanceof Error ? e.message : String(e);
    // The engine renders server verdicts as "server: CODE: message" and failures to connect
    // as "connection: CODE: message".
    const m = /^(?:server|connection): ([A-Z_]+): ([\s\S]*)$/.exec(message);
    if (m) return new KalamError(errorCode(m[1]), m[2]!, { cause: e });
    return new KalamError(code, message, { cause: e });
  }
}

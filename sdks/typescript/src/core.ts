/**
 * Everything `@kalamdb/client` exports, minus `createClient` (which the environment's entry
 * point binds to its WebAssembly loader).
 * @internal
 */
export { KalamClient, INITIAL_STATUS, crdtUpdate, toObjects, wsUrlOf } from './client.js';
export type { WriteReceipt, TableHandle, LiveCallback, Unsubscribe, Environment } from './client.js';
export { KalamError } from './errors.js';
export type { ErrorCode, ClientErrorCode, KalamErrorCode } from './errors.js';
export { base64ToBytes, bytesToBase64, decodeToken } from './auth.js';
export type { TokenClaims } from './auth.js';
export type * from './types.js';

/**
 * The JavaScript face of the WebAssembly engine (`KalamClient` in wasm/src/lib.rs), as the SDK
 * uses it. Kept here rather than imported from the generated `.d.ts` so the SDK tolerates
 * engines with and without optional methods (`crdtCell`).
 * The values it hands over are typed with the types generated from their Rust definitions
 * (`generated/`, ts-rs; checked by client-core's tests).
 * @internal
 */

import type { MutationState as WireMutationState } from './generated/MutationState.js';
import type { SyncEvent } from './generated/SyncEvent.js';
import type { SyncStatus as WireSyncStatus } from './generated/SyncStatus.js';

/** A stoppable live query or event listener. @internal */
export interface WasmSubscription {
  stop(): void;
  free?(): void;
}

/** `{columns, types, rows}` from the engine (`types`: KalamDB type names). @internal */
export interface WasmResultSet {
  columns: string[];
  types?: string[];
  rows: unknown[][];
}

/** A write receipt from the engine. @internal */
export interface WasmReceipt {
  clientId: string;
  seq: number;
  insertedKeys: unknown[];
}

/** An open engine. @internal */
export interface WasmClient {
  sync(id: string, sql: string): Promise<void>;
  unsync(id: string): Promise<void>;
  query(sql: string, params: unknown): Promise<WasmResultSet>;
  live(sql: string, params: unknown, callback: (rs: WasmResultSet) => void): Promise<WasmSubscription>;
  mutate(ops: unknown): Promise<WasmReceipt>;
  /** A write's state, or `undefined` if the engine does not know it. */
  mutationState(clientId: string, seq: bigint | number): Promise<WireMutationState | undefined | null>;
  status(): Promise<WireSyncStatus>;
  onEvent(callback: (event: SyncEvent) => void): WasmSubscription;
  setOnline(online: boolean): void;
  settled(): Promise<void>;
  close(): Promise<void>;
  /** `{text, state}` of a CRDT_TEXT cell in the replica, pending edits merged (newer engines). */
  crdtCell?(table: string, pk: unknown, column: string): Promise<unknown>;
  free?(): void;
}

/** The engine module: the `KalamClient` class. @internal */
export interface WasmModule {
  KalamClient: {
    open(options: unknown, token: () => Promise<string>): Promise<WasmClient>;
    /**
     * True once the engine coordinates several tabs on one IndexedDB replica itself (leader
     * election + BroadcastChannel). Until then the SDK lets one tab at a time use it.
     */
    supportsMultiTab?(): boolean;
  };
}

/** Loads (and initialises) the engine module for the current environment. @internal */
export type WasmLoader = () => Promise<WasmModule>;

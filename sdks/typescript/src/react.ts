/**
 * React bindings for `@kalamdb/client`: a provider for the client, live local queries and the
 * sync status as hooks.
 *
 * ```tsx
 * <KalamProvider client={client}><App /></KalamProvider>
 * const { rows, loading, error } = useLiveQuery<Todo>('SELECT * FROM app.todos WHERE done = $1', [false]);
 * const status = useSyncStatus();
 * ```
 */
import { createContext, createElement, useContext, useEffect, useState, useSyncExternalStore } from 'react';
import type { ReactNode } from 'react';
import { INITIAL_STATUS, paramsKey } from './client.js';
import type { KalamClient } from './client.js';
import type { KalamError } from './errors.js';
import type { Row, SyncStatus } from './types.js';

const KalamContext = createContext<KalamClient | null>(null);

/** Props of {@link KalamProvider}. */
export interface KalamProviderProps {
  /** The client the hooks below use. */
  client: KalamClient;
  /** The components that use the client. */
  children?: ReactNode;
}

/** Makes `client` available to {@link useKalam}, {@link useLiveQuery} and {@link useSyncStatus}. */
export function KalamProvider(props: KalamProviderProps): ReturnType<typeof createElement> {
  return createElement(KalamContext.Provider, { value: props.client }, props.children);
}

/** The client of the nearest {@link KalamProvider}; throws outside one. */
export function useKalam(): KalamClient {
  const client = useContext(KalamContext);
  if (!client) throw new Error('useKalam(): no <KalamProvider client={...}> above this component');
  return client;
}

/** What {@link useLiveQuery} returns. */
export interface LiveQueryState<R> {
  /** The current rows (empty while loading or after an error). */
  rows: R[];
  /** True until the first result arrives. */
  loading: boolean;
  /** Why the query failed (bad SQL, unknown table), else `null`. */
  error: KalamError | null;
}

/**
 * A live query on the local replica: re-renders with the new rows after every local write or
 * synced change that changes the result. Re-subscribes when `sql` or `params` change (params
 * are compared by value). Pass `null` as `sql` to run nothing.
 */
export function useLiveQuery<R = Row>(
  sql: string | null,
  params?: unknown[],
  options: { client?: KalamClient } = {},
): LiveQueryState<R> {
  const ctx = useContext(KalamContext);
  const client = options.client ?? ctx;
  if (!client) throw new Error('useLiveQuery(): no <KalamProvider> above this component and no options.client');
  const key = paramsKey(params);
  const [state, setState] = useState<LiveQueryState<R>>({ rows: [], loading: sql !== null, error: null });
  useEffect(() => {
    if (sql === null) {
      setState({ rows: [], loading: false, error: null });
      return undefined;
    }
    setState((s) => (s.loading && !s.error ? s : { rows: s.rows, loading: true, error: null }));
    // Runs again only when `key` changes, so `params` is the value it was computed from.
    const stop = client.live<R>(
      sql,
      params ?? [],
      (rows) => setState({ rows, loading: false, error: null }),
      (error) => setState({ rows: [], loading: false, error }),
    );
    return stop;
  }, [client, sql, key]);
  return state;
}

/** The client's sync status (online, syncing, pending writes, last synced), kept current. */
export function useSyncStatus(options: { client?: KalamClient } = {}): SyncStatus {
  const ctx = useContext(KalamContext);
  const client = options.client ?? ctx;
  if (!client) throw new Error('useSyncStatus(): no <KalamProvider> above this component and no options.client');
  return useSyncExternalStore(
    (onChange) => client.on('status', onChange),
    () => client.currentStatus,
    () => INITIAL_STATUS,
  );
}

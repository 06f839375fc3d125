/**
 * Vue 3 composables for `@kalamdb/client`: live local queries and the sync status as refs.
 *
 * ```ts
 * app.use(createKalamPlugin(client));            // or provideKalam(client) in a setup()
 * const { rows, loading, error } = useLiveQuery<Todo>('SELECT * FROM app.todos ORDER BY id');
 * const status = useSyncStatus();                // status.value.online, .pendingWrites, ...
 * ```
 */
import { getCurrentScope, inject, onScopeDispose, provide, ref, shallowRef, toValue, watch } from 'vue';
import type { App, InjectionKey, MaybeRefOrGetter, Ref } from 'vue';
import { paramsKey } from './client.js';
import type { KalamClient } from './client.js';
import type { KalamError } from './errors.js';
import type { Row, SyncStatus } from './types.js';

/** The injection key under which the client is provided. */
export const KALAM_KEY: InjectionKey<KalamClient> = Symbol('kalamdb-client');

/** A Vue plugin providing `client` to every component (`app.use(createKalamPlugin(client))`). */
export function createKalamPlugin(client: KalamClient): { install(app: App): void } {
  return {
    install(app: App) {
      app.provide(KALAM_KEY, client);
    },
  };
}

/** Provides `client` to the current component's descendants (call inside `setup()`). */
export function provideKalam(client: KalamClient): void {
  provide(KALAM_KEY, client);
}

/** The provided client (or `client` if given); throws if there is none. */
export function useKalam(client?: KalamClient): KalamClient {
  const c = client ?? inject(KALAM_KEY, null);
  if (!c) throw new Error('useKalam(): no client provided (app.use(createKalamPlugin(client)) or provideKalam)');
  return c;
}

/** What {@link useLiveQuery} returns. */
export interface LiveQueryRefs<R> {
  /** The current rows. */
  rows: Ref<R[]>;
  /** True until the first result arrives. */
  loading: Ref<boolean>;
  /** Why the query failed, else `null`. */
  error: Ref<KalamError | null>;
}

/**
 * A live query on the local replica as refs, updated after every local write or synced change.
 * `sql` and `params` may be refs or getters: the query re-subscribes when they change. Stops
 * when the calling component (or effect scope) is disposed.
 */
export function useLiveQuery<R = Row>(
  sql: MaybeRefOrGetter<string | null>,
  params?: MaybeRefOrGetter<unknown[] | undefined>,
  options: { client?: KalamClient } = {},
): LiveQueryRefs<R> {
  const client = useKalam(options.client);
  const rows = shallowRef<R[]>([]) as Ref<R[]>;
  const loading = ref(true);
  const error = shallowRef<KalamError | null>(null);
  let stop: (() => void) | null = null;
  watch(
    () => [toValue(sql), paramsKey(toValue(params))] as const,
    ([q]) => {
      stop?.();
      stop = null;
      if (q === null) {
        rows.value = [];
        loading.value = false;
        return;
      }
      loading.value = true;
      error.value = null;
      stop = client.live<R>(
        q,
        toValue(params) ?? [],
        (r) => {
          rows.value = r;
          loading.value = false;
        },
        (e) => {
          rows.value = [];
          error.value = e;
          loading.value = false;
        },
      );
    },
    { immediate: true },
  );
  if (getCurrentScope()) onScopeDispose(() => stop?.());
  return { rows, loading, error };
}

/** The client's sync status as a ref, kept current. */
export function useSyncStatus(options: { client?: KalamClient } = {}): Ref<SyncStatus> {
  const client = useKalam(options.client);
  const status = shallowRef<SyncStatus>(client.currentStatus);
  const off = client.on('status', (s) => {
    status.value = s;
  });
  if (getCurrentScope()) onScopeDispose(off);
  return status;
}

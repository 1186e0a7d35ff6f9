// A list the gateway hands out page by page (`fetchPage`), loaded afresh when its filters change
// and extended by "load more", where the newest fresh load wins: an older answer that arrives
// late (the filters changed meanwhile) is dropped instead of overwriting the newer one.
import { ref, type Ref } from 'vue';
import { fetchPage, toApiError, type ApiError, type PageToken, type Query } from '../api/client';

export function usePagedList<T>(path: string, key: string) {
  const items = ref<T[]>([]) as Ref<T[]>;
  const next = ref<PageToken | null>(null);
  const loaded = ref(false);
  const loading = ref(false);
  const error = ref<ApiError | null>(null);
  let generation = 0;

  /** Loads the first page (or, with `more`, the next one) for the query `query` builds. */
  async function load(query: () => Query | Promise<Query>, more = false): Promise<void> {
    const gen = more ? generation : ++generation;
    loading.value = true;
    if (!more) error.value = null;
    try {
      const page = await fetchPage<T>(path, key, await query(), more ? next.value : null);
      if (gen !== generation) return;
      items.value = more ? items.value.concat(page.items) : page.items;
      next.value = page.next;
      loaded.value = true;
    } catch (e) {
      if (gen === generation) error.value = toApiError(e);
    } finally {
      if (gen === generation) loading.value = false;
    }
  }

  return { items, next, loaded, loading, error, load };
}

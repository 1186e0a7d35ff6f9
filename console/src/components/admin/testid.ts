// `v-testid="'name'"`: sets `data-testid` on an element for the browser tests. A directive
// because the project's strict template types do not accept `data-*` attributes on elements.
import type { Directive } from 'vue';

function apply(el: HTMLElement, value: unknown): void {
  if (typeof value === 'string' && value) el.dataset.testid = value;
  else delete el.dataset.testid;
}

export const vTestid: Directive<HTMLElement, string | undefined> = {
  mounted: (el, binding) => apply(el, binding.value),
  updated: (el, binding) => apply(el, binding.value),
};

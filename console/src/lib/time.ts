import { ref } from 'vue';

/** Epoch ms, updated every 15 s: what relative times are measured against. */
export const now = ref(Date.now());
setInterval(() => {
  now.value = Date.now();
}, 15_000);

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const exact = new Intl.DateTimeFormat(undefined, {
  dateStyle: 'medium',
  timeStyle: 'long',
});

const exactCache = new Map<number, string>();
/** The exact local time, memoized (lists show the same times on every re-render). */
export function exactTime(d: Date): string {
  const ms = d.getTime();
  let s = exactCache.get(ms);
  if (s === undefined) {
    s = exact.format(d);
    if (exactCache.size > 5000) exactCache.clear();
    exactCache.set(ms, s);
  }
  return s;
}

export function relativeTime(d: Date, nowMs: number): string {
  const diff = (d.getTime() - nowMs) / 1000;
  const abs = Math.abs(diff);
  // The shared clock ticks every 15 s: a moment "in the future" by less than that is now.
  if (abs < 10 || (diff > 0 && diff < 20)) return 'just now';
  if (abs < 60) return rtf.format(Math.round(diff), 'second');
  if (abs < 3600) return rtf.format(Math.round(diff / 60), 'minute');
  if (abs < 86400) return rtf.format(Math.round(diff / 3600), 'hour');
  if (abs < 86400 * 30) return rtf.format(Math.round(diff / 86400), 'day');
  if (abs < 86400 * 365) return rtf.format(Math.round(diff / (86400 * 30)), 'month');
  return rtf.format(Math.round(diff / (86400 * 365)), 'year');
}

/** `1234` ms → `1.2 s`; `59000` → `59 s`; `125000` → `2 min 5 s`. */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = Math.floor(s / 60);
  const rest = Math.round(s - m * 60);
  return rest ? `${m} min ${rest} s` : `${m} min`;
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

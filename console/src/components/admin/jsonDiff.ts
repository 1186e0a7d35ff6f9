// A line diff of two texts (longest common subsequence), for the "what changes" view of a
// preference edit. Small inputs only (a preference value is at most 64 KiB); beyond a size it
// gives up and shows the whole old text removed and the new one added.

export interface DiffLine {
  kind: 'same' | 'removed' | 'added';
  text: string;
}

const MAX_CELLS = 2_000_000;

export function lineDiff(before: string, after: string): DiffLine[] {
  const a = before === '' ? [] : before.split('\n');
  const b = after === '' ? [] : after.split('\n');
  if (a.length * b.length > MAX_CELLS) {
    return [...a.map((text) => ({ kind: 'removed' as const, text })), ...b.map((text) => ({ kind: 'added' as const, text }))];
  }
  // lcs[i][j]: the LCS length of a[i..] and b[j..].
  const lcs: Uint32Array[] = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1));
  for (let i = a.length - 1; i >= 0; i -= 1) {
    const row = lcs[i] as Uint32Array;
    const below = lcs[i + 1] as Uint32Array;
    for (let j = b.length - 1; j >= 0; j -= 1) {
      row[j] = a[i] === b[j] ? (below[j + 1] as number) + 1 : Math.max(below[j] as number, row[j + 1] as number);
    }
  }
  const out: DiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) {
      out.push({ kind: 'same', text: a[i] as string });
      i += 1;
      j += 1;
    } else if (((lcs[i + 1] as Uint32Array)[j] as number) >= ((lcs[i] as Uint32Array)[j + 1] as number)) {
      out.push({ kind: 'removed', text: a[i] as string });
      i += 1;
    } else {
      out.push({ kind: 'added', text: b[j] as string });
      j += 1;
    }
  }
  while (i < a.length) out.push({ kind: 'removed', text: a[i++] as string });
  while (j < b.length) out.push({ kind: 'added', text: b[j++] as string });
  return out;
}

/** Pretty JSON of a value (`undefined`: no value, the empty text). */
export function pretty(v: unknown): string {
  if (v === undefined) return '';
  try {
    return JSON.stringify(v, null, 2);
  } catch {
    return String(v);
  }
}

/** JSON.parse with the error said plainly, and its line and column when the engine tells the offset. */
export function parseJson(text: string): { ok: true; value: unknown } | { ok: false; message: string } {
  if (!text.trim()) return { ok: false, message: 'Enter a JSON value: a string needs quotes ("text"), or a number, true, false, null, [ … ] or { … }.' };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const at = /position (\d+)/.exec(msg);
    let where = '';
    if (at) {
      const pos = Number(at[1]);
      const before = text.slice(0, pos);
      const line = before.split('\n').length;
      const col = pos - before.lastIndexOf('\n');
      where = ` (line ${line}, column ${col})`;
    }
    const hint = /^[^"[{\d\s-]/.test(text.trim()) && !/^(true|false|null)\b/.test(text.trim()) ? ' A string needs double quotes: "text".' : '';
    return { ok: false, message: `Not valid JSON${where}: ${msg}.${hint}` };
  }
}

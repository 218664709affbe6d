// Docker-style columns: Go's text/tabwriter as the docker CLI configures it
// (minwidth 10, tabwidth 1, padding 3, pad with spaces, no flags). Cells end with '\t'; the last
// cell of a line is not part of a column and is never padded. A column's width is computed over
// each run of consecutive lines that have that column, as tabwriter does.

const MIN_WIDTH = 10;
const PADDING = 3;

export interface TabOptions {
  /** Minimum cell width including padding (docker: 10; `top`: 20). */
  minWidth?: number;
  padding?: number;
}

function width(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Align tab-separated lines. Input and output lines carry no trailing newline. */
export function tabwrite(lines: string[], opts: TabOptions = {}): string[] {
  const minWidth = opts.minWidth ?? MIN_WIDTH;
  const padding = opts.padding ?? PADDING;
  const rows = lines.map((l) => l.split('\t'));
  const widths: number[][] = rows.map(() => []);
  const maxCols = Math.max(0, ...rows.map((r) => r.length - 1));
  for (let j = 0; j < maxCols; j++) {
    let i = 0;
    while (i < rows.length) {
      if (rows[i]!.length - 1 <= j) {
        i++;
        continue;
      }
      let end = i;
      let w = minWidth;
      while (end < rows.length && rows[end]!.length - 1 > j) {
        w = Math.max(w, width(rows[end]![j]!) + padding);
        end++;
      }
      for (let k = i; k < end; k++) widths[k]![j] = w;
      i = end;
    }
  }
  return rows.map((cells, i) =>
    cells.map((c, j) => (j < cells.length - 1 ? c + ' '.repeat(Math.max(0, widths[i]![j]! - width(c))) : c)).join(''),
  );
}

/** A table from a header and rows of cells. */
export function renderTable(header: string[] | undefined, rows: string[][], opts: TabOptions = {}): string {
  const lines = [...(header ? [header.join('\t')] : []), ...rows.map((r) => r.join('\t'))];
  const out = tabwrite(lines, opts);
  return out.length ? out.join('\n') + '\n' : '';
}

/** stringid.TruncateID: drop the algorithm and keep 12 hex characters. */
export function truncateId(id: string): string {
  const i = id.indexOf(':');
  const hex = i === -1 ? id : id.slice(i + 1);
  return hex.slice(0, 12);
}

/** formatter.Ellipsis: cut to `max` characters with a trailing '…'. */
export function ellipsis(s: string, max: number): string {
  const chars = [...s];
  if (max <= 0) return '';
  if (chars.length <= max) return s;
  if (max === 1) return chars[0]!;
  return chars.slice(0, max - 1).join('') + '…';
}

// Listing output for ps, images, history, ...: the docker CLI's formatter.Context. A row is an
// object of display fields (ID, Repository, CreatedSince, ...); `table ...` formats get a header
// row (the template run over the header names) and tabwriter columns; other formats print one
// template result per row.
import { compileTemplate, normalizeFormat, unescapeFormat, LIST_ROW } from './template.ts';
import { tabwrite } from './table.ts';

export interface ListFormat {
  /** The user's --format, or undefined for the default table. */
  format?: string;
  /** The table used without --format. */
  defaultTable: string;
  /** Header names by field ("ID" -> "IMAGE ID"); a function for method fields ({{.Label "k"}} -> "k"). */
  headers: Record<string, string | ((...args: string[]) => string)>;
}

function headerRow(headers: ListFormat['headers']): object {
  return new Proxy(
    {},
    {
      // Callable, so method-style fields ({{.Label "x"}}) get their header too.
      get: (_t, k) => {
        if (typeof k !== 'string') return undefined;
        const h = headers[k] ?? k.toUpperCase();
        if (typeof h === 'function') return h;
        return Object.assign(() => h, { toString: () => h });
      },
      ownKeys: () => Object.keys(headers).filter((k) => typeof headers[k] === 'string'),
      getOwnPropertyDescriptor: (_t, k) => (typeof k === 'string' && typeof headers[k] === 'string' ? { enumerable: true, configurable: true, value: headers[k] } : undefined),
    },
  );
}

export function formatList(rows: object[], spec: ListFormat): string {
  const fmt = spec.format === undefined || spec.format === '' ? spec.defaultTable : spec.format;
  const { table, template } = normalizeFormat(unescapeFormat(fmt));
  const src = table && template === '' ? normalizeFormat(spec.defaultTable).template : template;
  const tmpl = compileTemplate(src);
  let out = '';
  if (table) out += tmpl.execute(headerRow(spec.headers)) + '\n';
  for (const r of rows) {
    Object.defineProperty(r, LIST_ROW, { value: true, enumerable: false });
    out += tmpl.execute(r) + '\n';
  }
  if (!table) return out;
  const lines = out.split('\n');
  lines.pop();
  return tabwrite(lines).join('\n') + '\n';
}

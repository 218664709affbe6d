// Listing output for ps, images, history, ...: the docker CLI's formatter.Context. A row is an
// object of display fields (ID, Repository, CreatedSince, ...); `table ...` formats get a header
// row (the template run over the header names) and tabwriter columns; other formats print one
// template result per row.
import { compileTemplate, normalizeFormat, unescapeFormat } from './template.ts';
import { tabwrite } from './table.ts';

export interface ListFormat {
  /** The user's --format, or undefined for the default table. */
  format?: string;
  /** The table used without --format. */
  defaultTable: string;
  /** Header names by field ("ID" -> "IMAGE ID"). */
  headers: Record<string, string>;
}

function headerRow(headers: Record<string, string>): object {
  return new Proxy(
    {},
    {
      get: (_t, k) => (typeof k === 'string' ? headers[k] ?? k.toUpperCase() : undefined),
      ownKeys: () => Object.keys(headers),
      getOwnPropertyDescriptor: (_t, k) => (typeof k === 'string' && k in headers ? { enumerable: true, configurable: true, value: headers[k] } : undefined),
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
  for (const r of rows) out += tmpl.execute(r) + '\n';
  if (!table) return out;
  const lines = out.split('\n');
  lines.pop();
  return tabwrite(lines).join('\n') + '\n';
}

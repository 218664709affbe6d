// `inspect` (any object: container, then image, network, volume) and the shared inspector that
// `image inspect`, `container inspect`, ... print with: a JSON array indented by 4 spaces (docker's
// IndentedInspector), or one template result per object with -f. Objects that fail are reported
// after the others, one message per line, with exit status 1; a bad template exits 64.
import { StatusError, type Command, type Ctx } from '../command.ts';
import { ApiError } from '../api-client.ts';
import { compileTemplate, TemplateError, type Template } from '../render/template.ts';
import { isKind } from '../../core/errors.ts';

export async function inspectObjects(ctx: Ctx, refs: string[], format: string, get: (ref: string) => Promise<unknown>): Promise<void> {
  let tmpl: Template | undefined;
  if (format && format !== 'json') {
    try {
      tmpl = compileTemplate(format.replace(/\\t/g, '\t').replace(/\\n/g, '\n'));
    } catch (err) {
      throw new StatusError(64, (err as Error).message);
    }
  }
  const found: unknown[] = [];
  const errs: string[] = [];
  for (const ref of refs) {
    let obj: unknown;
    try {
      obj = await get(ref);
    } catch (err) {
      errs.push((err as Error).message);
      continue;
    }
    if (tmpl) {
      try {
        ctx.out(tmpl.execute(obj) + '\n');
      } catch (err) {
        if (err instanceof TemplateError) errs.push(err.message);
        else throw err;
      }
    } else {
      found.push(obj);
    }
  }
  if (!tmpl) ctx.out(found.length === 0 ? '[]\n' : JSON.stringify(found, null, 4) + '\n');
  if (errs.length) throw new StatusError(1, errs.join('\n'));
}

const TYPES: Record<string, (ref: string) => string> = {
  container: (r) => `/containers/${r}/json`,
  image: (r) => `/images/${r}/json`,
  network: (r) => `/networks/${r}`,
  volume: (r) => `/volumes/${r}`,
};

export const inspect: Command = {
  name: 'inspect',
  usage: '[OPTIONS] NAME|ID [NAME|ID...]',
  short: 'Return low-level information on Docker objects',
  args: { min: 1 },
  flags: [
    { name: 'format', short: 'f', kind: 'string', valueName: 'string', help: 'Format output using a custom template' },
    { name: 'size', short: 's', kind: 'bool', help: 'Display total file sizes if the type is container' },
    { name: 'type', kind: 'string', valueName: 'string', help: 'Only inspect objects of the given type' },
  ],
  async run(ctx, f, args) {
    const type = f.string('type');
    if (type && !TYPES[type]) throw new Error(`"${type}" is not a valid value for --type`);
    const kinds = type ? [type] : Object.keys(TYPES);
    await inspectObjects(ctx, args, f.string('format'), async (ref) => {
      for (const k of kinds) {
        try {
          return await ctx.client.json('GET', TYPES[k]!(ref), { query: k === 'container' ? { size: f.bool('size') } : undefined });
        } catch (err) {
          if (err instanceof ApiError && (isKind(err, 'NotFound') || err.status === 400 || err.status === 501)) continue;
          throw err;
        }
      }
      throw new Error(type ? `Error: No such ${type}: ${ref}` : `Error: No such object: ${ref}`);
    });
  },
};

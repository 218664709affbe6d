// Docker Engine API: /volumes...
import type { Router } from '../daemon/http.ts';
import { sendJson, readJson, parseFilters, noContent, queryBool } from '../daemon/http.ts';
import type { VolumeCreateRequest, VolumeService } from '../core/volumes.ts';

/** Where Docker events go (the container module's event bus, when loaded). */
export type EmitEvent = (type: 'volume', action: string, id: string, attrs: Record<string, string>) => void;

export function registerVolumeRoutes(router: Router, volumes: VolumeService, emit: EmitEvent = () => {}): void {
  router.get('/volumes', async (ctx) => {
    sendJson(ctx.res, 200, { Volumes: await volumes.list(parseFilters(ctx.query)), Warnings: [] });
  });
  router.post('/volumes/create', async (ctx) => {
    const body = (await readJson<VolumeCreateRequest>(ctx.req)) ?? {};
    const v = await volumes.create(body);
    emit('volume', 'create', v.Name, { driver: v.Driver });
    sendJson(ctx.res, 201, v);
  });
  router.post('/volumes/prune', async (ctx) => {
    const r = await volumes.prune(parseFilters(ctx.query));
    for (const name of r.VolumesDeleted) emit('volume', 'destroy', name, { driver: 'local' });
    sendJson(ctx.res, 200, r);
  });
  router.get('/volumes/{name}', async (ctx) => {
    sendJson(ctx.res, 200, await volumes.inspect(ctx.params.name!));
  });
  router.delete('/volumes/{name}', async (ctx) => {
    await volumes.remove(ctx.params.name!, queryBool(ctx.query, 'force'));
    emit('volume', 'destroy', ctx.params.name!, { driver: 'local' });
    noContent(ctx.res);
  });
}

// Docker Engine API: /volumes...
import type { Router } from '../daemon/http.ts';
import { sendJson, readJson, parseFilters, noContent, queryBool } from '../daemon/http.ts';
import type { VolumeCreateRequest, VolumeService } from '../core/volumes.ts';

export function registerVolumeRoutes(router: Router, volumes: VolumeService): void {
  router.get('/volumes', async (ctx) => {
    sendJson(ctx.res, 200, { Volumes: await volumes.list(parseFilters(ctx.query)), Warnings: [] });
  });
  router.post('/volumes/create', async (ctx) => {
    const body = (await readJson<VolumeCreateRequest>(ctx.req)) ?? {};
    sendJson(ctx.res, 201, await volumes.create(body));
  });
  router.post('/volumes/prune', async (ctx) => {
    sendJson(ctx.res, 200, await volumes.prune(parseFilters(ctx.query)));
  });
  router.get('/volumes/{name}', async (ctx) => {
    sendJson(ctx.res, 200, await volumes.inspect(ctx.params.name!));
  });
  router.delete('/volumes/{name}', async (ctx) => {
    await volumes.remove(ctx.params.name!, queryBool(ctx.query, 'force'));
    noContent(ctx.res);
  });
}

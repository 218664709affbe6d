// Docker Engine API: /networks...
import type { Router } from '../daemon/http.ts';
import { sendJson, readJson, parseFilters, noContent } from '../daemon/http.ts';
import { invalidArgument } from '../core/errors.ts';
import type { EndpointSettings, NetworkCreateRequest, NetworkService } from '../core/networks.ts';

export function registerNetworkRoutes(router: Router, networks: NetworkService): void {
  router.get('/networks', async (ctx) => {
    sendJson(ctx.res, 200, await networks.list(parseFilters(ctx.query)));
  });
  router.post('/networks/create', async (ctx) => {
    const body = await readJson<NetworkCreateRequest>(ctx.req);
    if (!body) throw invalidArgument('request body is required');
    sendJson(ctx.res, 201, await networks.create(body));
  });
  router.post('/networks/prune', async (ctx) => {
    sendJson(ctx.res, 200, { NetworksDeleted: await networks.prune(parseFilters(ctx.query)) });
  });
  router.get('/networks/{id}', async (ctx) => {
    sendJson(ctx.res, 200, await networks.inspect(ctx.params.id!));
  });
  router.delete('/networks/{id}', async (ctx) => {
    await networks.remove(ctx.params.id!);
    noContent(ctx.res);
  });
  router.post('/networks/{id}/connect', async (ctx) => {
    const body = await readJson<{ Container?: string; EndpointConfig?: EndpointSettings }>(ctx.req);
    if (!body?.Container) throw invalidArgument('container is required');
    await networks.connect(body.Container, ctx.params.id!, body.EndpointConfig ?? {});
    ctx.res.writeHead(200);
    ctx.res.end();
  });
  router.post('/networks/{id}/disconnect', async (ctx) => {
    const body = await readJson<{ Container?: string; Force?: boolean }>(ctx.req);
    if (!body?.Container) throw invalidArgument('container is required');
    await networks.disconnect(body.Container, ctx.params.id!, body.Force === true);
    ctx.res.writeHead(200);
    ctx.res.end();
  });
}

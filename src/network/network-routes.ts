// Docker Engine API: /networks...
import type { Router } from '../daemon/http.ts';
import { sendJson, readJson, parseFilters, noContent } from '../daemon/http.ts';
import { invalidArgument } from '../core/errors.ts';
import type { EndpointSettings, NetworkCreateRequest, NetworkService } from '../core/networks.ts';

/** Where Docker events go (the container module's event bus, when loaded). */
export type EmitEvent = (type: 'network', action: string, id: string, attrs: Record<string, string>) => void;

export function registerNetworkRoutes(router: Router, networks: NetworkService, emit: EmitEvent = () => {}): void {
  router.get('/networks', async (ctx) => {
    sendJson(ctx.res, 200, await networks.list(parseFilters(ctx.query)));
  });
  router.post('/networks/create', async (ctx) => {
    const body = await readJson<NetworkCreateRequest>(ctx.req);
    if (!body) throw invalidArgument('request body is required');
    const r = await networks.create(body);
    emit('network', 'create', r.Id, { name: body.Name, type: body.Driver || 'bridge' });
    sendJson(ctx.res, 201, r);
  });
  router.post('/networks/prune', async (ctx) => {
    const deleted = await networks.prune(parseFilters(ctx.query));
    for (const name of deleted) emit('network', 'destroy', name, { name, type: 'bridge' });
    sendJson(ctx.res, 200, { NetworksDeleted: deleted });
  });
  router.get('/networks/{id}', async (ctx) => {
    sendJson(ctx.res, 200, await networks.inspect(ctx.params.id!));
  });
  router.delete('/networks/{id}', async (ctx) => {
    const n = await networks.inspect(ctx.params.id!);
    await networks.remove(n.Id);
    emit('network', 'destroy', n.Id, { name: n.Name, type: n.Driver });
    noContent(ctx.res);
  });
  router.post('/networks/{id}/connect', async (ctx) => {
    const body = await readJson<{ Container?: string; EndpointConfig?: EndpointSettings }>(ctx.req);
    if (!body?.Container) throw invalidArgument('container is required');
    await networks.connect(body.Container, ctx.params.id!, body.EndpointConfig ?? {});
    const n = await networks.inspect(ctx.params.id!);
    emit('network', 'connect', n.Id, { container: body.Container, name: n.Name, type: n.Driver });
    ctx.res.writeHead(200);
    ctx.res.end();
  });
  router.post('/networks/{id}/disconnect', async (ctx) => {
    const body = await readJson<{ Container?: string; Force?: boolean }>(ctx.req);
    if (!body?.Container) throw invalidArgument('container is required');
    await networks.disconnect(body.Container, ctx.params.id!, body.Force === true);
    const n = await networks.inspect(ctx.params.id!);
    emit('network', 'disconnect', n.Id, { container: body.Container, name: n.Name, type: n.Driver });
    ctx.res.writeHead(200);
    ctx.res.end();
  });
}

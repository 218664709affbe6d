// docker-compose 1.29 (a real Docker API client) against berthd: it creates the project
// network, creates each container and then connects it with the service name and aliases
// before the first start; a one-off `run` container reaches the service by name and alias
// through the embedded DNS; `down` removes the network.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startDaemon, importBusybox, run, docker, isRoot } from '../helpers/fixtures.ts';

test('compose services find each other by service name and network alias', { skip: !isRoot }, async () => {
  await using d = await startDaemon();
  const dir = await mkdtemp(join(tmpdir(), 'berth-compose-'));
  const project = `c${randomBytes(3).toString('hex')}`;
  try {
    await importBusybox(d);
    await writeFile(join(dir, 'docker-compose.yml'), `version: "3.7"
services:
  web:
    image: busybox
    command: httpd -f -p 80 -h /etc
    hostname: webhost
    networks:
      default:
        aliases: [webalias]
  client:
    image: busybox
    command: sh -c "wget -q -O - http://web/hostname && wget -q -O - http://webalias/hostname && echo COMPOSE-OK"
    depends_on: [web]
`);
    const env = { ...d.env, DOCKER_CONFIG: join(dir, 'docker-config') };
    const compose = (...args: string[]) => run('docker-compose', ['-p', project, '-f', join(dir, 'docker-compose.yml'), ...args], { env, timeoutMs: 120_000 });
    let r = await compose('up', '-d', 'web');
    assert.equal(r.code, 0, r.stderr);
    // httpd needs a moment; retry the client until its whole output was seen. compose `run`
    // goes through the docker CLI here (`docker start --attach`, compose's default), which
    // attaches before the start; with COMPOSE_INTERACTIVE_NO_CLI=1 compose 1.29 attaches only
    // after `start` returned (a lazy map) with logs=False, and output written before that is
    // lost, against dockerd as against berthd.
    const want = /webhost\nwebhost\nCOMPOSE-OK/;
    let out = '';
    for (let i = 0; i < 10 && !want.test(out); i++) {
      r = await compose('run', '--rm', '-T', 'client');
      out = r.stdout;
      if (!want.test(out)) await new Promise((res) => setTimeout(res, 300));
    }
    assert.match(out, want);
    r = await compose('down');
    assert.equal(r.code, 0, r.stderr);
    const nets = await docker(d, ['network', 'ls', '--format', '{{.Name}}']);
    assert.doesNotMatch(nets.stdout, new RegExp(`${project}_default`));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

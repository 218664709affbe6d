// Containers through the Docker SDK for Python (Debian's python3-docker) against berthd.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, importBusybox, isRoot, run } from '../helpers/fixtures.ts';

const skip = !isRoot && 'needs root';

const SCRIPT = String.raw`
import sys, json, docker
c = docker.DockerClient(base_url='unix://' + sys.argv[1], version='1.44')
out = {}
# run to completion: output and exit code
out['run'] = c.containers.run('busybox', ['sh', '-c', 'echo py-out; echo py-err >&2'], remove=True, stdout=True, stderr=False).decode()
ct = c.containers.run('busybox', ['sh', '-c', 'echo started; sleep 60'], detach=True, name='pysdk', labels={'a': 'b'}, mem_limit='64m')
ct.reload()
out['status'] = ct.status
out['labels'] = ct.labels
out['mem'] = ct.attrs['HostConfig']['Memory']
r = ct.exec_run(['sh', '-c', 'echo exec-out; exit 3'])
out['exec'] = [r.exit_code, r.output.decode()]
out['logs'] = ct.logs().decode()
out['list'] = [x.name for x in c.containers.list(filters={'label': 'a=b'})]
out['top'] = ct.top()['Titles'][:2]
s = ct.stats(stream=False)
out['stats_has_memory'] = 'usage' in s['memory_stats']
ct.stop(timeout=1)
out['wait'] = ct.wait()['StatusCode']
ct.remove()
try:
    c.containers.get('pysdk')
    out['gone'] = False
except docker.errors.NotFound as e:
    out['gone'] = True
    out['notfound'] = str(e.explanation)
try:
    c.containers.create('busybox', name='pysdk2')
    c.containers.create('busybox', name='pysdk2')
except docker.errors.APIError as e:
    out['conflict'] = e.status_code
c.containers.get('pysdk2').remove()
print(json.dumps(out))
`;

test('docker SDK for Python: run, exec, logs, list, stats, stop, wait, remove, errors', { skip, timeout: 120_000 }, async () => {
  const d = await startDaemon();
  try {
    await importBusybox(d);
    const r = await run('/usr/bin/python3', ['-c', SCRIPT, d.socket], { timeoutMs: 100_000 });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.run, 'py-out\n');
    assert.equal(out.status, 'running');
    assert.deepEqual(out.labels, { a: 'b' });
    assert.equal(out.mem, 64 * 1024 * 1024);
    assert.deepEqual(out.exec, [3, 'exec-out\n']);
    assert.equal(out.logs, 'started\n');
    assert.deepEqual(out.list, ['pysdk']);
    assert.deepEqual(out.top, ['UID', 'PID']);
    assert.equal(out.stats_has_memory, true);
    assert.equal(out.wait, 137);
    assert.equal(out.gone, true);
    assert.match(out.notfound, /No such container: pysdk/);
    assert.equal(out.conflict, 409);
  } finally {
    await d.cleanup();
  }
});

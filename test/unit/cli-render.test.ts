import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { tabwrite, renderTable, truncateId, ellipsis } from '../../src/cli/render/table.ts';
import { compileTemplate, TemplateError } from '../../src/cli/render/template.ts';
import { formatList } from '../../src/cli/render/list.ts';
import { humanSizeWithPrecision, humanSize, bytesSize, humanDuration, formatG, parseRamSize, parseGoDuration } from '../../src/cli/render/units.ts';
import { JsonMessageRenderer, displayJsonMessages, progressString, JsonMessageError, type JsonMessage } from '../../src/cli/render/jsonmessage.ts';

test('tabwriter columns: minwidth 10, padding 3, last column unpadded', () => {
  assert.deepEqual(tabwrite(['REPOSITORY\tTAG\tIMAGE ID', 'busybox\tlatest\tabc']), ['REPOSITORY   TAG       IMAGE ID', 'busybox      latest    abc']);
  assert.equal(renderTable(['A', 'B'], [['averyveryverylongcell', 'x']]), 'A                       B\naveryveryverylongcell   x\n');
  assert.equal(truncateId('sha256:0123456789abcdef0123'), '0123456789ab');
  assert.equal(ellipsis('abcdefghijklmnopqrstuvwxyz', 20), 'abcdefghijklmnopqrs…');
  assert.equal(ellipsis('short', 20), 'short');
});

test('sizes and durations as go-units prints them', () => {
  assert.equal(humanSizeWithPrecision(4261234, 3), '4.26MB');
  assert.equal(humanSizeWithPrecision(0, 3), '0B');
  assert.equal(humanSizeWithPrecision(999, 3), '999B');
  assert.equal(humanSizeWithPrecision(1000, 3), '1kB');
  assert.equal(humanSizeWithPrecision(1_500_000_000, 3), '1.5GB');
  assert.equal(humanSize(1234567), '1.235MB');
  assert.equal(bytesSize(1536), '1.5KiB');
  assert.equal(bytesSize(8 * 1024 ** 3), '8GiB');
  assert.equal(formatG(123456, 3), '1.23e+05');
  assert.equal(formatG(0.5, 3), '0.5');
  const s = 1000;
  assert.equal(humanDuration(500), 'Less than a second');
  assert.equal(humanDuration(1 * s), '1 second');
  assert.equal(humanDuration(59 * s), '59 seconds');
  assert.equal(humanDuration(60 * s), 'About a minute');
  assert.equal(humanDuration(120 * s), '2 minutes');
  assert.equal(humanDuration(3600 * s), 'About an hour');
  assert.equal(humanDuration(90 * 60 * s), '2 hours');
  assert.equal(humanDuration(48 * 3600 * s), '2 days');
  assert.equal(humanDuration(14 * 24 * 3600 * s), '2 weeks');
  assert.equal(humanDuration(3 * 365 * 24 * 3600 * s), '3 years');
  assert.equal(parseRamSize('512m'), 536870912);
  assert.equal(parseRamSize('1g'), 1073741824);
  assert.equal(parseGoDuration('1m30s'), 90e9);
  assert.equal(parseGoDuration('500ms'), 5e8);
  assert.throws(() => parseGoDuration('10'));
});

test('Go template subset', () => {
  const data = {
    Name: 'web',
    A: { B: 'deep' },
    Labels: { 'com.x': '1', b: '2' },
    List: ['a', 'b'],
    Empty: [],
    N: 3,
    Label: (k: string) => (k === 'com.x' ? 'one' : ''),
  };
  const t = (src: string) => compileTemplate(src).execute(data);
  assert.equal(t('{{.Name}}'), 'web');
  assert.equal(t('{{.A.B}}'), 'deep');
  assert.equal(t('{{json .A}}'), '{"B":"deep"}');
  // inspect data keeps the daemon's field order (Go struct order), no HTML escaping
  assert.equal(t('{{json .Labels}}'), '{"com.x":"1","b":"2"}');
  assert.equal(compileTemplate('{{json .}}').execute({ z: '<a&b>', a: 1 }), '{"z":"<a&b>","a":1}');
  assert.equal(t('{{index .Labels "com.x"}}'), '1');
  assert.equal(t('{{range .List}}[{{.}}]{{end}}'), '[a][b]');
  assert.equal(t('{{range .Empty}}x{{else}}none{{end}}'), 'none');
  assert.equal(t('{{range $k, $v := .Labels}}{{$k}}={{$v}};{{end}}'), 'b=2;com.x=1;');
  assert.equal(t('{{if .Name}}yes{{else}}no{{end}}/{{if .Empty}}yes{{else}}no{{end}}'), 'yes/no');
  assert.equal(t('{{if eq .Name "x"}}1{{else if eq .Name "web"}}2{{else}}3{{end}}'), '2');
  assert.equal(t('{{join .List ", "}}'), 'a, b');
  assert.equal(t('{{.Name | upper}}'), 'WEB');
  assert.equal(t('{{.List}} {{.Labels}}'), '[a b] map[b:2 com.x:1]');
  assert.equal(t('{{.Missing}}'), '<no value>');
  assert.equal(t('{{.Label "com.x"}}'), 'one');
  assert.equal(t('{{printf "%s-%d" .Name .N}}'), 'web-3');
  assert.equal(t('a  {{- .Name -}}  b'), 'awebb');
  assert.equal(t('{{with .A}}{{.B}}{{end}}'), 'deep');
  assert.equal(t('{{len .List}}'), '2');
  assert.throws(() => compileTemplate('{{.Name'), TemplateError);
  assert.throws(() => compileTemplate('{{nosuchfunc .Name}}').execute(data), TemplateError);
});

test('formatList: table prefix gives a header row and columns; json and raw formats', () => {
  const rows = [{ ID: 'abc', Name: 'first' }, { ID: 'defghijklmnop', Name: 'second' }];
  const spec = { defaultTable: 'table {{.ID}}\t{{.Name}}', headers: { ID: 'CONTAINER ID', Name: 'NAMES' } };
  assert.equal(formatList(rows, spec), 'CONTAINER ID    NAMES\nabc             first\ndefghijklmnop   second\n');
  assert.equal(formatList(rows, { ...spec, format: '{{.Name}}' }), 'first\nsecond\n');
  assert.equal(formatList(rows, { ...spec, format: 'json' }), '{"ID":"abc","Name":"first"}\n{"ID":"defghijklmnop","Name":"second"}\n');
  assert.equal(formatList(rows, { ...spec, format: 'table {{.Name}}\\t{{.ID}}' }), 'NAMES     CONTAINER ID\nfirst     abc\nsecond    defghijklmnop\n');
  assert.equal(formatList([], spec), 'CONTAINER ID   NAMES\n');
  // listing rows marshal like docker's formatter maps: keys sorted, <>& escaped
  assert.equal(formatList([{ Tag: '<none>', ID: 'x' }], { ...spec, format: '{{json .}}' }), '{"ID":"x","Tag":"\\u003cnone\\u003e"}\n');
});

const PULL: JsonMessage[] = [
  { status: 'Pulling from library/busybox', id: 'latest' },
  { status: 'Pulling fs layer', progressDetail: {}, id: 'aaa' },
  { status: 'Pulling fs layer', progressDetail: {}, id: 'bbb' },
  { status: 'Downloading', progressDetail: { current: 500, total: 1000 }, progress: '[=>  ]', id: 'aaa' },
  { status: 'Download complete', progressDetail: {}, id: 'aaa' },
  { status: 'Digest: sha256:abc' },
];

test('jsonmessage without a terminal: one plain line per status change, no bars', () => {
  const r = new JsonMessageRenderer({ isTerminal: false });
  const out = PULL.map((m) => r.render(m)).join('');
  assert.equal(out, 'latest: Pulling from library/busybox\naaa: Pulling fs layer\nbbb: Pulling fs layer\naaa: Download complete\nDigest: sha256:abc\n');
});

test('jsonmessage on a terminal: one line per layer id, rewritten in place', () => {
  const r = new JsonMessageRenderer({ isTerminal: true, width: 80 });
  const outs = PULL.map((m) => r.render(m));
  assert.equal(outs[0], 'latest: Pulling from library/busybox\n');
  // a new id opens a line, then the cursor goes up to it, clears it, writes, comes back down
  assert.equal(outs[1], '\n\x1b[1A\x1b[2K\raaa: Pulling fs layer \r\x1b[1B');
  assert.equal(outs[2], '\n\x1b[1A\x1b[2K\rbbb: Pulling fs layer \r\x1b[1B');
  // aaa is two lines up now
  assert.equal(outs[3], '\x1b[2A\x1b[2K\raaa: Downloading     500B/1kB\r\x1b[2B');
  assert.equal(outs[5], 'Digest: sha256:abc\n');
  // wide terminals get the bar
  assert.equal(progressString({ current: 500, total: 1000 }, 120), `[${'='.repeat(25)}>${' '.repeat(25)}]     500B/1kB`);
});

test('jsonmessage: an error in the stream fails after printing what came before; aux is not printed', async () => {
  const chunks: string[] = [];
  const out = new Writable({ write(c, _e, cb) { chunks.push(String(c)); cb(); } });
  const aux: unknown[] = [];
  const input: Buffer[] = [
    Buffer.from('{"status":"Pulling from x","id":"latest"}\r\n{"aux":{"ID":"sha256:1"}}'),
    Buffer.from('\r\n{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}\r\n'),
  ];
  await assert.rejects(
    displayJsonMessages((async function* () { yield* input; })(), out, { isTerminal: false, onAux: (m) => aux.push(m.aux) }),
    (e: unknown) => e instanceof JsonMessageError && e.message === 'manifest unknown',
  );
  assert.equal(chunks.join(''), 'latest: Pulling from x\n');
  assert.deepEqual(aux, [{ ID: 'sha256:1' }]);
});

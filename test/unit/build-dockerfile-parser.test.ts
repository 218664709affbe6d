import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDockerfile, parseGoDuration, parseWords, DockerfileError, type Instruction } from '../../src/build/dockerfile-parser.ts';
import { kindOf } from '../../src/core/errors.ts';

const only = (src: string): Instruction[] => parseDockerfile(src).stages[0]!.instructions;
const first = <K extends Instruction['kind']>(src: string, kind: K): Instruction & { kind: K } => {
  const ins = only(src).find((i) => i.kind === kind);
  assert.ok(ins, `no ${kind}`);
  return ins as Instruction & { kind: K };
};
const parseError = (src: string, file = 'Dockerfile'): DockerfileError => {
  try {
    parseDockerfile(src, file);
  } catch (err) {
    assert.ok(err instanceof DockerfileError, String(err));
    assert.equal(kindOf(err), 'InvalidArgument');
    return err;
  }
  assert.fail('expected a parse error');
};

test('FROM forms: image, AS name, --platform, ARG before FROM', () => {
  const df = parseDockerfile('ARG BASE=busybox\nARG V\nFROM --platform=$BUILDPLATFORM ${BASE}:latest AS Build\nFROM scratch\n');
  assert.equal(df.metaArgs.length, 2);
  assert.deepEqual(df.metaArgs[0]!.args, [{ name: 'BASE', default: 'busybox' }]);
  assert.deepEqual(df.metaArgs[1]!.args, [{ name: 'V' }]);
  assert.equal(df.stages.length, 2);
  assert.equal(df.stages[0]!.from.image, '${BASE}:latest');
  assert.equal(df.stages[0]!.name, 'build');
  assert.equal(df.stages[0]!.from.platform, '$BUILDPLATFORM');
  assert.equal(df.stages[1]!.from.image, 'scratch');
  assert.equal(df.stages[1]!.name, undefined);
  assert.match(parseError('FROM a b\n').message, /^Dockerfile:1: FROM requires either one or three arguments/);
  assert.match(parseError('FROM a AS x\nFROM b AS X\n').message, /Dockerfile:2: duplicate stage name "x"/);
  assert.match(parseError('RUN true\nFROM a\n').message, /Dockerfile:1: no build stage/);
});

test('unknown instruction and malformed lines name the file and line', () => {
  assert.equal(parseError('FROM a\n\n# c\nRUN x\nFOO bar\n').message, 'Dockerfile:5: unknown instruction: FOO');
  assert.equal(parseError('FROM a\nRUN \\\n  x\nCOPY a\n', 'build/Containerfile').message, 'build/Containerfile:4: COPY requires at least two arguments, but only 1 provided');
  assert.match(parseError('FROM a\nRUN --bogus=1 true\n').message, /^Dockerfile:2: unknown flag: bogus/);
  assert.match(parseError('FROM a\nCOPY --from=a --from=b x y\n').message, /duplicate flag/);
  assert.match(parseError('').message, /cannot be empty/);
  assert.match(parseError('# just a comment\n').message, /cannot be empty/);
  assert.match(parseError('ARG x\n').message, /no stages/);
  assert.match(parseError('FROM a\nSHELL /bin/bash -c\n').message, /Dockerfile:2: SHELL requires the arguments to be in JSON form/);
  assert.match(parseError('FROM a\nCMD ["a", 1]\n').message, /Dockerfile:2: .*strings only/);
  assert.match(parseError('FROM a\nENV A=1 B\n').message, /Dockerfile:2: Syntax error - can't find = in "B"/);
  assert.match(parseError('FROM a\nENV A\n').message, /ENV must have two arguments/);
});

test('parser directives only at the top; escape changes continuation', () => {
  const df = parseDockerfile('# syntax=docker/dockerfile:1\n# escape=`\nFROM a\nRUN echo a `\n  b\nCOPY c:\\dir\\ d\n');
  assert.equal(df.directives.syntax, 'docker/dockerfile:1');
  assert.equal(df.directives.escape, '`');
  const ins = df.stages[0]!.instructions;
  assert.equal(ins[0]!.kind, 'RUN');
  assert.deepEqual((ins[0] as Instruction & { kind: 'RUN' }).command, { json: false, cmd: 'echo a   b' });
  assert.deepEqual((ins[1] as Instruction & { kind: 'COPY' }).sources, ['c:\\dir\\']);
  // after an instruction, `# escape=` is an ordinary comment
  const late = parseDockerfile('FROM a\n# escape=`\nRUN a \\\n b\n');
  assert.equal(late.directives.escape, '\\');
  assert.equal(late.stages[0]!.instructions.length, 1);
  // after a blank line, too
  assert.equal(parseDockerfile('\n# escape=`\nFROM a\n').directives.escape, '\\');
  // unknown directives are comments; duplicates and bad escapes are errors
  assert.equal(parseDockerfile('# foo=bar\n# escape=`\nFROM a\n').directives.escape, '`');
  assert.match(parseError('# escape=`\n# escape=\\\nFROM a\n').message, /Dockerfile:2: only one escape parser directive/);
  assert.match(parseError('# escape=x\nFROM a\n').message, /invalid escape token/);
});

test('line continuations skip comment and empty lines; trailing blanks after the escape are allowed', () => {
  const df = parseDockerfile('FROM a\nRUN echo one \\  \n# a comment inside\n\n    two \\\n  three\nCMD x\n');
  const run = df.stages[0]!.instructions[0] as Instruction & { kind: 'RUN' };
  assert.deepEqual(run.command, { json: false, cmd: 'echo one     two   three' });
  assert.equal(run.line, 2);
  assert.equal(df.stages[0]!.instructions[1]!.line, 7);
  assert.ok(df.warnings.some((w) => /empty continuation line/.test(w)));
  // a continuation at EOF still yields the instruction
  assert.deepEqual((only('FROM a\nRUN x \\')[0] as Instruction & { kind: 'RUN' }).command, { json: false, cmd: 'x' });
  // CRLF files
  assert.equal(only('FROM a\r\nRUN a \\\r\n b\r\n').length, 1);
  // `#` after an instruction is not a comment
  assert.deepEqual(first('FROM a\nRUN echo # hi\n', 'RUN').command, { json: false, cmd: 'echo # hi' });
  // keywords are case-insensitive
  assert.equal(first('from a\nrun true\n', 'RUN').kind, 'RUN');
});

test('RUN: shell and exec forms, --network, --mount parsed, --security', () => {
  assert.deepEqual(first('FROM a\nRUN ["/bin/echo", "a b"]\n', 'RUN').command, { json: true, args: ['/bin/echo', 'a b'] });
  assert.deepEqual(first('FROM a\nRUN [not json\n', 'RUN').command, { json: false, cmd: '[not json' });
  const r = first('FROM a\nRUN --network=none --mount=type=cache,target=/root/.cache --mount=type=secret,id=x true\n', 'RUN');
  assert.equal(r.network, 'none');
  assert.equal(r.mounts.length, 2);
  assert.deepEqual(r.mounts[0]!.fields, { type: 'cache', target: '/root/.cache' });
  assert.equal(r.mounts[1]!.fields.type, 'secret');
  assert.deepEqual(r.command, { json: false, cmd: 'true' });
  assert.match(parseError('FROM a\nRUN --network=bogus true\n').message, /unsupported network mode/);
  assert.match(parseError('FROM a\nRUN\n').message, /RUN requires at least one argument/);
});

test('CMD, ENTRYPOINT, SHELL', () => {
  assert.deepEqual(first('FROM a\nCMD ["sh", "-c", "x"]\n', 'CMD').command, { json: true, args: ['sh', '-c', 'x'] });
  assert.deepEqual(first('FROM a\nCMD echo $HOME\n', 'CMD').command, { json: false, cmd: 'echo $HOME' });
  assert.deepEqual(first('FROM a\nCMD []\n', 'CMD').command, { json: true, args: [] });
  assert.deepEqual(first('FROM a\nENTRYPOINT ["/e"]\n', 'ENTRYPOINT').command, { json: true, args: ['/e'] });
  assert.deepEqual(first('FROM a\nSHELL ["/bin/bash", "-eo", "pipefail", "-c"]\n', 'SHELL').args, ['/bin/bash', '-eo', 'pipefail', '-c']);
});

test('LABEL and ENV: k=v lists with quoting, legacy two-word form', () => {
  assert.deepEqual(first('FROM a\nLABEL a=1 "b c"="d e" f=g\\ h\n', 'LABEL').pairs, [
    { key: 'a', value: '1' },
    { key: '"b c"', value: '"d e"' },
    { key: 'f', value: 'g\\ h' },
  ]);
  assert.deepEqual(first('FROM a\nLABEL maintainer some one\n', 'LABEL').pairs, [{ key: 'maintainer', value: 'some one' }]);
  assert.deepEqual(first('FROM a\nENV PATH=/x:$PATH X="a b"\n', 'ENV').pairs, [
    { key: 'PATH', value: '/x:$PATH' },
    { key: 'X', value: '"a b"' },
  ]);
  assert.deepEqual(first('FROM a\nENV MY_VAR  my value with  spaces \n', 'ENV').pairs, [{ key: 'MY_VAR', value: 'my value with  spaces' }]);
  assert.deepEqual(first("FROM a\nENV A='x y' B=\n", 'ENV').pairs, [{ key: 'A', value: "'x y'" }, { key: 'B', value: '' }]);
});

test('EXPOSE, VOLUME (JSON or words), USER, WORKDIR, STOPSIGNAL, MAINTAINER', () => {
  assert.deepEqual(first('FROM a\nEXPOSE 80 443/tcp 53/udp\n', 'EXPOSE').ports, ['80', '443/tcp', '53/udp']);
  assert.deepEqual(first('FROM a\nVOLUME /a /b\n', 'VOLUME').paths, ['/a', '/b']);
  assert.deepEqual(first('FROM a\nVOLUME ["/a b", "/c"]\n', 'VOLUME').paths, ['/a b', '/c']);
  assert.equal(first('FROM a\nUSER 1000:1000\n', 'USER').user, '1000:1000');
  assert.equal(first('FROM a\nWORKDIR /app dir\n', 'WORKDIR').path, '/app dir');
  assert.equal(first('FROM a\nSTOPSIGNAL SIGKILL\n', 'STOPSIGNAL').signal, 'SIGKILL');
  const df = parseDockerfile('FROM a\nMAINTAINER Jane <j@x>\n');
  assert.equal((df.stages[0]!.instructions[0] as Instruction & { kind: 'MAINTAINER' }).name, 'Jane <j@x>');
  assert.ok(df.warnings.some((w) => /MAINTAINER is deprecated/.test(w)));
});

test('COPY and ADD flags and forms', () => {
  const c = first('FROM a\nCOPY --from=build --chown=1:2 --chmod=0755 --link --parents a b* /dst/\n', 'COPY');
  assert.equal(c.from, 'build');
  assert.equal(c.chown, '1:2');
  assert.equal(c.chmod, '0755');
  assert.equal(c.link, true);
  assert.equal(c.parents, true);
  assert.deepEqual(c.sources, ['a', 'b*']);
  assert.equal(c.dest, '/dst/');
  const j = first('FROM a\nCOPY ["a b", "c d", "/e f/"]\n', 'COPY');
  assert.equal(j.json, true);
  assert.deepEqual(j.sources, ['a b', 'c d']);
  const a = first('FROM a\nADD --chown=u --link=false --keep-git-dir=true x.tar /\n', 'ADD');
  assert.equal(a.link, false);
  assert.equal(a.keepGitDir, true);
  assert.match(parseError('FROM a\nADD --from=x a b\n').message, /unknown flag: from/);
  assert.match(parseError('FROM a\nCOPY --link=maybe a b\n').message, /expecting boolean/);
});

test('ARG: defaults, several per line, quoted defaults', () => {
  const a = first('FROM a\nARG A B=2 C="x y"\n', 'ARG');
  assert.deepEqual(a.args, [{ name: 'A' }, { name: 'B', default: '2' }, { name: 'C', default: '"x y"' }]);
});

test('ONBUILD keeps the trigger and refuses chaining and FROM', () => {
  const o = first('FROM a\nONBUILD run echo hi\n', 'ONBUILD');
  assert.equal(o.expression, 'run echo hi');
  assert.equal(o.trigger.kind, 'RUN');
  assert.match(parseError('FROM a\nONBUILD ONBUILD RUN x\n').message, /Chaining ONBUILD/);
  assert.match(parseError('FROM a\nONBUILD FROM x\n').message, /FROM isn't allowed as an ONBUILD trigger/);
  assert.match(parseError('FROM a\nONBUILD FOO x\n').message, /Dockerfile:2: unknown instruction: FOO/);
});

test('HEALTHCHECK: NONE, CMD shell and exec, durations and retries', () => {
  assert.deepEqual(first('FROM a\nHEALTHCHECK NONE\n', 'HEALTHCHECK').test, ['NONE']);
  const h = first('FROM a\nHEALTHCHECK --interval=5s --timeout=1m30s --start-period=500ms --start-interval=1s --retries=3 CMD curl -f http://x/ || exit 1\n', 'HEALTHCHECK');
  assert.deepEqual(h.test, ['CMD-SHELL', 'curl -f http://x/ || exit 1']);
  assert.equal(h.interval, 5e9);
  assert.equal(h.timeout, 90e9);
  assert.equal(h.startPeriod, 5e8);
  assert.equal(h.startInterval, 1e9);
  assert.equal(h.retries, 3);
  assert.deepEqual(first('FROM a\nHEALTHCHECK CMD ["/bin/check", "-q"]\n', 'HEALTHCHECK').test, ['CMD', '/bin/check', '-q']);
  assert.match(parseError('FROM a\nHEALTHCHECK NONE x\n').message, /takes no arguments/);
  assert.match(parseError('FROM a\nHEALTHCHECK RUN x\n').message, /Unknown type "RUN" in HEALTHCHECK/);
  assert.match(parseError('FROM a\nHEALTHCHECK --interval=1us CMD x\n').message, /cannot be less than 1ms/);
  assert.match(parseError('FROM a\nHEALTHCHECK --retries=-1 CMD x\n').message, /cannot be negative/);
  assert.match(parseError('FROM a\nHEALTHCHECK --timeout=abc CMD x\n').message, /invalid duration/);
});

test('heredocs: RUN, <<- tab stripping, quoted delimiters, several per line, COPY <<EOF', () => {
  const df = parseDockerfile([
    'FROM a',
    'RUN <<EOF',
    'echo $HOME',
    '  indented',
    'EOF',
    'RUN <<-"END" cat > /x && cat <<\'B\' > /y',
    '\t\tline1',
    '\tEND',
    'b body',
    'B',
    'COPY <<file1 <<file2 /dest/',
    'one',
    'file1',
    'two',
    'file2',
    'CMD done',
  ].join('\n') + '\n');
  const ins = df.stages[0]!.instructions;
  const r1 = ins[0] as Instruction & { kind: 'RUN' };
  assert.deepEqual(r1.heredocs, [{ name: 'EOF', content: 'echo $HOME\n  indented\n', expand: true, chomp: false }]);
  assert.equal(r1.endLine, 5);
  const r2 = ins[1] as Instruction & { kind: 'RUN' };
  assert.equal(r2.heredocs.length, 2);
  assert.deepEqual(r2.heredocs[0], { name: 'END', content: 'line1\n', expand: false, chomp: true });
  assert.deepEqual(r2.heredocs[1], { name: 'B', content: 'b body\n', expand: false, chomp: false });
  const c = ins[2] as Instruction & { kind: 'COPY' };
  assert.deepEqual(c.sources, ['<<file1', '<<file2']);
  assert.deepEqual(c.heredocs.map((h) => [h.name, h.content]), [['file1', 'one\n'], ['file2', 'two\n']]);
  assert.equal(ins[3]!.kind, 'CMD');
  assert.equal(ins[3]!.line, 16);
  assert.match(parseError('FROM a\nRUN <<EOF\nno end\n').message, /^Dockerfile:2: unterminated heredoc/);
  // `<<` inside other instructions is plain text
  assert.deepEqual(first('FROM a\nCMD cat <<EOF\n', 'CMD').command, { json: false, cmd: 'cat <<EOF' });
});

test('parseWords keeps quotes and escapes; Go durations', () => {
  assert.deepEqual(parseWords(`a "b c" 'd\\' e`, '\\'), ['a', '"b c"', "'d\\'", 'e']);
  assert.deepEqual(parseWords('x\\ y z', '\\'), ['x\\ y', 'z']);
  assert.equal(parseGoDuration('1h2m3s'), 3723e9);
  assert.equal(parseGoDuration('1.5s'), 1.5e9);
  assert.equal(parseGoDuration('0'), 0);
});

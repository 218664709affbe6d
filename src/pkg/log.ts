// Structured logging: one JSON line per event on stderr, fields first (`{container, image}`).
export interface Logger {
  debug(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

export function createLogger(opts: { debug?: boolean; out?: (line: string) => void } = {}): Logger {
  const out = opts.out ?? ((line: string) => process.stderr.write(line + '\n'));
  const emit = (level: string) => (fields: object, msg: string) => {
    out(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }));
  };
  return {
    debug: opts.debug ? emit('debug') : () => {},
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
  };
}

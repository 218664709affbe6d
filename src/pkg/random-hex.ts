// Random hex for temporary file names, with node:crypto loaded on first use: requiring it
// initialises OpenSSL, ~10 ms of every berth CLI start, and most CLI runs never make a temp file.
// (The daemon may import node:crypto directly; this is for modules the CLI bundle reaches.)
export function randomHex(bytes: number): string {
  const { randomBytes } = process.getBuiltinModule('node:crypto') as typeof import('node:crypto');
  return randomBytes(bytes).toString('hex');
}

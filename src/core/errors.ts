// One error taxonomy for all of berth (containerd's errdefs). Code throws these; each edge maps
// the class once: the Docker API to an HTTP status + {"message"}, the registry to its wire codes,
// the CLI to Docker's exit codes. Tests check the class (`err.kind`), never the message.

export type ErrorKind =
  | 'NotFound'
  | 'AlreadyExists'
  | 'InvalidArgument'
  | 'FailedPrecondition' // e.g. conflict: image in use, container running
  | 'Unauthorized'
  | 'Forbidden'
  | 'Unavailable'
  | 'NotImplemented'
  | 'DataLoss' // digest or size mismatch, corrupt content
  | 'Canceled'
  | 'Internal';

export class BerthError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
    this.name = `BerthError(${kind})`;
  }
}

const make = (kind: ErrorKind) => (message: string, cause?: unknown) =>
  new BerthError(kind, message, cause === undefined ? undefined : { cause });

export const notFound = make('NotFound');
export const alreadyExists = make('AlreadyExists');
export const invalidArgument = make('InvalidArgument');
export const failedPrecondition = make('FailedPrecondition');
export const unauthorized = make('Unauthorized');
export const forbidden = make('Forbidden');
export const unavailable = make('Unavailable');
export const notImplemented = make('NotImplemented');
export const dataLoss = make('DataLoss');
export const canceled = make('Canceled');
export const internal = make('Internal');

export function isKind(err: unknown, kind: ErrorKind): boolean {
  return err instanceof BerthError && err.kind === kind;
}

export function kindOf(err: unknown): ErrorKind {
  if (err instanceof BerthError) return err.kind;
  if (err instanceof Error && err.name === 'AbortError') return 'Canceled';
  return 'Internal';
}

/** HTTP status for the Docker Engine API edge. */
export function httpStatus(err: unknown): number {
  switch (kindOf(err)) {
    case 'NotFound': return 404;
    case 'AlreadyExists': return 409;
    case 'FailedPrecondition': return 409;
    case 'InvalidArgument': return 400;
    case 'Unauthorized': return 401;
    case 'Forbidden': return 403;
    case 'Unavailable': return 503;
    case 'NotImplemented': return 501;
    case 'Canceled': return 499;
    case 'DataLoss': return 500;
    case 'Internal': return 500;
  }
}

/** Rebuild the class from an API response (the CLI side of the edge). */
export function kindFromStatus(status: number): ErrorKind {
  switch (status) {
    case 400: return 'InvalidArgument';
    case 401: return 'Unauthorized';
    case 403: return 'Forbidden';
    case 404: return 'NotFound';
    case 409: return 'FailedPrecondition';
    case 501: return 'NotImplemented';
    case 503: return 'Unavailable';
    default: return 'Internal';
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

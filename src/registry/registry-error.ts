// Wire errors of the OCI distribution spec (and the few extra codes Docker's registry uses).
// ONE table maps each code to its HTTP status; every error response of the registry server is
// built from it: {"errors":[{"code","message","detail"}]}.
import { kindOf, errorMessage } from '../core/errors.ts';

export const ERROR_CODES = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 404,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  // Docker registry extensions.
  PAGINATION_NUMBER_INVALID: 400,
  RANGE_INVALID: 416,
  TAG_INVALID: 400,
  // Not in the spec; spelled like the rest so clients print them.
  PAYLOAD_TOO_LARGE: 413,
  NOT_FOUND: 404, // a path that is no endpoint at all
  UNKNOWN: 500,
  UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class RegistryError extends Error {
  readonly code: ErrorCode;
  readonly detail: unknown;
  constructor(code: ErrorCode, message: string, detail?: unknown) {
    super(message);
    this.code = code;
    this.detail = detail;
    this.name = `RegistryError(${code})`;
  }

  get status(): number {
    return ERROR_CODES[this.code];
  }

  /** The spec's JSON body. */
  body(): string {
    const e: { code: string; message: string; detail?: unknown } = { code: this.code, message: this.message };
    if (this.detail !== undefined) e.detail = this.detail;
    return JSON.stringify({ errors: [e] });
  }
}

export function registryError(code: ErrorCode, message: string, detail?: unknown): RegistryError {
  return new RegistryError(code, message, detail);
}

/** Map anything thrown inside the server to a wire error (berth error kinds map by class). */
export function toRegistryError(err: unknown): RegistryError {
  if (err instanceof RegistryError) return err;
  switch (kindOf(err)) {
    case 'InvalidArgument': return new RegistryError('BLOB_UPLOAD_INVALID', errorMessage(err));
    case 'DataLoss': return new RegistryError('DIGEST_INVALID', errorMessage(err));
    case 'Unauthorized': return new RegistryError('UNAUTHORIZED', errorMessage(err));
    case 'Forbidden': return new RegistryError('DENIED', errorMessage(err));
    case 'NotImplemented': return new RegistryError('UNSUPPORTED', errorMessage(err));
    case 'Unavailable': return new RegistryError('UNAVAILABLE', errorMessage(err));
    default: return new RegistryError('UNKNOWN', 'internal error');
  }
}

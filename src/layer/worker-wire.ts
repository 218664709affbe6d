// Messages between applyLayerInWorker (parent thread) and apply-worker.ts, and how errors cross
// the thread boundary: a BerthError keeps its kind and message, a system error its code and
// syscall (so the parent classifies it as before), anything else becomes a plain Error.
import { BerthError, type ErrorKind } from '../core/errors.ts';
import type { ApplyResult } from './tar-apply.ts';

export interface WireError {
  message: string;
  kind?: ErrorKind;
  code?: string;
  syscall?: string;
  name?: string;
}

export type ToWorker =
  | {
      type: 'start';
      root: string;
      mode: 'overlay' | 'delete';
      maxBytes?: number;
      maxEntries?: number;
      sameOwner?: boolean;
      /** 'lazy': ask the parent (a `call` with op 'lowers') when needed. */
      lowers?: readonly string[] | 'lazy';
    }
  | { type: 'data'; buf: ArrayBuffer }
  | { type: 'end' }
  | { type: 'fail'; error: WireError }
  | { type: 'abort' }
  | { type: 'reply'; call: number; value?: unknown; error?: WireError };

export type ToParent =
  | { type: 'ack'; bytes: number }
  | { type: 'call'; call: number; op: 'mknod' | 'setxattr' | 'lowers'; args: unknown[] }
  | { type: 'done'; result: ApplyResult }
  | { type: 'failed'; error: WireError };

export function toWire(err: unknown): WireError {
  if (err instanceof BerthError) return { message: err.message, kind: err.kind };
  const e = err as NodeJS.ErrnoException | undefined;
  const out: WireError = { message: err instanceof Error ? err.message : String(err) };
  if (err instanceof Error && err.name !== 'Error') out.name = err.name;
  if (typeof e?.code === 'string') out.code = e.code;
  if (typeof e?.syscall === 'string') out.syscall = e.syscall;
  return out;
}

export function fromWire(w: WireError): Error {
  if (w.kind) return new BerthError(w.kind, w.message);
  const err = new Error(w.message) as NodeJS.ErrnoException;
  if (w.name) err.name = w.name;
  if (w.code) err.code = w.code;
  if (w.syscall) err.syscall = w.syscall;
  return err;
}

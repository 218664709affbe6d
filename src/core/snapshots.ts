// Snapshotter contract (containerd's snapshots.Snapshotter, reduced). Committed snapshots are
// unpacked image layers keyed by chain ID; active snapshots are writable container (or build
// step) roots keyed by a caller-chosen key. The overlay implementation keeps each layer's diff in
// its own directory and mounts lowerdir=<top>:...:<bottom>, upperdir/workdir for active ones.
import type { Readable } from 'node:stream';
import type { Digest } from './digest.ts';

export interface Mount {
  type: string; // "overlay", "bind"
  source: string;
  options: string[];
}

export interface UnpackOptions {
  /**
   * Called after the whole tar was applied and before the snapshot becomes visible; throw to
   * discard it (the pull uses this to verify the compressed digest and the diffID).
   */
  beforeCommit?: () => Promise<void>;
  /** Upper bound on bytes written (decompression bombs); exceeding it fails the unpack. */
  maxBytes?: number;
  signal?: AbortSignal;
  /**
   * Settles once `parent` is committed (typically the caller's own unpack of it): the unpack may
   * then start before its parent is committed and is published only after it. Without it a
   * parent that is neither committed nor being unpacked is not found.
   */
  parentCommitted?: Promise<unknown>;
}

export interface SnapshotInfo {
  /** Chain ID for committed snapshots, the key for active ones. */
  name: string;
  kind: 'committed' | 'active';
  parent?: Digest;
  /** Bytes on disk of this snapshot's own diff. */
  size: number;
  created: string;
}

export interface Snapshotter {
  /** Committed snapshot for a chain ID, or undefined. */
  stat(chainId: Digest): Promise<SnapshotInfo | undefined>;
  /**
   * Apply one uncompressed layer tar on top of `parent` and commit it as `chainId`. The apply may
   * run while `parent` is still being unpacked (see UnpackOptions.parentCommitted); the snapshot
   * is published only after its parent is committed, and fails if the parent's unpack fails.
   * Concurrent unpacks of the same chain ID are safe (one wins, the other waits or is a no-op).
   */
  unpack(chainId: Digest, parent: Digest | undefined, tar: Readable, opts?: UnpackOptions): Promise<SnapshotInfo>;
  /** A hint that up to `n` unpacks follow (a pull has begun): get ready for them (start workers). */
  expectUnpacks?(n: number): void;
  /**
   * Create a writable snapshot `key` over committed `parent` (undefined: empty root), on disk
   * (fsynced) when the promise resolves. With `syncLater` it resolves as soon as the snapshot
   * can be mounted and the fsyncs finish in the background: `durable(key)` resolves then (a
   * crash before leaves no snapshot, or one that the next load discards).
   */
  prepare(key: string, parent: Digest | undefined, opts?: { syncLater?: boolean }): Promise<Mount[]>;
  /** Resolves once active snapshot `key` is on disk (see prepare's `syncLater`). */
  durable?(key: string): Promise<void>;
  /** Mounts for an existing active snapshot. */
  mounts(key: string): Promise<Mount[]>;
  /** The directory holding an active snapshot's changes (overlay upperdir). */
  upperDir(key: string): string;
  /** Commit active `key` as chain ID `chainId` (build steps); the active snapshot is gone after. */
  commit(key: string, chainId: Digest): Promise<SnapshotInfo>;
  /** Remove an active snapshot (it must be unmounted) or a committed one with no children. */
  remove(nameOrChainId: string): Promise<void>;
  list(): Promise<SnapshotInfo[]>;
}

/** chainID(L0) = diffID(L0); chainID(Ln) = sha256(chainID(Ln-1) + " " + diffID(Ln)). */
export { chainIds } from './chain-id.ts';

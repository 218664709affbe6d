// Docker's restart policies (moby restartmanager): no, always, unless-stopped, on-failure[:N].
// The delay before a restart starts at 100 ms and doubles per restart up to 1 min; it resets once
// a container ran for at least 10 s. Pure: the caller supplies the clock figures.
import type { RestartPolicy } from '../runtime/create-config.ts';
import { invalidArgument } from '../core/errors.ts';

export const BACKOFF_START_MS = 100;
export const BACKOFF_MAX_MS = 60_000;
export const RESET_AFTER_MS = 10_000;

export interface RestartDecision {
  restart: boolean;
  delayMs: number;
}

export function validateRestartPolicy(p: RestartPolicy | undefined, autoRemove: boolean): void {
  const name = p?.Name ?? '';
  if (!['', 'no', 'always', 'unless-stopped', 'on-failure'].includes(name)) throw invalidArgument(`invalid restart policy '${name}'`);
  if ((p?.MaximumRetryCount ?? 0) < 0) throw invalidArgument('invalid restart policy: maximum retry count cannot be negative');
  if (name !== 'on-failure' && (p?.MaximumRetryCount ?? 0) > 0) throw invalidArgument(`invalid restart policy: maximum retry count can only be used with 'on-failure'`);
  if (autoRemove && name !== '' && name !== 'no') throw invalidArgument("Conflicting options: --restart and --rm");
}

/** Per-container back-off state (in memory; the restart count itself is persisted). */
export class RestartManager {
  #delay = 0;
  #timer: NodeJS.Timeout | undefined;
  #canceled = false;

  /**
   * Decide after an exit. `restartCount` is the number of restarts already done (on-failure's
   * limit), `ranMs` how long the container ran this time.
   */
  shouldRestart(policy: RestartPolicy | undefined, exitCode: number, manuallyStopped: boolean, restartCount: number, ranMs: number): RestartDecision {
    const name = policy?.Name ?? '';
    let restart = false;
    if (this.#canceled) restart = false;
    else if (name === 'always') restart = !manuallyStopped;
    else if (name === 'unless-stopped') restart = !manuallyStopped;
    else if (name === 'on-failure') {
      const max = policy?.MaximumRetryCount ?? 0;
      restart = exitCode !== 0 && !manuallyStopped && (max === 0 || restartCount < max);
    }
    if (!restart) return { restart: false, delayMs: 0 };
    if (ranMs >= RESET_AFTER_MS) this.#delay = 0;
    this.#delay = this.#delay === 0 ? BACKOFF_START_MS : Math.min(this.#delay * 2, BACKOFF_MAX_MS);
    return { restart: true, delayMs: this.#delay };
  }

  /** Run `fn` after the delay unless canceled first. */
  schedule(delayMs: number, fn: () => void): void {
    this.cancelPending();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      fn();
    }, delayMs);
  }

  get pending(): boolean {
    return this.#timer !== undefined;
  }

  cancelPending(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** The container is being removed: never restart again. */
  cancel(): void {
    this.#canceled = true;
    this.cancelPending();
  }

  /** A user start resets the back-off (Docker: a manual start clears the manager). */
  reset(): void {
    this.#delay = 0;
    this.#canceled = false;
    this.cancelPending();
  }
}

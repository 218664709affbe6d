// Docker health checks (HEALTHCHECK / --health-*): run the probe in the container every interval,
// keep the last 5 results, count failures towards `retries` (not during the start period), and
// report status changes (starting -> healthy | unhealthy) as `health_status` events.
import type { ContainerRecord, HealthState } from './container-store.ts';

const NS = 1e6; // Docker durations are nanoseconds; timers take milliseconds
const DEFAULT_INTERVAL_MS = 30_000;
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_RETRIES = 3;
const KEEP = 5;

export interface HealthDeps {
  exec(id: string, cmd: string[], timeoutMs: number): Promise<{ code: number; output: string }>;
  onChange(rec: ContainerRecord, status: 'healthy' | 'unhealthy'): void;
}

/** The probe command from Healthcheck.Test, or undefined when there is none (or NONE). */
export function probeCommand(test: string[] | undefined): string[] | undefined {
  if (!test || test.length === 0) return undefined;
  switch (test[0]) {
    case 'NONE': return undefined;
    case 'CMD': return test.length > 1 ? test.slice(1) : undefined;
    case 'CMD-SHELL': return test[1] !== undefined ? ['/bin/sh', '-c', test.slice(1).join(' ')] : undefined;
    default: return test;
  }
}

export class HealthMonitor {
  #d: HealthDeps;
  #timers = new Map<string, NodeJS.Timeout>();

  constructor(deps: HealthDeps) {
    this.#d = deps;
  }

  start(rec: ContainerRecord): void {
    this.stop(rec.id);
    const hc = rec.config.Healthcheck;
    const cmd = probeCommand(hc?.Test);
    if (!cmd) {
      delete rec.state.health;
      return;
    }
    const interval = hc?.Interval ? hc.Interval / NS : DEFAULT_INTERVAL_MS;
    const timeout = hc?.Timeout ? hc.Timeout / NS : DEFAULT_TIMEOUT_MS;
    const retries = hc?.Retries ?? DEFAULT_RETRIES;
    const startPeriod = hc?.StartPeriod ? hc.StartPeriod / NS : 0;
    const startInterval = hc?.StartInterval ? hc.StartInterval / NS : interval;
    const startedAt = Date.now();
    rec.state.health = { Status: 'starting', FailingStreak: 0, Log: [] };
    const tick = async () => {
      const h = rec.state.health as HealthState;
      const start = new Date();
      let r: { code: number; output: string };
      try {
        r = await this.#d.exec(rec.id, cmd, timeout);
      } catch (err) {
        r = { code: -1, output: (err as Error).message };
      }
      if (!this.#timers.has(rec.id)) return;
      const ok = r.code === 0;
      h.Log.push({ Start: start.toISOString(), End: new Date().toISOString(), ExitCode: r.code, Output: r.code === -1 && !r.output ? `Health check exceeded timeout (${timeout}ms)` : r.output });
      if (h.Log.length > KEEP) h.Log.splice(0, h.Log.length - KEEP);
      const inStart = Date.now() - startedAt < startPeriod;
      const before = h.Status;
      if (ok) {
        h.FailingStreak = 0;
        h.Status = 'healthy';
      } else if (!inStart || h.Status !== 'starting') {
        h.FailingStreak++;
        if (h.FailingStreak >= retries) h.Status = 'unhealthy';
      }
      if (h.Status !== before && h.Status !== 'starting') this.#d.onChange(rec, h.Status as 'healthy' | 'unhealthy');
      const next = h.Status === 'starting' && inStart ? startInterval : interval;
      this.#timers.set(rec.id, setTimeout(() => void tick(), next));
    };
    this.#timers.set(rec.id, setTimeout(() => void tick(), Math.min(startInterval, interval)));
  }

  stop(id: string): void {
    const t = this.#timers.get(id);
    if (t) clearTimeout(t);
    this.#timers.delete(id);
  }

  stopAll(): void {
    for (const id of [...this.#timers.keys()]) this.stop(id);
  }
}

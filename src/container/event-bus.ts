// Docker's event stream (`GET /events`): container and image events, kept in a bounded ring so
// `since` can replay recent history, delivered live to subscribers with Docker's filters.
export interface DockerEvent {
  Type: 'container' | 'image' | 'network' | 'volume' | 'daemon';
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: 'local';
  time: number;
  timeNano: number;
  // Deprecated top-level fields old clients still read.
  status?: string;
  id?: string;
  from?: string;
}

const RING = 1024;

export class EventBus {
  #ring: DockerEvent[] = [];
  #subs = new Set<(e: DockerEvent) => void>();
  #lastNs = 0n;

  emit(type: DockerEvent['Type'], action: string, id: string, attributes: Record<string, string> = {}): DockerEvent {
    // Wall-clock time from the monotonic clock (timeOrigin + now), never behind the previous
    // event: `since` replays rely on the order. (Date.now() plus the fraction of another clock's
    // millisecond could go backwards within one millisecond.)
    let nowNs = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
    if (nowNs <= this.#lastNs) nowNs = this.#lastNs + 1n;
    this.#lastNs = nowNs;
    const e: DockerEvent = {
      Type: type,
      Action: action,
      Actor: { ID: id, Attributes: attributes },
      scope: 'local',
      time: Number(nowNs / 1_000_000_000n),
      timeNano: Number(nowNs),
    };
    if (type === 'container' || type === 'image') {
      e.status = action;
      e.id = id;
      if (attributes.image) e.from = attributes.image;
    }
    this.#ring.push(e);
    if (this.#ring.length > RING) this.#ring.shift();
    for (const s of this.#subs) s(e);
    return e;
  }

  /** Events since `sinceSec` (inclusive) still in the ring. */
  history(sinceNano: number): DockerEvent[] {
    return this.#ring.filter((e) => e.timeNano >= sinceNano);
  }

  subscribe(fn: (e: DockerEvent) => void): () => void {
    this.#subs.add(fn);
    return () => this.#subs.delete(fn);
  }
}

/** Docker's `since`/`until`: unix seconds with optional fraction, or RFC 3339. -> nanoseconds. */
export function parseEventTime(v: string | null, now = Date.now()): number | undefined {
  if (v === null || v === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) {
    const [s, f = ''] = v.split('.');
    return Number(s) * 1e9 + Number((f + '000000000').slice(0, 9));
  }
  const d = /^(\d+)(ns|us|ms|s|m|h)$/.exec(v);
  if (d) {
    const mult = { ns: 1e-6, us: 1e-3, ms: 1, s: 1e3, m: 6e4, h: 3.6e6 }[d[2] as 'ms'];
    return (now - Number(d[1]) * mult) * 1e6;
  }
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : t * 1e6;
}

/** Docker's event filters: type, event/action, container, image, label, and the like. */
export function matchEvent(e: DockerEvent, filters: Map<string, string[]>): boolean {
  const any = (k: string, pred: (v: string) => boolean) => {
    const vals = filters.get(k);
    return !vals || vals.length === 0 || vals.some(pred);
  };
  const attrs = e.Actor.Attributes;
  return (
    any('type', (v) => v === e.Type) &&
    any('event', (v) => v === e.Action || e.Action.startsWith(v + ':')) &&
    any('action', (v) => v === e.Action) &&
    any('container', (v) => e.Type === 'container' && (e.Actor.ID.startsWith(v) || attrs.name === v)) &&
    any('image', (v) => attrs.image === v || (e.Type === 'image' && (e.Actor.ID === v || attrs.name === v))) &&
    any('label', (v) => {
      const i = v.indexOf('=');
      return i < 0 ? v in attrs : attrs[v.slice(0, i)] === v.slice(i + 1);
    })
  );
}

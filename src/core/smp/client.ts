/**
 * SMP client: sequence matching, a window of requests in flight, per-request
 * timeouts, size checks against the device's buffer, and typed errors.
 * It sees packets only; framing and the link are below it (see session.ts).
 */
import { decodeCborObject, encodeCbor } from '../base/cbor.ts';
import { SmpError, replyError } from './errors.ts';
import { SMP_HEADER_SIZE, SMP_V1, SMP_V2, buildPacket, decodeHeader, isResponseOp } from './header.ts';

export type LogEvent =
  | { type: 'tx' | 'rx'; op: number; group: number; id: number; seq: number; bytes: number; body?: unknown }
  | { type: 'drop'; reason: string }
  | { type: 'noise'; text: string }
  | { type: 'info' | 'warn' | 'error'; message: string };

export interface ClientOptions {
  /** Default per-request timeout. */
  timeoutMs?: number;
  /** Largest packet (header + CBOR) the device accepts: its MCUmgr buf_size. */
  maxPacket?: number;
  /** Requests in flight at most: buf_count - 1. */
  window?: number;
  log?: (e: LogEvent) => void;
  /** Log request/response bodies (off by default: bodies may be large). */
  logBodies?: boolean;
  /** Sequence number of the first request (default random). */
  initialSeq?: number;
  /** A request got no reply in time (the device or the line lost it): the session backs off its pacing. */
  onLoss?: (what: string) => void;
  /** A reply matched its request. */
  onReply?: () => void;
  /** Times a read (op 0, idempotent) is sent again after a timeout; default 0. */
  readRetries?: number;
}

/**
 * Protection of requests by a secure session (the security group's SecureChannel,
 * trust/session.ts): once installed, every request it covers goes wrapped, and its reply is
 * opened and checked.
 */
export interface Protector {
  /** Bytes the wrapping adds to a request packet: ops see maxPacket less this. */
  readonly overhead: number;
  covers(group: number, id: number): boolean;
  /** Awaited before a covered request is wrapped (renews the keys after a reset). */
  ready?(): Promise<void>;
  /** A covered request failed with `e`: true when the session was renewed and it may go again (once). */
  recover?(e: unknown): Promise<boolean>;
  /** Wrap a whole inner request packet: the outer command and body, and how to open its reply body. */
  wrap(inner: Uint8Array): { group: number; id: number; body: Body; open(reply: Body): Uint8Array };
  /** Called after a covered request succeeded (a reset ends the session). */
  after?(group: number, id: number): void;
}

export interface RequestOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  /**
   * Send again this many times after a timeout (default: the client's
   * readRetries for reads, 0 for writes). Only for requests that are safe to
   * repeat: a write is retried only when the caller says so (echo).
   */
  retries?: number;
}

interface Pending {
  group: number;
  id: number;
  /** Set for a protected request: the inner command and how to open the reply. */
  inner?: { group: number; id: number; open(reply: Body): Uint8Array };
  resolve: (body: Record<string, unknown>) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

export type Body = Record<string, unknown>;

export class SmpClient {
  timeoutMs: number;
  window: number;
  private limit: number;
  /** What the device accepts at all (its buffer): a request over it is refused; `limit` is the preferred size ops chunk by. */
  private hardLimit: number;
  /**
   * What one request of `bytes` costs of the device's receive buffers, and how much may be in flight
   * (console framing: lines, against the UART's line buffers); a request always goes when nothing is in flight.
   */
  private cost: (bytes: number) => number = () => 1;
  private budget = Infinity;
  private inFlightCost = 0;
  private protector: Protector | null = null;
  /** SMP protocol version we send; drops to v1 if the device answers v1. */
  version = SMP_V2;
  /** Replies that matched no request (late after a timeout, or foreign). */
  unmatched = 0;
  private seq: number;
  private readonly pending = new Map<number, Pending>();
  private inFlight = 0;
  private readonly waiters: ((() => void) & { cost: number })[] = [];
  private failure: SmpError | null = null;
  private readonly log?: (e: LogEvent) => void;
  private readonly logBodies: boolean;
  /** See ClientOptions; the session sets them. */
  onLoss?: (what: string) => void;
  onReply?: () => void;
  readRetries: number;

  constructor(
    private readonly sendPacket: (packet: Uint8Array) => Promise<void>,
    opts: ClientOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.limit = opts.maxPacket ?? 256;
    this.hardLimit = this.limit;
    this.window = Math.max(1, opts.window ?? 1);
    this.log = opts.log;
    this.logBodies = opts.logBodies ?? false;
    this.seq = ((opts.initialSeq ?? Math.floor(Math.random() * 256)) - 1) & 0xff;
    this.onLoss = opts.onLoss;
    this.onReply = opts.onReply;
    this.readRetries = opts.readRetries ?? 0;
  }

  /** Largest request packet an op may build (the device's limit, less a session's protection overhead). */
  get maxPacket(): number {
    return this.limit - (this.protector?.overhead ?? 0);
  }

  set maxPacket(n: number) {
    this.limit = n;
    this.hardLimit = n;
  }

  /** Largest request packet the device takes at all (a fixed-size request up to this still goes, over the preferred size). */
  get deviceMaxPacket(): number {
    return this.hardLimit - (this.protector?.overhead ?? 0);
  }

  /** Install (or remove) a secure session's protection: covered requests go wrapped from now on. */
  protect(p: Protector | null): void {
    this.protector = p;
  }

  get protectedSession(): boolean {
    return this.protector !== null;
  }

  /** The installed protection, if any (the security group's SecureChannel). */
  get protection(): Protector | null {
    return this.protector;
  }

  /** Size in bytes of the packet a request would be. */
  packetSize(body: Body): number {
    return SMP_HEADER_SIZE + encodeCbor(body).length;
  }

  /**
   * maxPacket: the size ops chunk by; window: requests in flight; hardMax: what the device accepts at all
   * (default maxPacket). A request over maxPacket but within hardMax still goes (an echo cannot be split).
   */
  setLimits(maxPacket: number, window: number, hardMax = maxPacket): void {
    this.limit = Math.min(maxPacket, hardMax);
    this.hardLimit = hardMax;
    this.window = Math.max(1, window);
    this.wake();
  }

  /** How many requests of `bytes` each can be in flight at once (the window, and the budget). */
  windowFor(bytes: number): number {
    const c = this.cost(bytes);
    return Math.max(1, Math.min(this.window, this.budget === Infinity || c <= 0 ? Infinity : Math.floor(this.budget / c)));
  }

  /** Limit what is in flight by cost (e.g. console lines) as well as by count; see `cost`. */
  setBudget(cost: (bytes: number) => number, budget: number): void {
    this.cost = cost;
    this.budget = budget;
    this.wake();
  }

  get closed(): boolean {
    return this.failure !== null;
  }

  async request(op: 0 | 2, group: number, id: number, body: Body = {}, opts: RequestOptions = {}): Promise<Body> {
    let left = opts.retries ?? (op === 0 ? this.readRetries : 0);
    let renewed = false;
    for (;;) {
      const prot = this.protector && this.protector.covers(group, id) ? this.protector : null;
      try {
        if (prot?.ready) await prot.ready();
        return await this.requestOnce(op, group, id, body, opts);
      } catch (e) {
        if (prot?.recover && !renewed && prot === this.protector && (await prot.recover(e))) {
          renewed = true;
          continue;
        }
        if (!(e instanceof SmpError && e.kind === 'timeout')) throw e;
        this.onLoss?.(`no reply to group ${group} command ${id}`);
        if (left-- <= 0 || opts.signal?.aborted) throw e;
        this.log?.({ type: 'warn', message: `${e.message}; sending it again` });
      }
    }
  }

  private async requestOnce(op: 0 | 2, group: number, id: number, body: Body, opts: RequestOptions): Promise<Body> {
    if (this.failure) throw this.failure;
    const payload = encodeCbor(body);
    const size = SMP_HEADER_SIZE + payload.length;
    const prot = this.protector && this.protector.covers(group, id) ? this.protector : null;
    if (size > this.deviceMaxPacket) {
      throw new SmpError('too-large', `request of ${size} bytes exceeds the device buffer of ${this.deviceMaxPacket} bytes (a device drops it without a reply)`);
    }
    const cost = this.cost(size + (prot?.overhead ?? 0));
    await this.acquire(cost, opts.signal);
    let seq: number;
    try {
      if (this.failure) throw this.failure;
      seq = this.nextSeq();
    } catch (e) {
      this.release(cost);
      throw e;
    }
    let packet = buildPacket({ op, version: this.version, flags: 0, group, seq, id }, payload);
    let outer = { group, id };
    let inner: Pending['inner'];
    if (prot) {
      const w = prot.wrap(packet);
      packet = buildPacket({ op: 2, version: this.version, flags: 0, group: w.group, seq, id: w.id }, encodeCbor(w.body));
      outer = { group: w.group, id: w.id };
      inner = { group, id, open: w.open };
    }
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    return new Promise<Body>((resolve, reject) => {
      const finish = () => {
        clearTimeout(p.timer);
        opts.signal?.removeEventListener('abort', onAbort);
        if (this.pending.get(seq) === p) this.pending.delete(seq);
        this.release(cost);
      };
      const onAbort = () => {
        finish();
        reject(new SmpError('closed', 'request cancelled'));
      };
      const p: Pending = {
        group: outer.group,
        id: outer.id,
        inner,
        resolve: (b) => {
          finish();
          resolve(b);
        },
        reject: (e) => {
          finish();
          reject(e);
        },
        timer: setTimeout(() => {
          p.reject(new SmpError('timeout', `no reply to group ${group} command ${id} within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.pending.set(seq, p);
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      this.log?.({ type: 'tx', op, group, id, seq, bytes: size, body: this.logBodies ? body : undefined });
      this.sendPacket(packet).catch((e: unknown) => {
        p.reject(e instanceof SmpError ? e : new SmpError('closed', `could not send: ${(e as Error)?.message ?? e}`));
      });
    });
  }

  read(group: number, id: number, body: Body = {}, opts?: RequestOptions): Promise<Body> {
    return this.request(0, group, id, body, opts);
  }

  write(group: number, id: number, body: Body = {}, opts?: RequestOptions): Promise<Body> {
    return this.request(2, group, id, body, opts);
  }

  /** Feed one decoded packet from the device. */
  receive(packet: Uint8Array): void {
    if (packet.length < SMP_HEADER_SIZE) return;
    const h = decodeHeader(packet);
    const p = this.pending.get(h.seq);
    if (!isResponseOp(h.op) || !p || p.group !== h.group || p.id !== h.id) {
      this.unmatched++;
      this.log?.({ type: 'warn', message: `unmatched reply: group ${h.group} command ${h.id} seq ${h.seq}` });
      return;
    }
    if (h.length !== packet.length - SMP_HEADER_SIZE) {
      p.reject(new SmpError('decode', `reply length field ${h.length} does not match ${packet.length - SMP_HEADER_SIZE} payload bytes`));
      return;
    }
    if (h.version === SMP_V1 && this.version !== SMP_V1) {
      this.version = SMP_V1;
      this.log?.({ type: 'info', message: 'device answers SMP v1; using v1 from now on' });
    }
    let body: unknown;
    try {
      body = h.length === 0 ? {} : decodeCborObject(packet.subarray(SMP_HEADER_SIZE));
    } catch (e) {
      p.reject(new SmpError('decode', `reply is not valid CBOR: ${(e as Error).message}`));
      return;
    }
    if (!body || typeof body !== 'object' || Array.isArray(body) || body instanceof Uint8Array) {
      p.reject(new SmpError('decode', 'reply body is not a CBOR map'));
      return;
    }
    this.log?.({ type: 'rx', op: h.op, group: h.group, id: h.id, seq: h.seq, bytes: packet.length, body: this.logBodies ? body : undefined });
    this.onReply?.();
    const err = replyError(body as Body, h.group);
    if (err) p.reject(err);
    else if (p.inner) this.openProtected(p, body as Body);
    else p.resolve(body as Body);
  }

  private openProtected(p: Pending, outer: Body): void {
    const inner = p.inner!;
    let packet: Uint8Array;
    try {
      packet = inner.open(outer);
    } catch (e) {
      p.reject(e instanceof SmpError ? e : new SmpError('decode', `protected reply refused: ${(e as Error).message}`));
      return;
    }
    const h = packet.length >= SMP_HEADER_SIZE ? decodeHeader(packet) : null;
    if (!h || !isResponseOp(h.op) || h.group !== inner.group || h.id !== inner.id || h.length !== packet.length - SMP_HEADER_SIZE) {
      p.reject(new SmpError('mismatch', 'protected reply is for another command'));
      return;
    }
    let body: unknown;
    try {
      body = h.length === 0 ? {} : decodeCborObject(packet.subarray(SMP_HEADER_SIZE));
    } catch (e) {
      p.reject(new SmpError('decode', `protected reply is not valid CBOR: ${(e as Error).message}`));
      return;
    }
    if (!body || typeof body !== 'object' || Array.isArray(body) || body instanceof Uint8Array) {
      p.reject(new SmpError('decode', 'protected reply body is not a CBOR map'));
      return;
    }
    const err = replyError(body as Body, h.group);
    if (err) p.reject(err);
    else {
      this.protector?.after?.(inner.group, inner.id);
      p.resolve(body as Body);
    }
  }

  /** The link is gone: fail everything waiting, now and later. */
  fail(reason: string): void {
    if (this.failure) return;
    this.failure = new SmpError('closed', reason);
    for (const p of [...this.pending.values()]) p.reject(this.failure);
    this.pending.clear();
    for (const w of this.waiters.splice(0)) w();
  }

  private nextSeq(): number {
    for (let i = 0; i < 256; i++) {
      this.seq = (this.seq + 1) & 0xff;
      if (!this.pending.has(this.seq)) return this.seq;
    }
    throw new SmpError('closed', 'no free sequence number');
  }

  /** Room for one more request of `cost`: under the window, and within the budget unless nothing is in flight. */
  private fits(cost: number): boolean {
    return this.inFlight === 0 || (this.inFlight < this.window && this.inFlightCost + cost <= this.budget);
  }

  private acquire(cost: number, signal?: AbortSignal): Promise<void> {
    if (this.waiters.length === 0 && this.fits(cost)) {
      this.inFlight++;
      this.inFlightCost += cost;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const w = Object.assign(() => {
        signal?.removeEventListener('abort', onAbort);
        if (this.failure) return reject(this.failure);
        this.inFlight++;
        this.inFlightCost += cost;
        resolve();
      }, { cost });
      const onAbort = () => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new SmpError('closed', 'request cancelled'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(w);
    });
  }

  private release(cost: number): void {
    this.inFlight--;
    this.inFlightCost -= cost;
    this.wake();
  }

  private wake(): void {
    // in order: a request waits behind those queued before it
    while (this.waiters.length && (this.failure || this.fits(this.waiters[0].cost))) this.waiters.shift()!();
  }
}

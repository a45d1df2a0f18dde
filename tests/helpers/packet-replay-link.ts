/**
 * A Link that plays back a transcript whose requests are kept as decoded
 * packets (tx events) and whose device bytes are kept verbatim (rx chunks):
 * what is written to it is decoded through our framing and each request is
 * compared STRUCTURALLY with the recorded one by a caller-given check (e.g.
 * upload data compared by length and SHA-256, because the recorded image
 * bytes are not kept). After each matching request, the rx chunks recorded
 * after it (up to the next request) are delivered at once: timing is not
 * reproduced, so a request the device never answered times out at the
 * client's own timeout.
 */
import type { Link, LinkClosed } from '../../src/core/link/link.ts';
import { decodeCborObject } from '../../src/core/base/cbor.ts';
import { createDecoder, type Framing, type PacketDecoder } from '../../src/core/smp/framing.ts';
import { SMP_HEADER_SIZE, decodeHeader, type SmpHeader } from '../../src/core/smp/header.ts';
import { fromHex } from '../../src/core/base/bytes.ts';

export interface RecordedRequest {
  dir: 'tx';
  header: SmpHeader;
  body: Record<string, unknown>;
}
export type ReplayEvent = RecordedRequest | { dir: 'rx'; hex: string };

/** Returns why `got` is not the recorded request, or undefined when it is. */
export type RequestCheck = (got: { header: SmpHeader; body: Record<string, unknown> }, want: RecordedRequest, index: number) => string | undefined;

export class PacketReplayLink implements Link {
  readonly label: string;
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly closed: Promise<LinkClosed>;
  /** First divergence of our requests from the recording, if any. */
  mismatch: string | undefined;
  /** Requests matched so far. */
  matched = 0;
  private i = 0;
  private outcome: LinkClosed | undefined;
  private resolveClosed!: (c: LinkClosed) => void;
  private readCtl!: ReadableStreamDefaultController<Uint8Array>;
  private writeCtl!: WritableStreamDefaultController;
  private readonly decoder: PacketDecoder;
  private readonly undecodable: string[] = [];

  constructor(
    private readonly events: ReplayEvent[],
    framing: Framing,
    private readonly check: RequestCheck,
    label = 'packet replay',
  ) {
    this.label = label;
    this.closed = new Promise((r) => (this.resolveClosed = r));
    this.decoder = createDecoder(framing, (p) => this.onRequest(p), { acceptOps: [0, 2], onDrop: (r) => this.undecodable.push(r) });
    this.readable = new ReadableStream<Uint8Array>({ start: (c) => void (this.readCtl = c) });
    this.writable = new WritableStream<Uint8Array>({
      start: (c) => void (this.writeCtl = c),
      write: (chunk) => this.onWrite(chunk),
    });
    queueMicrotask(() => this.release());
  }

  /** Every recorded event has been consumed. */
  get finished(): boolean {
    return this.i >= this.events.length;
  }

  get position(): string {
    return `event ${this.i} of ${this.events.length}, ${this.matched} requests matched`;
  }

  private release(): void {
    while (!this.outcome && this.i < this.events.length && this.events[this.i].dir === 'rx') {
      this.readCtl.enqueue(fromHex((this.events[this.i] as { hex: string }).hex));
      this.i++;
    }
  }

  private onWrite(data: Uint8Array): void {
    if (this.outcome) throw new Error('replay link is closed');
    this.decoder.push(data);
    if (this.undecodable.length) this.fail(`our request did not decode through the framing: ${this.undecodable[0]}`);
    if (this.mismatch) throw new Error(this.mismatch);
  }

  private onRequest(p: Uint8Array): void {
    if (this.mismatch) return;
    const header = decodeHeader(p);
    const body = header.length === 0 ? {} : (decodeCborObject(p.subarray(SMP_HEADER_SIZE)) as Record<string, unknown>);
    const want = this.events[this.i];
    if (!want) return this.fail(`request ${this.matched + 1} (group ${header.group} id ${header.id} seq ${header.seq}) was never recorded: the recording ended`);
    if (want.dir !== 'tx') return this.fail(`internal: rx pending at a request`);
    const why = this.check({ header, body }, want, this.matched);
    if (why) return this.fail(`request ${this.matched + 1} (recorded group ${want.header.group} id ${want.header.id} seq ${want.header.seq}) differs: ${why}`);
    this.matched++;
    this.i++;
    this.release();
  }

  private fail(message: string): void {
    this.mismatch ??= message;
    this.finish({ reason: 'error', message });
  }

  private finish(c: LinkClosed): void {
    if (this.outcome) return;
    this.outcome = c;
    try {
      this.readCtl.close();
    } catch {
      /* cancelled */
    }
    try {
      this.writeCtl.error(new Error(c.reason === 'closed' ? 'replay link closed' : `replay link: ${c.message}`));
    } catch {
      /* already errored */
    }
    this.resolveClosed(c);
  }

  async close(): Promise<void> {
    this.finish({ reason: 'closed' });
  }
}

/**
 * UI state for identity, attestation and the event log (Svelte 5 runes).
 * Runs the core ops on a session and keeps their latest state for the
 * components to render; records finished operations through record.ts when
 * a store and a technician signer are given. No protocol logic here.
 */
import type { SmpSession } from '../../core/groups/session.ts';
import type { TrustBundle } from '../../core/trust/bundle.ts';
import { type DeviceLabel, type IdentifyResult, type IdentifyState, identifyDevice } from '../../core/ops/identification/identify.ts';
import { type AttestState, type EventsState, attestDevice, readSecurityEvents } from '../../core/ops/state-awareness/attest.ts';
import { type RecordContext, inventoryLookup, recordAttestation, recordIdentification } from '../../core/ops/record.ts';

export class IdentityController {
  identifyState = $state<IdentifyState | null>(null);
  attestState = $state<AttestState | null>(null);
  eventsState = $state<EventsState | null>(null);
  /** Problem saving to the local records (the operation itself completed). */
  recordProblem = $state('');
  /** The last verified identity: attestation needs its key. */
  verified = $state<IdentifyResult | null>(null);
  busy = $state<'identify' | 'attest' | 'events' | null>(null);

  /** Pass the store and signer to record each operation (audit + inventory). */
  constructor(private readonly recorder?: () => RecordContext | null) {}

  reset(): void {
    this.identifyState = null;
    this.attestState = null;
    this.eventsState = null;
    this.verified = null;
    this.recordProblem = '';
  }

  private async save(fn: (ctx: RecordContext) => Promise<unknown>): Promise<void> {
    const ctx = this.recorder?.();
    if (!ctx) return;
    try {
      await fn(ctx);
      this.recordProblem = '';
    } catch (e) {
      this.recordProblem = `Not saved to the local records: ${e instanceof Error ? e.message : String(e)}`;
    }
  }

  async identify(session: SmpSession, bundle: TrustBundle, label?: DeviceLabel): Promise<void> {
    if (this.busy) return;
    this.busy = 'identify';
    this.attestState = null;
    this.verified = null;
    try {
      const rec = this.recorder?.();
      for await (const st of identifyDevice(session, { bundle, label, inventory: rec ? inventoryLookup(rec.db) : undefined })) {
        this.identifyState = st;
        if (st.kind === 'done') {
          if (st.identity.verified) this.verified = st.identity;
          await this.save((ctx) => recordIdentification(ctx, st.identity));
        }
      }
    } catch (e) {
      this.identifyState = { kind: 'error', message: e instanceof Error ? e.message : String(e) };
    } finally {
      this.busy = null;
    }
  }

  async attest(session: SmpSession, bundle: TrustBundle): Promise<void> {
    const id = this.verified;
    if (this.busy || !id?.devicePublicKey) return;
    this.busy = 'attest';
    try {
      for await (const st of attestDevice(session, { bundle, devicePublicKey: id.devicePublicKey, groupId: id.groupId })) {
        this.attestState = st;
        if (st.kind === 'done') {
          const p = id.presented;
          await this.save((ctx) =>
            recordAttestation(ctx, { device: { serial: p.serial, devicePublicKey: p.devicePublicKey, ueid: p.ueid, mac: p.mac, devEui: p.devEui }, appraisal: st.appraisal, nonce: st.nonce, evidence: st.evidence }),
          );
        }
      }
    } catch (e) {
      this.attestState = { kind: 'error', message: e instanceof Error ? e.message : String(e) };
    } finally {
      this.busy = null;
    }
  }

  async events(session: SmpSession, from = 0): Promise<void> {
    if (this.busy) return;
    this.busy = 'events';
    try {
      for await (const st of readSecurityEvents(session, { from, groupId: this.verified?.groupId })) this.eventsState = st;
    } catch (e) {
      this.eventsState = { kind: 'error', message: e instanceof Error ? e.message : String(e) };
    } finally {
      this.busy = null;
    }
  }
}

/**
 * UI state for identity, attestation and the event log (Svelte 5 runes).
 * Runs the core ops on a session and keeps their latest state for the
 * components to render; records finished operations through record.ts when
 * a store and a technician signer are given. No protocol logic here.
 */
import type { SmpSession } from '../../core/groups/session.ts';
import type { SecurityGroup } from '../../core/groups/security.ts';
import type { TrustBundle } from '../../core/trust/bundle.ts';
import { type DeviceLabel, type IdentifyResult, type IdentifyState, identifyDevice } from '../../core/ops/identification/identify.ts';
import { type AttestState, type EventsState, attestDevice, readSecurityEvents } from '../../core/ops/state-awareness/attest.ts';
import { isOutcome, thrownFailure } from '../../core/ops/outcome.ts';
import { type RecordContext, attestRecord, eventsRecord, identifyRecord, inventoryLookup } from '../../core/ops/record.ts';
import { commitRecord, type RecordPlan } from '../../core/ops/record-plan.ts';
import type { DeviceIdentifiersInput } from '../../core/store/ids.ts';

/** Where records go: the store and signer, and what is known of the device (for entries of runs that did not identify it). */
export type IdentityRecorder = () => (RecordContext & { device?: DeviceIdentifiersInput }) | null;

export class IdentityController {
  identifyState = $state<IdentifyState | null>(null);
  attestState = $state<AttestState | null>(null);
  eventsState = $state<EventsState | null>(null);
  /** Problem saving to the local records (the operation itself completed). */
  recordProblem = $state('');
  /** The last verified identity: attestation needs its key. */
  verified = $state<IdentifyResult | null>(null);
  busy = $state<'identify' | 'attest' | 'events' | null>(null);
  /** Why the identity was checked again without being asked (the device restarted: a new session). */
  againNote = $state('');
  /** A DevEUI the device took after this identification (a rotation, hex); cleared by the next one. */
  rotatedDevEui = $state('');

  /** Pass the store and signer to record each operation (audit + inventory). */
  constructor(private readonly recorder?: IdentityRecorder) {}

  reset(): void {
    this.identifyState = null;
    this.attestState = null;
    this.eventsState = null;
    this.verified = null;
    this.recordProblem = '';
    this.againNote = '';
    this.rotatedDevEui = '';
  }

  /** Every finished run is recorded (the plan comes from core: no audit policy here). */
  private async save(plan: (ctx: RecordContext & { device?: DeviceIdentifiersInput }) => RecordPlan): Promise<void> {
    const ctx = this.recorder?.();
    if (!ctx) return;
    try {
      await commitRecord(ctx, plan(ctx));
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
    this.rotatedDevEui = '';
    try {
      const rec = this.recorder?.();
      for await (const st of identifyDevice(session, { bundle, label, inventory: rec ? inventoryLookup(rec.db) : undefined })) {
        this.identifyState = st;
        if (st.kind === 'done' && st.result.verified) this.verified = st.result;
        if (isOutcome(st)) await this.save((ctx) => identifyRecord(st, { device: ctx.device, time: ctx.now }));
      }
    } catch (e) {
      this.identifyState = thrownFailure(e);
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
        if (isOutcome(st)) {
          const p = id.presented;
          await this.save((ctx) => attestRecord(st, { device: { serial: p.serial, devicePublicKey: p.devicePublicKey, ueid: p.ueid, mac: p.mac, devEui: p.devEui }, time: ctx.now }));
        }
      }
    } catch (e) {
      this.attestState = thrownFailure(e);
    } finally {
      this.busy = null;
    }
  }

  /** Read the event log; `authenticate` logs the technician in first (the device shows its log only inside a session). */
  async events(session: SmpSession, from = 0, authenticate?: (g: SecurityGroup) => Promise<unknown>): Promise<void> {
    if (this.busy) return;
    this.busy = 'events';
    try {
      for await (const st of readSecurityEvents(session, { from, groupId: this.verified?.groupId, authenticate })) {
        this.eventsState = st;
        if (isOutcome(st)) await this.save((ctx) => eventsRecord(st, { device: ctx.device, time: ctx.now }));
      }
    } catch (e) {
      this.eventsState = thrownFailure(e);
    } finally {
      this.busy = null;
    }
  }
}

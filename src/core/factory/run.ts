/**
 * One unit's run on a factory station, as an op (outcome.ts): an async
 * generator of UnitState progress states that ends in ONE Outcome<UnitResult>.
 *
 *   const op = runUnit({ port, connect, profile, image, bundle, manufacturer, station, allocator, record });
 *   for await (const s of op) {
 *     if (s.kind === 'step') show(s.step, s.progress, s.note);   // progress 0..1 within the step
 *     else if (s.kind === 'step-done') mark(s.step, s.outcome);  // every step ends with one of these
 *     else outcome(s);                                          // done | failed | cancelled | unsupported
 *   }
 *
 * Steps, in order (UNIT_STEPS):
 *   connect    open the session (opts.connect; also used to reconnect after resets)
 *   info       what the unit runs: application or MCUboot serial recovery (a blank board), its slots
 *   flash      upload the profile's image (verified by the update op's preflight against the
 *              profile's signing keys and digest) in application mode, or through serial recovery;
 *              skipped when the unit already runs the profile's image, confirmed
 *   test-boot  reset into the new image (a test boot in application mode); echo when the profile asks
 *   confirm    make the running image permanent, checked
 *   provision  provisionIdentity over the wire: identifiers are allocated ONLY after the device proved
 *              possession of its new keys, and committed 'provisioned' once it stored and read back
 *              the certificate ('failed' otherwise: never reissued). A unit that is already provisioned
 *              by this station's manufacturer key under this profile's model (a retry) keeps the
 *              identity it has: nothing new is allocated (it proves it holds the certified key).
 *              Chip UIDs: an offer whose chip UID this station already certified for another key
 *              (its journal, its control log) is refused before anything is allocated
 *              (`duplicate-uid`: a clone or a reused board), and so is a retry that finds a unit
 *              holding a certificate for a UID another key holds meanwhile (identifiers.ts).
 *   configure  apply the profile's owner-signed factory configuration (technician login with the
 *              station credential), then set the profile's interface states
 *   attest     the attestation must appraise 'trusted' against the profile's image as the only
 *              reference measurement, and its measurement, configuration digest and interfaces must
 *              be the profile's
 *   label      the label data (serial, model, DevEUI, MAC, key fingerprint), handed to opts.label
 *   record     the control log entry (control-log.ts) to opts.record (the station's signed records log)
 *
 * Every step's outcome and time go into UnitResult.steps (and the control record). A failed unit
 * ends `failed` with `details: UnitFailureDetails` (step, code, the record as written); the failed
 * unit is recorded too (a failed control record), so the log holds every unit the line touched.
 * Retrying a failed unit (runUnit again on the same device) is safe: identifiers are never
 * allocated twice for a unit that holds one, and never reissued after a failure.
 *
 * `hooks.beforeStep(step)` is called before each step and each provisioning sub-step
 * ('provision:begin', 'provision:install', ...): tests inject unplugs and resets there.
 */
import { type AuditInput } from '../store/audit.ts';
import { equalPresentBytes, toHex } from '../base/bytes.ts';
import { SecurityGroup, popMessage } from '../groups/security.ts';
import { ed25519Verify } from '../trust/ed25519.ts';
import type { SmpSession } from '../groups/session.ts';
import { echo, reset } from '../groups/os.ts';
import { readState, writeState } from '../groups/image.ts';
import { SmpError } from '../smp/errors.ts';
import type { TrustBundle } from '../trust/bundle.ts';
import { keyId } from '../trust/keys.ts';
import type { Signer } from '../trust/signer.ts';
import { verifyIdentity } from '../trust/identity.ts';
import { sha256 } from '@noble/hashes/sha2.js';
import { authenticateTechnician } from '../ops/access/login.ts';
import { setInterfaces } from '../ops/access/interfaces.ts';
import { applySignedConfig } from '../ops/configuration/apply.ts';
import { readSigned } from '../ops/configuration/read.ts';
import { findSecurityGroup } from '../ops/identification/identify.ts';
import { type DeviceInfo, readDeviceInfo } from '../ops/identification/info.ts';
import { attestDevice } from '../ops/state-awareness/attest.ts';
import { type UpdateOptions, updateFirmware } from '../ops/update/update.ts';
import { sleep } from '../ops/update/engine.ts';
import { type Failed, type Op, type Outcome, because, cancellableSession, contract, done, failed, reasonOf, runOp } from '../ops/outcome.ts';
import { type AllocatedIds, AllocatorError, type IdAllocator } from './identifiers.ts';
import { ProvisionError, type ProvisionResult, chipClaim, provisionIdentity } from './provision.ts';
import type { VerifiedProfile } from './profile.ts';
import { type LabelData, checkLabelData, keyFingerprint } from './label.ts';
import { type UnitControlRecord, type UnitStepRecord, controlEntry } from './control-log.ts';

export const UNIT_STEPS = ['connect', 'info', 'flash', 'test-boot', 'confirm', 'provision', 'configure', 'attest', 'label', 'record'] as const;
export type UnitStep = (typeof UNIT_STEPS)[number];

/** Progress of one unit. */
export type UnitProgress =
  /** A step is under way; `progress` 0..1 when the step can tell (flash), `note` in words. */
  | { kind: 'step'; step: UnitStep; progress?: number; note?: string }
  /** A step ended: its outcome and how long it took. */
  | { kind: 'step-done'; step: UnitStep; outcome: UnitStepRecord['outcome']; ms: number; note?: string }
  /** The unit's identifiers are known (allocated, or kept from an earlier run). */
  | { kind: 'identified'; serial: string; devEui?: string; mac?: string; kept: boolean };

export type UnitFailure =
  | 'connect'
  | 'info'
  | 'flash'
  | 'test-boot'
  | 'confirm'
  | 'provision'
  | 'identifiers'
  | 'configure'
  | 'attest'
  | 'label'
  | 'record'
  | 'profile';

export interface UnitResult {
  port: string;
  serial: string;
  devEui?: string;
  mac?: string;
  /** Hex. */
  ueid: string;
  devicePublicKey: string;
  certificateDigest: string;
  firmwareDigest: string;
  configSequence?: number;
  label: LabelData;
  /** The identity was kept from an earlier (interrupted) run of this unit. */
  kept: boolean;
  steps: UnitStepRecord[];
  /** What was recorded (the control log entry's details). */
  record: UnitControlRecord;
}

export interface UnitFailureDetails {
  step: UnitStep;
  /** The underlying op's or check's code. */
  cause: string;
  steps: UnitStepRecord[];
  /** The failed unit's control record, when it could be written; undefined when recording failed too. */
  record?: UnitControlRecord;
  /** Identifiers tied to this unit (committed provisioned or failed); a retry never reissues them. */
  serial?: string;
}

export type UnitState = UnitProgress | Outcome<UnitResult, UnitFailure, UnitFailureDetails>;

export interface RunUnitOptions {
  /** Where the unit is (port name): in every record and allocation. */
  port: string;
  /** Open a (new) session to the unit; called at the start and after each reset. */
  connect: () => Promise<SmpSession>;
  /** The VERIFIED station profile. */
  profile: VerifiedProfile;
  /** The signed image the profile names (its hash TLV must be profile.firmware[0].sha256). */
  image: Uint8Array;
  /** The owner's verified trust bundle (configuration signatures, manufacturer and firmware anchors). */
  bundle: TrustBundle;
  /** The manufacturer key (an HSM or a key file): issues the identity certificates. */
  manufacturer: Signer;
  /** The station's own key and its owner-signed technician credential (profile.stationCredential when absent). */
  station: { signer: Signer; credential?: Uint8Array };
  /** Shared by every port of the station. */
  allocator: IdAllocator;
  /** Append the unit's control log entry (signed with the station key); must be durable when it resolves. */
  record: (entry: AuditInput) => Promise<void>;
  /** Print / store the unit's label. */
  label?: (data: LabelData) => Promise<void>;
  signal?: AbortSignal;
  now?: () => number;
  /** Update op tuning (timeouts, settle times). */
  update?: Pick<UpdateOptions, 'bootTimeoutMs' | 'resetSettleMs' | 'firstChunkTimeoutMs' | 'maxStalls'>;
  hooks?: { beforeStep?: (step: UnitStep | `provision:${string}`) => void | Promise<void> };
}

class StepFailure extends Error {
  constructor(
    readonly code: UnitFailure,
    readonly cause_: string,
    readonly reason: string,
    readonly retryable: boolean,
  ) {
    super(reason);
  }
}

const isLink = (e: unknown) => e instanceof SmpError && (e.kind === 'closed' || e.kind === 'timeout');

/** One unit's run (see the module comment). */
export function runUnit(opts: RunUnitOptions): Op<UnitProgress, UnitResult, UnitFailure, UnitFailureDetails> {
  return contract(unitBody(opts), { signal: opts.signal });
}

/** Run one unit to its end; every state to onState. */
export function runUnitToEnd(opts: RunUnitOptions, onState?: (s: UnitState) => void): Promise<Outcome<UnitResult, UnitFailure, UnitFailureDetails>> {
  return runOp<UnitState>(runUnit(opts), { onState }) as Promise<Outcome<UnitResult, UnitFailure, UnitFailureDetails>>;
}

async function* unitBody(opts: RunUnitOptions): AsyncGenerator<UnitState> {
  const { profile, signal } = opts;
  const now = opts.now ?? Date.now;
  const fw = profile.firmware[0];
  const steps: UnitStepRecord[] = [];
  const rec: UnitControlRecord = { port: opts.port, verdict: 'failed', profileDigest: toHex(profile.digest), model: profile.model, steps };
  let session: SmpSession | undefined;
  /** The session the station has logged in on (a reconnect needs a new login). */
  let loggedInOn: SmpSession | undefined;
  let step: UnitStep = 'connect';
  let t0 = performance.now();
  const begin = async (s: UnitStep, note?: string): Promise<UnitState> => {
    step = s;
    t0 = performance.now();
    await opts.hooks?.beforeStep?.(s);
    return { kind: 'step', step: s, ...(note ? { note } : {}) };
  };
  const end = (outcome: UnitStepRecord['outcome'], note?: string): UnitState => {
    const ms = Math.round(performance.now() - t0);
    steps.push({ step, outcome, ms });
    return { kind: 'step-done', step, outcome, ms, ...(note ? { note } : {}) };
  };
  const skip = (s: UnitStep, note: string): UnitState => {
    steps.push({ step: s, outcome: 'skipped', ms: 0 });
    return { kind: 'step-done', step: s, outcome: 'skipped', ms: 0, note };
  };
  const reconnect = async (): Promise<SmpSession> => {
    await session?.close().catch(() => {});
    session = undefined;
    const deadline = Date.now() + (opts.update?.bootTimeoutMs ?? 30000);
    let last: unknown;
    while (Date.now() < deadline) {
      if (signal?.aborted) throw new SmpError('closed', 'cancelled');
      try {
        session = cancellableSession(await opts.connect(), signal);
        return session;
      } catch (e) {
        last = e;
        await sleep(200, signal).catch(() => {});
      }
    }
    throw new StepFailure(step === 'connect' ? 'connect' : (step as UnitFailure), 'no-return', `the unit did not come back: ${reasonOf(last)}`, true);
  };

  try {
    if (!fw || profile.firmware.length !== 1) throw new StepFailure('profile', 'firmware', 'the station runs profiles with exactly one firmware image', false);

    // ---- connect
    yield await begin('connect');
    try {
      session = cancellableSession(await opts.connect(), signal);
    } catch (e) {
      throw new StepFailure('connect', 'link', because('could not open the unit', e), true);
    }
    yield end('done');

    // ---- info
    yield await begin('info');
    const io = await runOp(readDeviceInfo(session, { signal }));
    if (io.kind !== 'done') throw new StepFailure('connect', io.kind === 'failed' ? io.code : io.kind, because('could not read what the unit runs', io.reason), true);
    const info: DeviceInfo = io.result;
    if (!info.slots && info.mode === 'application') {
      // a unit locked by an earlier run of this line (interfaces authenticated): log in, then read its slots
      info.slots = await lockedSlots(session);
    }
    const running = info.slots?.find((s) => s.active);
    const hasImage = info.mode === 'application' && running && equalPresentBytes(running.hash, fw.sha256);
    yield end('done', info.mode === 'serial-recovery' ? 'MCUboot serial recovery (a blank board)' : `application ${running?.version ?? '?'}`);

    // ---- flash, test boot, confirm
    if (hasImage && running.confirmed) {
      yield skip('flash', `already runs ${fw.version}`);
      yield skip('test-boot', `already runs ${fw.version}`);
      yield skip('confirm', 'already confirmed');
    } else if (hasImage) {
      yield skip('flash', `already runs ${fw.version} (unconfirmed)`);
      yield skip('test-boot', 'already booted');
      yield* confirmStep();
    } else {
      yield await begin('flash', info.mode === 'serial-recovery' ? 'through MCUboot serial recovery' : undefined);
      const recovery = info.mode === 'serial-recovery';
      const op = updateFirmware(session, opts.image, {
        signal,
        trustedKeys: fw.signingKeys,
        confirm: 'test-only',
        reconnect,
        ...opts.update,
      });
      let inTest = false;
      let upd: Outcome<unknown> | undefined;
      for await (const u of op) {
        if (u.kind === 'preflight' && u.report.image.hash && !equalPresentBytes(u.report.image.hash, fw.sha256)) {
          throw new StepFailure('profile', 'image', `the image given is ${u.report.image.version ?? '?'} (${toHex(u.report.image.hash).slice(0, 16)}…), the profile names ${fw.version} (${toHex(fw.sha256).slice(0, 16)}…)`, false);
        }
        if (u.kind === 'uploading') yield { kind: 'step', step: 'flash', progress: u.total ? u.sent / u.total : 0 };
        else if (!inTest && (u.kind === 'resetting' || u.kind === 'testing')) {
          yield end('done');
          inTest = true;
          yield await begin('test-boot');
        } else if (u.kind === 'done' || u.kind === 'failed' || u.kind === 'cancelled' || u.kind === 'unsupported') upd = u as Outcome<unknown>;
      }
      if (!upd || upd.kind !== 'done') {
        const f = upd as Failed | undefined;
        throw new StepFailure(inTest ? 'test-boot' : 'flash', f?.kind === 'failed' ? f.code : (upd?.kind ?? 'internal'), upd && 'reason' in upd ? upd.reason : 'the update ended without an outcome', f?.retryable ?? true);
      }
      session = await currentSession();
      if (recovery) {
        // serial recovery wrote the primary slot; boot it
        yield end('done');
        yield await begin('test-boot');
        try {
          await reset(session.client, { timeoutMs: 2000 });
        } catch (e) {
          if (!isLink(e)) throw new StepFailure('test-boot', 'reset', because('the bootloader refused to reset', e), true);
        }
        await sleep(opts.update?.resetSettleMs ?? 500, signal);
        await reconnect();
      }
      const slots = await bootedSlots();
      const act = slots.find((s) => s.active);
      if (!act || !equalPresentBytes(act.hash, fw.sha256)) {
        throw new StepFailure('test-boot', 'not-booted', `after reset the unit runs ${act ? act.version : 'no image it reports'}, not the profile's ${fw.version}`, true);
      }
      if (profile.tests.echo) {
        const probe = `fieldbench ${opts.port}`;
        const back = await echo(session.client, probe);
        if (back !== probe) throw new StepFailure('test-boot', 'echo', `the echo came back as ${JSON.stringify(back)}`, true);
      }
      yield end('done', profile.tests.echo ? 'booted, echo answered' : 'booted');
      yield* confirmStep();
    }
    rec.firmwareDigest = toHex(fw.sha256);

    // ---- provision
    yield await begin('provision');
    const g = await findSecurityGroup(session);
    if (!g) throw new StepFailure('provision', 'unsupported', 'the unit has no security group: it cannot be given an identity', false);
    const prov = yield* provisionStep(g);
    Object.assign(rec, {
      serial: prov.serial,
      ...(prov.devEui ? { devEui: prov.devEui } : {}),
      ...(prov.mac ? { mac: prov.mac } : {}),
      ueid: toHex(prov.chipUid),
      devicePublicKey: toHex(prov.devicePublicKey),
      certificateDigest: toHex(prov.certificateDigest),
    });
    yield end('done', prov.kept ? `kept ${prov.serial} from an earlier run` : prov.serial);

    // ---- configure
    yield await begin('configure');
    const identity = await g.identity();
    const credential = opts.station.credential ?? profile.stationCredential;
    const login = async (grp: SecurityGroup) => {
      if (!credential) throw new Error('the profile names no station credential, so the station cannot log in to the unit');
      if (loggedInOn && loggedInOn === session) return {}; // one login per connection: the secure session holds
      const r = await authenticateTechnician(grp, identity.devicePublicKey, credential, (m) => opts.station.signer.sign(m));
      loggedInOn = session;
      return { bundlePushed: r.bundlePushed };
    };
    // A retry finds the factory configuration already there; the unit shows it only inside the station's session.
    const held = profile.configuration ? (await login(g), await readSigned(g)) : undefined;
    const cfgDigest = profile.configuration ? sha256(profile.configuration) : undefined;
    if (held?.digest && cfgDigest && toHex(held.digest) === toHex(cfgDigest)) {
      rec.configSequence = held.sequence; // a retry: the unit already holds the factory configuration
    } else if (profile.configuration) {
      const o = await runOp(
        applySignedConfig(session, profile.configuration, { bundle: opts.bundle, deviceIdentity: identity, authenticate: login, backup: async () => {}, group: g, signal, now: now() }),
      );
      if (o.kind !== 'done') throw new StepFailure('configure', o.kind === 'failed' ? o.code : o.kind, because('the factory configuration was not applied', o.reason), o.kind === 'failed' ? o.retryable : false);
      rec.configSequence = o.result.sequence;
    }
    const wanted = Object.entries(profile.tests.interfaces).map(([name, to]) => ({ name, state: to }));
    if (wanted.length) {
      const o = await runOp(setInterfaces(session, wanted as never, { authenticate: login, group: g, signal }));
      if (o.kind !== 'done') throw new StepFailure('configure', o.kind === 'failed' ? o.code : o.kind, because('the interface states were not set', o.reason), o.kind === 'failed' ? o.retryable : false);
    }
    yield end('done', rec.configSequence !== undefined ? `configuration #${rec.configSequence}` : 'no configuration in the profile');

    // ---- attest
    yield await begin('attest');
    const refs = fw.signingKeys.map((k) => ({ model: profile.model, version: fw.version, sha256: fw.sha256, securityCounter: fw.securityCounter, signerKid: keyId(k) }));
    const attBundle: TrustBundle = { ...opts.bundle, firmware: refs, configurations: profile.configuration ? [sha256(profile.configuration)] : [] };
    const ao = await runOp(attestDevice(session, { bundle: attBundle, devicePublicKey: identity.devicePublicKey, groupId: g.id, signal, now: now() }));
    if (ao.kind !== 'done') throw new StepFailure('attest', ao.kind === 'failed' ? ao.code : ao.kind, because('no attestation', ao.reason), ao.kind === 'failed' ? ao.retryable : false);
    const ap = ao.result.appraisal;
    rec.attestation = ap.verdict;
    if (ap.verdict !== 'trusted') {
      const why = ap.reasons.filter((r) => r.result !== 'pass').map((r) => r.detail).join('; ');
      throw new StepFailure('attest', ap.verdict, `the attestation is ${ap.verdict}${why ? `: ${why}` : ''}`, false);
    }
    const claims = ap.claims as { softwareComponents?: { measurementValue: Uint8Array }[]; configDigest?: Uint8Array; interfaces?: Record<string, string> } | null;
    const measured = claims?.softwareComponents?.map((c) => toHex(c.measurementValue)) ?? [];
    if (!measured.includes(toHex(fw.sha256))) {
      rec.attestation = 'untrusted';
      throw new StepFailure('attest', 'measurement', `the unit measures ${measured.map((m) => m.slice(0, 16) + '…').join(', ') || 'nothing'}, not the profile's image ${toHex(fw.sha256).slice(0, 16)}…`, false);
    }
    if (profile.configuration && (!claims?.configDigest || toHex(claims.configDigest) !== toHex(sha256(profile.configuration)))) {
      rec.attestation = 'untrusted';
      throw new StepFailure('attest', 'configuration', 'the unit attests another configuration than the profile\'s', false);
    }
    for (const { name, state } of wanted) {
      if (claims?.interfaces?.[name] !== state) {
        rec.attestation = 'untrusted';
        throw new StepFailure('attest', 'interfaces', `the unit attests interface ${name} ${claims?.interfaces?.[name] ?? 'absent'}, the profile wants ${state}`, false);
      }
    }
    yield end('done', 'trusted');

    // ---- label
    yield await begin('label');
    let label: LabelData;
    try {
      label = checkLabelData({ serial: prov.serial, model: profile.model, ...(prov.devEui ? { devEui: prov.devEui } : {}), ...(prov.mac ? { mac: prov.mac } : {}), keyFingerprint: keyFingerprint(prov.devicePublicKey) });
      await opts.label?.(label);
    } catch (e) {
      throw new StepFailure('label', 'label', because('the label could not be made', e), true);
    }
    yield end('done');

    // ---- record
    yield await begin('record');
    steps.push({ step: 'record', outcome: 'done', ms: 0 });
    rec.verdict = 'provisioned';
    const written: UnitControlRecord = JSON.parse(JSON.stringify(rec));
    try {
      await opts.record(controlEntry(written, now()));
    } catch (e) {
      steps.pop();
      rec.verdict = 'failed';
      throw new StepFailure('record', 'record', because('the control log entry was not written', e), true);
    }
    const ms = Math.round(performance.now() - t0);
    written.steps[written.steps.length - 1].ms = ms;
    yield { kind: 'step-done', step: 'record', outcome: 'done', ms };
    yield done<UnitResult>({
      port: opts.port,
      serial: prov.serial,
      ...(prov.devEui ? { devEui: prov.devEui } : {}),
      ...(prov.mac ? { mac: prov.mac } : {}),
      ueid: rec.ueid!,
      devicePublicKey: rec.devicePublicKey!,
      certificateDigest: rec.certificateDigest!,
      firmwareDigest: rec.firmwareDigest!,
      ...(rec.configSequence !== undefined ? { configSequence: rec.configSequence } : {}),
      label,
      kept: prov.kept,
      steps: written.steps,
      record: written,
    });
  } catch (e) {
    if (signal?.aborted) throw e; // the contract: cancelled
    const sf =
      e instanceof StepFailure
        ? e
        : isLink(e)
          ? new StepFailure(step as UnitFailure, 'link', because(`the unit was lost during ${step}`, (e as Error).message), true)
          : e instanceof SmpError
            ? new StepFailure(step as UnitFailure, 'device', because(`the unit answered ${step} with an error`, e.message), true)
            : new StepFailure(step as UnitFailure, 'internal', because(`${step} failed`, e), false);
    steps.push({ step, outcome: 'failed', ms: Math.round(performance.now() - t0) });
    yield { kind: 'step-done', step, outcome: 'failed', ms: Math.round(performance.now() - t0), note: sf.reason };
    rec.verdict = 'failed';
    rec.failure = { step, code: sf.cause_, reason: sf.reason };
    if (rec.attestation === 'trusted' && (step as UnitStep) === 'attest') rec.attestation = 'untrusted';
    let recorded: UnitControlRecord | undefined = JSON.parse(JSON.stringify(rec));
    let reason = `${opts.port}: ${step} failed: ${sf.reason}`;
    try {
      await opts.record(controlEntry(recorded!, now()));
    } catch (re) {
      recorded = undefined;
      reason += `; and the failure could not be recorded (${reasonOf(re)})`;
    }
    // a lost link, a device error or a defect keep the common codes (outcome.ts); the step is in details
    const code: UnitFailure | 'link' | 'device' | 'internal' = sf.cause_ === 'link' || sf.cause_ === 'device' || sf.cause_ === 'internal' ? sf.cause_ : sf.code;
    yield failed<UnitFailure, UnitFailureDetails>(code as UnitFailure, reason, {
      retryable: sf.retryable,
      by: sf.cause_ === 'link' || sf.cause_ === 'internal' ? 'tool' : 'device',
      details: { step, cause: sf.cause_, steps: [...steps], ...(recorded ? { record: recorded } : {}), ...(rec.serial ? { serial: rec.serial } : {}) },
    });
  } finally {
    await session?.close().catch(() => {});
  }

  async function lockedSlots(s: SmpSession): Promise<DeviceInfo['slots']> {
    const grp = await findSecurityGroup(s).catch(() => null);
    const credential = opts.station.credential ?? profile.stationCredential;
    if (!grp || !credential || (await grp.provisionState()).state !== 'provisioned') return undefined;
    const id = await grp.identity();
    try {
      await authenticateTechnician(grp, id.devicePublicKey, credential, (m) => opts.station.signer.sign(m));
      loggedInOn = s;
    } catch (e) {
      if (isLink(e)) throw e;
      throw new StepFailure('connect', 'locked', because('the unit is locked and the station could not log in', e), false);
    }
    return readState(s.client, { signal });
  }

  /** The slots once the unit runs an application again (after a reset it may still be in its bootloader for a while). */
  async function bootedSlots(): Promise<Awaited<ReturnType<typeof readState>>> {
    const deadline = Date.now() + (opts.update?.bootTimeoutMs ?? 30000);
    for (;;) {
      try {
        const s = await currentSession();
        const slots = await readState(s.client, { signal });
        if (slots.some((x) => x.active) || Date.now() > deadline) return slots;
      } catch (e) {
        if (!isLink(e) || signal?.aborted || Date.now() > deadline) throw e;
        if (session?.client.closed) await reconnect();
      }
      await sleep(100, signal);
    }
  }

  async function currentSession(): Promise<SmpSession> {
    if (session && !session.client.closed) return session;
    return reconnect();
  }

  async function* confirmStep(): AsyncGenerator<UnitState, void> {
    yield await begin('confirm');
    const s = await currentSession();
    const st = await writeState(s.client, undefined, true, { signal });
    const act = st.find((x) => x.active);
    if (!act || !equalPresentBytes(act.hash, fw.sha256) || !act.confirmed) throw new StepFailure('confirm', 'unconfirmed', 'the unit does not report the profile\'s image as running and confirmed', true);
    yield end('done');
  }

  async function* provisionStep(g: SecurityGroup): AsyncGenerator<UnitState, ProvisionResult & { kept: boolean }> {
    const state = await g.provisionState();
    if (state.state === 'provisioned') {
      // A retry: keep the identity this station gave it (never allocate a second one).
      const cert = await g.certificate();
      const v = await verifyIdentity(cert, { bundle: opts.bundle, now: now(), expect: { devicePublicKey: state.devicePublicKey } });
      const mfrKid = keyId(opts.manufacturer.publicKey);
      const c = v.ok ? v.value : undefined;
      if (!c || toHex(c.issuer) !== toHex(mfrKid) || c.model !== profile.model || !state.devicePublicKey || toHex(c.devicePublicKey) !== toHex(state.devicePublicKey)) {
        throw new StepFailure('provision', 'already-provisioned', `the unit is already provisioned${c ? ` as ${c.serial}` : ''}, not by this station's manufacturer key for ${profile.model}: re-provisioning needs an owner-signed authorization`, false);
      }
      // The unit must hold the certified key (a copied certificate proves nothing); then its chip UID is
      // journaled as held by that key, or refused when another key holds it (two units, one chip UID).
      const pn = crypto.getRandomValues(new Uint8Array(32));
      const psig = await g.prove(pn);
      if (!(await ed25519Verify(psig, popMessage(pn), c.devicePublicKey))) {
        throw new StepFailure('provision', 'bad-proof', `the unit presents the certificate of ${c.serial} but cannot prove it holds its key (${toHex(keyId(c.devicePublicKey))}): a clone of that unit; not provisioned`, false);
      }
      const uid = c.ueid ?? state.chipUid;
      rec.serial = c.serial;
      rec.ueid = toHex(uid);
      rec.devicePublicKey = toHex(c.devicePublicKey);
      try {
        await opts.allocator.hold({ uid: toHex(uid), key: toHex(c.devicePublicKey), serial: c.serial, unit: opts.port });
      } catch (e) {
        if (e instanceof AllocatorError && e.code === 'duplicate-uid') throw new StepFailure('provision', 'duplicate-uid', e.message, false);
        throw new StepFailure('identifiers', e instanceof AllocatorError ? e.code : 'allocator', because('the chip UID could not be journaled', e), false);
      }
      const ids = { serial: c.serial, ...(c.devEui ? { devEui: toHex(c.devEui) } : {}), ...(c.mac ? { mac: toHex(c.mac) } : {}) };
      yield { kind: 'identified', ...ids, kept: true };
      return { ...ids, chipUid: c.ueid ?? state.chipUid, model: c.model, hwRev: c.hwRev, devicePublicKey: c.devicePublicKey, deviceEncKey: c.deviceEncKey, certificate: cert, certificateDigest: sha256(cert), reprovisioned: false, kept: true };
    }
    let allocated: AllocatedIds | undefined;
    const sub: string[] = [];
    const days = profile.identity.certValidityDays;
    try {
      const r = await provisionIdentity(g, {
        signer: opts.manufacturer,
        model: profile.model,
        notAfter: new Date(now() + days * 86400_000),
        onStep: async (s) => {
          sub.push(s);
          await opts.hooks?.beforeStep?.(`provision:${s}`);
        },
        identifiers: async (offer, ctx) => {
          try {
            allocated = await opts.allocator.allocate(`${opts.port} ${toHex(state.chipUid)}`, chipClaim(offer, ctx));
          } catch (e) {
            if (e instanceof AllocatorError && e.code === 'duplicate-uid') {
              // a clone or a reused board: refused before any identifier is allocated; the failed record names the UID and key
              rec.ueid = toHex(offer.chipUid);
              rec.devicePublicKey = toHex(offer.devicePublicKey);
              throw new StepFailure('provision', 'duplicate-uid', e.message, false);
            }
            throw new StepFailure('identifiers', e instanceof AllocatorError ? e.code : 'allocator', because('no identifiers', e), false);
          }
          return { serial: allocated.serial, ...(allocated.devEui ? { devEui: allocated.devEui } : {}), ...(allocated.mac ? { mac: allocated.mac } : {}) };
        },
      });
      await opts.allocator.commit(allocated!, 'provisioned', `${opts.port} ${toHex(r.chipUid)} ${toHex(keyId(r.devicePublicKey))}`);
      yield { kind: 'identified', serial: r.serial, ...(r.devEui ? { devEui: r.devEui } : {}), ...(r.mac ? { mac: r.mac } : {}), kept: false };
      return { ...r, kept: false };
    } catch (e) {
      if (allocated) {
        rec.serial = allocated.serial;
        if (allocated.devEui) rec.devEui = allocated.devEui;
        if (allocated.mac) rec.mac = allocated.mac;
        // Never reissued: the device may hold it (the certificate may have been stored before the link went).
        await opts.allocator.commit(allocated, 'failed', `${opts.port}: ${reasonOf(e)}`).catch(() => {});
      }
      if (e instanceof StepFailure) throw e;
      if (e instanceof ProvisionError) throw new StepFailure('provision', e.code, e.message, e.code === 'refused' || e.code === 'readback-mismatch');
      throw e;
    }
  }
}

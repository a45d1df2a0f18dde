/**
 * Update preflight: what the device runs (readDeviceFacts) and every check of
 * an MCUboot image against it and against the trust bundle (checkImage), made
 * before anything is sent.
 */
import { sha256Large } from '../../base/digest.ts';
import { type ImageSlot, type SlotInfo, isRecoveryImageList, readState, slotInfo } from '../../groups/image.ts';
import { type BootloaderInfo, MCUBOOT_MODES, bootloaderInfo, modeHasTestConfirm } from '../../groups/os.ts';
import { SmpError } from '../../smp/errors.ts';
import type { SmpSession } from '../../groups/session.ts';
import { keyId } from '../../trust/keys.ts';
import type { TrustBundle } from '../../trust/bundle.ts';
import { type ImageVerifyReport, verifyImage } from '../../trust/mcuboot/verify.ts';
import { TLV } from '../../trust/mcuboot/parse.ts';
import { parseUuid } from '../../trust/mcuboot/sign.ts';
import { equalPresentBytes, toHex } from '../../base/bytes.ts';
import { maxChunkData } from './engine.ts';

export type CheckOutcome = 'pass' | 'fail' | 'warn' | 'skip';
export type PreflightCheckName = 'format' | 'signature' | 'revocation' | 'version' | 'security-counter' | 'model' | 'slot' | 'bundle' | 'bootloader';

export interface PreflightCheck {
  name: PreflightCheckName;
  result: CheckOutcome;
  reason: string;
}

/** What the device is, as far as an update needs it. */
export interface DeviceFacts {
  slots: ImageSlot[];
  slotInfo?: SlotInfo[];
  bootloader?: BootloaderInfo;
  bufSize: number;
  bufCount: number;
  /** Largest request packet the device takes (buf_size less the framing's share); default bufSize. */
  maxPacket?: number;
  /** Why some facts could not be read. */
  unavailable: string[];
  /**
   * The device is MCUboot's serial recovery (its image list has no flags): an
   * upload writes the primary slot directly, there is no test/confirm.
   */
  serialRecovery?: boolean;
}

/** The device's model: a name (matched against bundle metadata) and/or the UUIDs images carry (imgtool --vid/--cid). */
export interface DeviceModel {
  name?: string;
  /** 16 raw bytes, a UUID string, or a name (uuid5 in the DNS namespace, as imgtool --vid). */
  vendorId?: Uint8Array | string;
  /** 16 raw bytes, a UUID string, or a name (uuid5 in the vendor namespace, as imgtool --cid). */
  classId?: Uint8Array | string;
}

export interface PreflightOptions {
  /** Raw 32-byte Ed25519 public keys of firmware signers. */
  trustedKeys: Uint8Array[];
  deviceModel?: DeviceModel;
  /** A verified trust bundle: firmware anchors, revocations, firmware metadata. */
  bundle?: TrustBundle;
  /** Unsigned images are never uploaded. */
  allowUnsigned?: false;
  /** Seconds since the epoch (bundle freshness). */
  now?: () => number;
  /** Security counter jump (new - running) above which preflight warns. */
  counterJumpWarn?: number;
}

export interface PreflightReport {
  ok: boolean;
  /** First failure's reason, or a summary. */
  reason: string;
  checks: PreflightCheck[];
  image: {
    size: number;
    version?: string;
    /** The image hash TLV (what the device reports as the slot's hash). */
    hash?: Uint8Array;
    /** SHA-256 of the whole file (the upload's resume key). */
    fileSha256: Uint8Array;
    securityCounter?: number;
    signerKeyIndex?: number;
  };
  device: {
    activeVersion?: string;
    activeHash?: Uint8Array;
    bootMode?: number;
    bootModeName?: string;
    testConfirm: boolean;
    slotSize?: number;
    /** MCUboot serial recovery: the upload overwrites the primary slot (no test, no revert). */
    serialRecovery: boolean;
    runningSecurityCounter?: number;
  };
  /** Image bytes per continuation request at this device's buf_size. */
  chunkSize: number;
  verify?: ImageVerifyReport;
}

// ------------------------------------------------------------------ preflight

/** Read what preflight needs from the device. */
export async function readDeviceFacts(session: SmpSession): Promise<DeviceFacts> {
  const c = session.client;
  const facts: DeviceFacts = { slots: [], bufSize: session.params.bufSize, bufCount: session.params.bufCount, maxPacket: c.maxPacket, unavailable: [] };
  facts.slots = await readState(c);
  facts.serialRecovery = isRecoveryImageList(facts.slots);
  try {
    facts.slotInfo = await slotInfo(c);
  } catch (e) {
    if (!(e instanceof SmpError) || e.kind === 'closed' || e.kind === 'timeout') throw e;
    facts.unavailable.push(`slot info: ${e.message}`);
  }
  try {
    facts.bootloader = await bootloaderInfo(c);
  } catch (e) {
    if (!(e instanceof SmpError) || e.kind === 'closed' || e.kind === 'timeout') throw e;
    facts.unavailable.push(`bootloader info: ${e.message}`);
  }
  return facts;
}

function parseDeviceVersion(v: string): number[] | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)(?:[.+](\d+))?$/.exec(v.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4] ?? 0)] : undefined;
}

function cmpVersions(a: number[], b: number[]): number {
  for (let i = 0; i < 4; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

/** RFC 4122 DNS namespace: imgtool derives --vid names with it. */
const NAMESPACE_DNS = Uint8Array.of(0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8);

function uuidBytes(v: Uint8Array | string | undefined, ns: Uint8Array | undefined): Uint8Array | undefined {
  if (v === undefined) return undefined;
  if (v instanceof Uint8Array) return v;
  return parseUuid(v, ns);
}

/** Check an image against the device's facts and what we trust. Never throws on bad input. */
export async function checkImage(image: Uint8Array, facts: DeviceFacts, opts: PreflightOptions): Promise<PreflightReport> {
  const checks: PreflightCheck[] = [];
  const add = (name: PreflightCheckName, result: CheckOutcome, reason: string) => checks.push({ name, result, reason });
  const nowS = opts.now ? opts.now() : Math.floor(Date.now() / 1000);
  const active = facts.slots.find((s) => s.active) ?? facts.slots.find((s) => s.slot === 0);
  const mode = facts.bootloader?.mode;
  const report: PreflightReport = {
    ok: false,
    reason: '',
    checks,
    image: { size: image.length, fileSha256: await sha256Large(image) },
    device: {
      activeVersion: active?.version,
      activeHash: active?.hash,
      bootMode: mode,
      bootModeName: mode !== undefined ? MCUBOOT_MODES[mode] ?? `mode ${mode}` : undefined,
      testConfirm: modeHasTestConfirm(mode) && !facts.serialRecovery,
      serialRecovery: facts.serialRecovery === true,
    },
    chunkSize: maxChunkData(facts.maxPacket ?? facts.bufSize, { off: 0x10000 }),
  };

  // Bundle: fresh, and its firmware anchors / revocations apply.
  const bundle = opts.bundle;
  const keys = [...opts.trustedKeys];
  if (bundle) {
    for (const k of bundle.anchors.firmware) if (k.kty === 'OKP' && !keys.some((x) => equalPresentBytes(x, k.x))) keys.push(k.x);
    if (bundle.stale || bundle.expires <= nowS) {
      add('bundle', 'fail', `trust bundle v${bundle.version} expired at ${new Date(bundle.expires * 1000).toISOString()}: its firmware list may be outdated (get a fresh bundle)`);
    } else {
      add('bundle', 'pass', `trust bundle v${bundle.version}, valid until ${new Date(bundle.expires * 1000).toISOString()}`);
    }
  } else {
    add('bundle', 'skip', 'no trust bundle given: image is checked against the given keys only');
  }

  // Model UUIDs (expected values) for the signature check.
  let vendorId: Uint8Array | undefined;
  let classId: Uint8Array | undefined;
  try {
    vendorId = uuidBytes(opts.deviceModel?.vendorId, NAMESPACE_DNS);
    classId = uuidBytes(opts.deviceModel?.classId, vendorId);
  } catch (e) {
    add('model', 'fail', `device model UUID unusable: ${(e as Error).message}`);
  }

  // Signature and hash (as MCUboot verifies them).
  const slotSize = facts.slotInfo?.[0]?.maxImageSize ?? facts.slotInfo?.[0]?.slots.find((s) => s.slot !== active?.slot)?.size;
  report.device.slotSize = slotSize;
  const v = await verifyImage(image, { keys, requireSignature: true, vendorId, classId });
  report.verify = v;
  const sigChecks = v.checks.filter((c) => ['format', 'encryption', 'unprotected-tlvs', 'hash', 'key', 'signature'].includes(c.name));
  const sigFail = sigChecks.find((c) => c.result === 'fail');
  if (keys.length === 0) add('signature', 'fail', 'no trusted firmware keys given: refusing to upload an image that cannot be verified');
  else if (sigFail) add('signature', 'fail', `${sigFail.name}: ${sigFail.reason}`);
  else add('signature', 'pass', `${v.checks.find((c) => c.name === 'hash')?.reason}; ${v.checks.find((c) => c.name === 'signature')?.reason}`);
  const img = v.image;
  const hashTlv = img?.tlvs.find((t) => !t.protected && t.type === TLV.SHA256 && t.length === 32);
  report.image.version = v.version;
  report.image.hash = hashTlv?.value.slice();
  report.image.securityCounter = v.securityCounter;
  report.image.signerKeyIndex = v.keyIndex;
  const signer = v.keyIndex !== undefined ? keys[v.keyIndex] : undefined;
  if (img && !hashTlv) add('format', 'fail', `image carries a ${v.hashAlg?.toUpperCase() ?? 'non-SHA-256'} hash only: img_mgmt identifies images by their SHA-256 TLV (sign with --sha 256)`);

  // Revocation of the signing key.
  if (bundle && signer) {
    const kid = keyId(signer);
    if (bundle.revocations.keyIds.some((r) => equalPresentBytes(r, kid))) add('revocation', 'fail', `the signing key ${toHex(kid)} is revoked by trust bundle v${bundle.version}`);
    else add('revocation', 'pass', `signing key ${toHex(kid)} is not revoked`);
  }

  // Model: bundle metadata and/or UUID TLVs.
  const meta = bundle?.firmware.find((f) => equalPresentBytes(f.sha256, report.image.fileSha256) || (hashTlv && equalPresentBytes(f.sha256, hashTlv.value)));
  const modelNotes: string[] = [];
  let modelFail: string | undefined;
  let modelWarn: string | undefined;
  if (bundle) {
    if (!meta) modelFail = `image (sha256 ${toHex(report.image.fileSha256).slice(0, 16)}…) is not listed in trust bundle v${bundle.version}`;
    else {
      if (opts.deviceModel?.name && meta.model !== opts.deviceModel.name) modelFail = `bundle lists this image for model '${meta.model}', the device is '${opts.deviceModel.name}'`;
      else if (meta.version && v.version && meta.version !== v.version && parseDeviceVersion(meta.version)?.join('.') !== parseDeviceVersion(v.version)?.join('.')) {
        modelFail = `bundle says version ${meta.version}, image header says ${v.version}`;
      } else if (v.securityCounter !== undefined && meta.securityCounter !== v.securityCounter) {
        modelFail = `bundle says security counter ${meta.securityCounter}, image carries ${v.securityCounter}`;
      } else if (signer && !equalPresentBytes(meta.signerKid, keyId(signer))) {
        modelFail = `bundle says the image is signed by key ${toHex(meta.signerKid)}, it is signed by ${toHex(keyId(signer))}`;
      } else modelNotes.push(`bundle lists it for model '${meta.model}'${opts.deviceModel?.name ? '' : ' (device model not given: not compared)'}`);
      if (!opts.deviceModel?.name) modelWarn = `bundle lists the image for model '${meta.model}' but the device's model was not given`;
    }
  }
  const uuidChecks = v.checks.filter((c) => c.name === 'vendor-id' || c.name === 'class-id');
  for (const c of uuidChecks) {
    if (c.result === 'fail') modelFail ??= c.reason;
    else if (c.result === 'pass') {
      modelNotes.push(c.reason);
      if (!vendorId && !classId) modelWarn ??= `image carries ${c.reason} but the device's UUIDs were not given`;
    }
  }
  if (!checks.some((c) => c.name === 'model')) {
    if (modelFail) add('model', 'fail', modelFail);
    else if (modelWarn) add('model', 'warn', modelWarn);
    else if (modelNotes.length) add('model', 'pass', modelNotes.join('; '));
    else add('model', 'warn', 'no model information (no bundle entry, no UUID TLVs): cannot confirm the image is meant for this device');
  }

  // Version vs what the device runs.
  const newV = img ? [img.header.version.major, img.header.version.minor, img.header.version.revision, img.header.version.build] : undefined;
  const curV = active ? parseDeviceVersion(active.version) : undefined;
  if (!newV) add('version', 'fail', 'image version unreadable');
  else if (!active) add('version', 'warn', 'the device reports no running image');
  else if (hashTlv && active.hash && equalPresentBytes(hashTlv.value, active.hash)) {
    // serial recovery rewrites the primary slot: writing the image it holds again is a repair, not a no-op
    if (facts.serialRecovery) add('version', 'warn', `the primary slot already holds this image (${active.version}): writing it again`);
    else add('version', 'fail', `the device already runs this image (${active.version})`);
  }
  else if (!curV) add('version', 'warn', `device version '${active.version}' unreadable: not compared`);
  else {
    const c = cmpVersions(newV, curV);
    // As people write versions: "1.1.0", not MCUboot's "1.1.0+0".
    const vs = `${(v.version ?? '').replace(/\+0$/, '')} over running ${active.version}`;
    if (c < 0) add('version', 'fail', `rollback refused: ${vs}`);
    else if (c === 0) add('version', 'warn', `same version as running (${active.version}), different image`);
    else if (newV[0] - curV[0] > 1) add('version', 'warn', `suspiciously large version jump: ${vs}`);
    else add('version', 'pass', vs);
  }

  // Security counter vs the running image's (known from the bundle's metadata).
  const runningMeta = bundle && active?.hash ? bundle.firmware.find((f) => equalPresentBytes(f.sha256, active.hash!)) : undefined;
  report.device.runningSecurityCounter = runningMeta?.securityCounter;
  const jumpWarn = opts.counterJumpWarn ?? 16;
  if (v.securityCounter === undefined) add('security-counter', 'warn', 'image has no security counter: the device cannot refuse a later rollback to it');
  else if (runningMeta) {
    const d = v.securityCounter - runningMeta.securityCounter;
    if (d < 0) add('security-counter', 'fail', `rollback refused: security counter ${v.securityCounter} is below the running image's ${runningMeta.securityCounter}`);
    else if (d > jumpWarn) add('security-counter', 'warn', `suspiciously large security counter jump ${runningMeta.securityCounter} -> ${v.securityCounter}: older images can never boot again`);
    else add('security-counter', 'pass', `security counter ${runningMeta.securityCounter} -> ${v.securityCounter}`);
  } else if (v.securityCounter >= 0xffff0000) add('security-counter', 'warn', `security counter ${v.securityCounter} is near its maximum: no later update could raise it`);
  else add('security-counter', 'skip', `image security counter ${v.securityCounter}; the running image's is unknown (no bundle entry): the device enforces it`);

  // Fits the slot.
  if (!img) add('slot', 'skip', 'image unreadable');
  else if (slotSize === undefined) add('slot', 'skip', `slot size unknown (${facts.unavailable.join('; ') || 'no slot info'}): the device checks it`);
  else if (image.length > slotSize) add('slot', 'fail', `image of ${image.length} bytes does not fit the ${slotSize}-byte slot`);
  else add('slot', 'pass', `${image.length} of ${slotSize} bytes`);

  // Bootloader mode: informational.
  if (facts.serialRecovery) add('bootloader', 'warn', 'MCUboot serial recovery: the upload overwrites the primary slot directly (no test boot, no revert)');
  else if (mode === undefined) add('bootloader', 'skip', 'bootloader mode unknown: test/confirm will be tried');
  else if (modeHasTestConfirm(mode)) add('bootloader', 'pass', `${report.device.bootModeName}: test boot, then confirm (reverts if not confirmed)`);
  else add('bootloader', 'warn', `${report.device.bootModeName}: no test/confirm; the new image boots without revert`);

  const failed = checks.find((c) => c.result === 'fail');
  report.ok = !failed;
  report.reason = failed ? `${failed.name}: ${failed.reason}` : `ok: ${v.version} signed by trusted key #${v.keyIndex}`;
  return report;
}

/** Preflight against a connected device: read its facts, then check. */
export async function preflightImage(session: SmpSession, image: Uint8Array, opts: PreflightOptions): Promise<PreflightReport> {
  return checkImage(image, await readDeviceFacts(session), opts);
}

/**
 * Attestation in words: the names of the appraisal checks and the claims of a
 * verified token as a technician reads them (the app's attestation panel and
 * the job report use the same words). No raw ids, no JSON, local dates.
 */
import type { AppraisalCheck, EatClaims } from './eat.ts';
import { lifecycleState, type PsaClaims } from './psa.ts';
import { INTERFACE_STATE_LABELS, interfaceWords, type InterfaceState } from '../base/interface-words.ts';

/** Every appraisal check, named in words. */
export const CHECK_NAMES: Record<AppraisalCheck, string> = {
  format: 'Token format',
  signature: 'Signed by the device key',
  claims: 'Claims well formed',
  profile: 'Attestation profile',
  nonce: 'Fresh (answers our challenge)',
  'instance-id': 'Same device as identified',
  'issued-at': 'Issue time',
  lifecycle: 'Lifecycle state',
  debug: 'Debug access',
  measurements: 'Firmware measurements',
  revocation: 'Signing keys not revoked',
  'security-counter': 'Security counter',
  configuration: 'Configuration published by the owner',
  interfaces: 'Interfaces',
  'auth-failures': 'Failed logins',
};

export function checkName(check: string): string {
  return Object.hasOwn(CHECK_NAMES, check) ? CHECK_NAMES[check as AppraisalCheck] : check;
}

/** Interface names in words, as the Interfaces panel names them ("Command shell, ..."). */
const interfaceList = (names: readonly string[]) => names.map(interfaceWords).join(', ');

/**
 * One appraisal check's detail as a technician reads it. The appraisal's own detail
 * (eat.ts: what the audit trail and the CLI keep) names algorithms and interface ids;
 * where the verified claims say the same in words, this says it that way: the signature
 * as the device's identity key, interfaces by what they are. Other details are already words.
 */
export function checkDetailInWords(reason: { check: string; result: string; detail: string }, claims?: EatClaims | PsaClaims | null): string {
  if (reason.check === 'signature' && reason.result === 'pass') return "the device's identity key signed this evidence (the key checked when the device was identified)";
  const ifs = (claims as Partial<EatClaims> | undefined)?.interfaces;
  if (reason.check === 'interfaces' && ifs) {
    const open = Object.entries(ifs).filter(([, st]) => st === 'open').map(([n]) => n);
    if (open.length) return `anyone on the link can use ${open.length > 1 ? 'these' : 'this'} without a login: ${interfaceList(open)}`;
    return `every interface is off or needs a technician login (${interfaceList(Object.keys(ifs))})`;
  }
  return reason.detail;
}

const LIFECYCLE_WORDS: Record<string, string> = {
  unknown: 'unknown',
  'assembly-and-test': 'in assembly and test',
  'psa-rot-provisioning': 'being provisioned (not locked yet)',
  secured: 'secured',
  'non-psa-rot-debug': 'application debug open',
  'recoverable-psa-rot-debug': 'root-of-trust debug open',
  decommissioned: 'decommissioned',
};

const DEBUG_WORDS: Record<string, string> = {
  enabled: 'debugger can attach',
  disabled: 'disabled',
  'disabled-since-boot': 'disabled since boot',
  'disabled-permanently': 'disabled permanently',
  'disabled-fully-and-permanently': 'disabled fully and permanently',
};

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
/** A long identifier shortened for reading (the full value stays in the report's details). */
const shortHex = (b: Uint8Array) => (b.length > 8 ? `${hex(b.subarray(0, 8))}…` : hex(b));

/** A date and time in the reader's local time zone. */
export function localDateTime(ms: number): string {
  return new Date(ms).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

function duration(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} days`;
}

export interface ClaimLine {
  label: string;
  value: string;
}

/** The claims of a verified token as lines of words. */
export function claimsInWords(claims: EatClaims | PsaClaims): ClaimLine[] {
  const out: ClaimLine[] = [];
  const c = claims as Partial<EatClaims> & PsaClaims;
  if (c.model) out.push({ label: 'Model', value: c.model });
  out.push({ label: 'Lifecycle', value: LIFECYCLE_WORDS[c.lifecycleState] ?? c.lifecycleState });
  if (c.debugStatus) out.push({ label: 'Debug access', value: DEBUG_WORDS[c.debugStatus] ?? c.debugStatus });
  for (const s of c.softwareComponents ?? []) {
    const what = s.measurementType ? `${s.measurementType} firmware` : 'Firmware';
    out.push({ label: what, value: `${s.version ? `version ${s.version}, ` : ''}signed by key ${shortHex(s.signerId)}` });
  }
  if (c.noSoftwareMeasurements) out.push({ label: 'Firmware', value: 'no measurements given' });
  if (c.interfaces) {
    const entries = Object.entries(c.interfaces);
    const state = (st: string) => (Object.hasOwn(INTERFACE_STATE_LABELS, st) ? INTERFACE_STATE_LABELS[st as InterfaceState].toLowerCase() : st);
    out.push({ label: 'Interfaces', value: entries.length ? entries.map(([n, st]) => `${interfaceWords(n)}: ${state(st)}`).join('; ') : 'none reported' });
  }
  if (typeof c.failedAuthCount === 'number') out.push({ label: 'Failed logins', value: String(c.failedAuthCount) });
  if (typeof c.securityCounter === 'number') out.push({ label: 'Security counter', value: String(c.securityCounter) });
  if (typeof c.bootCount === 'number') out.push({ label: 'Boots', value: String(c.bootCount) });
  if (typeof c.uptimeSeconds === 'number') out.push({ label: 'Running for', value: duration(c.uptimeSeconds) });
  if (c.configDigest) out.push({ label: 'Configuration', value: `digest ${shortHex(c.configDigest)}` });
  else if ('configDigest' in c || c.model) out.push({ label: 'Configuration', value: 'none applied' });
  if (typeof c.issuedAt === 'number') out.push({ label: 'Issued', value: localDateTime(c.issuedAt * 1000) });
  out.push({ label: 'Device instance', value: shortHex(c.instanceId) });
  if (c.certificationReference) out.push({ label: 'Certification', value: c.certificationReference });
  out.push({ label: 'Profile', value: c.profile });
  return out;
}

/**
 * The claims as the audit trail keeps them (ops/record.ts attestationPlan:
 * profile, lifecycle value, debug status, boot count, security counter,
 * configuration digest, software versions and measurements) as lines of
 * words: what the job report shows, and what its audit entry proves.
 */
export function auditedClaimsInWords(claims: Record<string, unknown>): ClaimLine[] {
  const out: ClaimLine[] = [];
  const lc = typeof claims.lifecycle === 'number' ? lifecycleState(claims.lifecycle) : undefined;
  if (lc) out.push({ label: 'Lifecycle', value: LIFECYCLE_WORDS[lc] ?? lc });
  if (typeof claims.debugStatus === 'string') out.push({ label: 'Debug access', value: DEBUG_WORDS[claims.debugStatus] ?? claims.debugStatus });
  const sw = Array.isArray(claims.software) ? (claims.software as { version?: unknown; measurement?: unknown }[]) : [];
  for (const s of sw) {
    const v = typeof s.version === 'string' && s.version ? `version ${s.version.replace(/\+0$/, '')}` : 'no version given';
    const m = typeof s.measurement === 'string' ? `, measurement ${s.measurement.slice(0, 16)}…` : '';
    out.push({ label: 'Firmware', value: v + m });
  }
  if (typeof claims.securityCounter === 'number') out.push({ label: 'Security counter', value: String(claims.securityCounter) });
  if (typeof claims.bootCount === 'number') out.push({ label: 'Boots', value: String(claims.bootCount) });
  out.push({ label: 'Configuration', value: typeof claims.configDigest === 'string' ? `digest ${claims.configDigest.slice(0, 16)}…` : 'none applied' });
  if (typeof claims.profile === 'string') out.push({ label: 'Profile', value: claims.profile });
  return out;
}

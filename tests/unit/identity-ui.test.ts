/**
 * The identity components render op states (server-side render, no DOM):
 * every badge, each check's reason, the verdicts, unsupported devices, and
 * the camera problems a technician may meet.
 */
import { render } from 'svelte/server';
import { afterAll, describe, expect, it } from 'vitest';
import AttestationPanel from '../../src/ui/identity/AttestationPanel.svelte';
import EventLog from '../../src/ui/identity/EventLog.svelte';
import IdentityCard from '../../src/ui/identity/IdentityCard.svelte';
import IdentityPanel from '../../src/ui/identity/IdentityPanel.svelte';
import LabelInput from '../../src/ui/identity/LabelInput.svelte';
import { cameraProblem } from '../../src/ui/identity/scan.ts';
import { attestDevice, readSecurityEvents } from '../../src/core/ops/state-awareness/attest.ts';
import { runOp } from '../../src/core/ops/outcome.ts';
import { UNSUPPORTED_REASON, identifyDevice, type InventoryLookup } from '../../src/core/ops/identification/identify.ts';
import { LOCKED_DOWN, type World, world } from '../helpers/identity-world.ts';

const open: World[] = [];
afterAll(async () => {
  for (const x of open) await x.close();
});
async function w(security = {}) {
  const x = await world({ security: { interfaces: { ...LOCKED_DOWN }, ...security } });
  open.push(x);
  return x;
}

describe('IdentityCard', () => {
  it('shows verified, label mismatch and duplicate badges with every check and its reason', async () => {
    const x = await w();
    const dup: InventoryLookup = { findByIdentifier: async (id) => (id.kind === 'devicePublicKey' ? [{ id: 7, serial: 'FB-0777', devicePublicKey: id.value }] : []) };
    const st = await runOp(identifyDevice(x.session, { bundle: x.bundle, label: { serial: 'FB-0002' }, inventory: dup }));
    const { body } = render(IdentityCard, { props: { state: st } });
    expect(body).toContain('data-badge="verified"');
    expect(body).toContain('data-badge="label-mismatch"');
    expect(body).toContain('data-badge="duplicate"');
    expect(body).not.toContain('data-badge="unverified"');
    for (const c of ['certificate', 'binding', 'possession', 'label', 'duplicates']) expect(body).toContain(`data-check="${c}"`);
    expect(body).toContain('FB-0777');
    expect(body).toContain('Issued by');
  });

  it('shows unverified with the failing reason, progress and unsupported states', async () => {
    const x = await w({ misbehave: { wrongKey: true } });
    const st = await runOp(identifyDevice(x.session, { bundle: x.bundle }));
    const { body } = render(IdentityCard, { props: { state: st } });
    expect(body).toContain('data-badge="unverified"');
    expect(body).toMatch(/data-check="possession" data-result="fail"/);
    expect(body).toContain('does not hold that key');
    expect(render(IdentityCard, { props: { state: { kind: 'proving-possession' } } }).body).toContain('fresh random challenge');
    expect(render(IdentityCard, { props: { state: { kind: 'unsupported', reason: UNSUPPORTED_REASON } } }).body).toContain('identity and attestation not supported by this device');
    expect(render(IdentityCard, { props: { state: { kind: 'failed', code: 'link', reason: 'link lost', retryable: true } } }).body).toContain('link lost');
  });
});

describe('AttestationPanel', () => {
  it('renders each verdict with reasons; claims only for verified evidence', async () => {
    const good = await w();
    const t = await runOp(attestDevice(good.session, { bundle: good.bundle, devicePublicKey: good.sec.devicePublicKey }));
    const a = render(AttestationPanel, { props: { state: t } }).body;
    expect(a).toContain('data-verdict="trusted"');
    expect(a).toContain('Claims (');
    const open2 = await w({ interfaces: { smp_serial: 'open', shell: 'open', debug: 'disabled' } });
    const wv = await runOp(attestDevice(open2.session, { bundle: open2.bundle, devicePublicKey: open2.sec.devicePublicKey }));
    expect(render(AttestationPanel, { props: { state: wv } }).body).toContain('data-verdict="warning"');
    const bad = await w({ misbehave: { wrongKey: true } });
    const u = await runOp(attestDevice(bad.session, { bundle: bad.bundle, devicePublicKey: bad.sec.devicePublicKey }));
    const ub = render(AttestationPanel, { props: { state: u } }).body;
    expect(ub).toContain('data-verdict="untrusted"');
    expect(ub).toMatch(/data-check="signature" data-result="fail"/);
    expect(ub).not.toContain('Claims (');
  });
});

describe('EventLog', () => {
  it('lists events newest first and flags security-relevant ones', async () => {
    const x = await w();
    x.sec.log('auth-failure', 'bad credential');
    let last;
    // Refused before a login, with the device's reason in words and where to load the key.
    let refused;
    for await (const s of readSecurityEvents(x.session)) refused = s;
    const no = render(EventLog, { props: { state: refused!, onrefresh: () => {} } }).body;
    expect(no).toContain('data-testid="events-refused"');
    expect(no).toMatch(/only to a logged-in technician/);
    expect(no).toContain('Trust &amp; keys');
    for await (const s of readSecurityEvents(x.session, { authenticate: x.login })) last = s;
    const body = render(EventLog, { props: { state: last!, onrefresh: () => {} } }).body;
    expect(body).toContain('auth-failure');
    expect(body).toMatch(/<li (?=[^>]*data-type="auth-failure")(?=[^>]*class="[^"]*severe)/);
    expect(body).toMatch(/<li (?=[^>]*data-type="boot")/);
    expect(body).not.toMatch(/<li (?=[^>]*data-type="boot")(?=[^>]*class="[^"]*severe)/);
    expect(body.indexOf('auth-failure')).toBeLessThan(body.indexOf('provisioned'));
    // A timeline in words (issue 14): the type's id stays in data-type only.
    expect(body).toContain('data-testid="event-timeline"');
    expect(body).toContain('Failed login');
  });
});

describe('LabelInput and IdentityPanel', () => {
  it('renders the label fields and the no-bundle notice', () => {
    const l = render(LabelInput, { props: { value: { serial: 'FB-0001' } } }).body;
    expect(l).toContain('value="FB-0001"');
    expect(l).toContain('Scan label with camera');
    const p = render(IdentityPanel, { props: { session: null, bundle: null } }).body;
    expect(p).toContain('No trust bundle loaded');
  });

  it('names camera failures clearly', () => {
    const e = (name: string) => Object.assign(new Error('x'), { name });
    expect(cameraProblem(e('NotAllowedError'))).toMatchObject({ kind: 'denied', message: expect.stringContaining('permission was denied') });
    expect(cameraProblem(e('NotFoundError')).kind).toBe('no-camera');
    expect(cameraProblem(e('NotReadableError')).kind).toBe('busy');
    expect(cameraProblem(e('Weird')).kind).toBe('failed');
  });
});

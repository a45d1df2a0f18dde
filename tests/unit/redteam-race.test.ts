/**
 * Red team: a login whose credential check is held open (a slow microcontroller)
 * while another connection pushes a trust bundle that revokes that credential.
 * The held check must not end in a session. docs/SECURITY.md's threat table
 * names this test.
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { SEC, SEC_RC } from '../../src/core/protocol/security.ts';
import { Op } from '../../src/core/smp/header.ts';
import { issueBundle } from '../../src/core/trust/bundle.ts';
import { issueCredential } from '../../src/core/trust/credential.ts';
import { generateEd25519 } from '../../src/core/trust/ed25519.ts';
import { type Authorities, makeAuthorities } from '../../src/device/provisioning.ts';
import { GROUP, type RawSession, type RawSmp, type Body, groupRc, protectedRequest, rawLogin, protectedChunked } from '../helpers/raw-session.ts';
import { rawWorld } from '../helpers/raw-world.ts';

const gate = vi.hoisted(() => ({ closed: false, entered: null as null | (() => void), release: null as null | (() => void) }));
vi.mock('../../src/core/trust/credential.ts', async (importOriginal) => {
  const orig = await importOriginal<typeof import('../../src/core/trust/credential.ts')>();
  return {
    ...orig,
    verifyCredential: async (...args: Parameters<typeof orig.verifyCredential>) => {
      if (gate.closed) {
        gate.closed = false;
        await new Promise<void>((res) => {
          gate.release = res;
          gate.entered?.();
        });
      }
      return orig.verifyCredential(...args);
    },
  };
});

const DAY = 86400_000;
let auth: Authorities;
beforeAll(async () => {
  auth = await makeAuthorities();
});

describe('red team: login racing a revocation', () => {
  it('a credential revoked by a bundle pushed on another connection while its check was held gets no session', async () => {
    const w = await rawWorld(auth);
    const security = w.sec;
    const conn = () => w.conn(['peer', 'device']);
    const x = await generateEd25519();
    const credentialId = crypto.getRandomValues(new Uint8Array(16));
    const credX = await issueCredential({ technicianId: 'tech-leaver', name: 'Leaver', publicKey: x.publicKey, permissions: ['wipe', 'configure'], models: ['fieldbench-ref'], credentialId, notAfter: new Date(Date.now() + DAY) }, auth.owner.privateKey);
    const b = conn();
    const sb = await w.login(b);
    const revoking = await issueBundle(
      { version: 2, expires: new Date(Date.now() + DAY), anchors: { manufacturer: [auth.manufacturer.publicKey], firmware: [auth.firmware.publicKey], owner: [auth.owner.publicKey] }, revocations: { credentialIds: [credentialId] } },
      auth.owner.privateKey,
    );
    // The leaver's login: its credential check is held open.
    gate.closed = true;
    const entered = new Promise<void>((res) => (gate.entered = res));
    const a = conn();
    const login = rawLogin(a, security.devicePublicKey, credX, x.privateKey);
    await entered;
    expect(await protectedChunked(b, sb, SEC.BundlePush, revoking)).toMatchObject({ version: 2 });
    gate.release!();
    const sa = await login;
    expect(groupRc(sa.reply)).toBe(SEC_RC.Revoked);
    // Whatever keys the leaver derived, they open nothing.
    expect(groupRc(await protectedRequest(a, sa, Op.Write as 2, GROUP, SEC.Wipe, { confirm: true }))).toBe(SEC_RC.Protection);
    expect(security.eventLog().some((e) => e.type === 'wipe')).toBe(false);
    a.close();
    b.close();
  });
});

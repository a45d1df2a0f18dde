/**
 * What the tests of the ops that change a device (interfaces, wipe, rotate)
 * share: the technician login with or without the tool's own permission
 * check (`precheck: false` is the raw login an attacker's tool would do, so
 * that the DEVICE's refusal is what the test sees), a narrower credential for
 * the same technician key, and the files and captured output of a CLI run.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SecurityGroup } from '../../src/core/groups/security.ts';
import { authenticateTechnician } from '../../src/core/ops/access/login.ts';
import { ed25519Sign } from '../../src/core/trust/ed25519.ts';
import { privateKeyPem, publicKeyPem } from '../../src/core/trust/keys.ts';
import { issueCredential, type Permission } from '../../src/core/trust/credential.ts';
import type { Authorities } from '../../src/device/provisioning.ts';
import type { World } from './identity-world.ts';

const DAY = 86400_000;

export interface LoginOptions {
  /** Another credential for the same technician key (default: the world's, which grants everything). */
  credential?: Uint8Array;
  /** false: no check by the tool before the login (the device must refuse by itself). */
  precheck?: boolean;
  /** The permission the tool checks the credential for (none: only the bundle and the device). */
  permission?: Permission;
}

/** The technician login of the ops' `authenticate` option, against the world's device. */
export function technicianLogin(w: World, opts: LoginOptions = {}) {
  return async (g: SecurityGroup) => {
    const id = await g.identity();
    const sign = (m: Uint8Array) => ed25519Sign(m, w.auth.technician.privateKey);
    const check = opts.precheck === false ? undefined : { bundle: w.bundle, permission: opts.permission, device: id };
    return authenticateTechnician(g, id.devicePublicKey, opts.credential ?? w.auth.credential, sign, check);
  };
}

/** A credential for the same technician key with only the given permissions (owner-signed, valid a day). */
export function narrowCredential(a: Authorities, permissions: Permission[]): Promise<Uint8Array> {
  return issueCredential({ technicianId: 'tech-narrow', name: 'Narrow', publicKey: a.technician.publicKey, permissions, models: ['fieldbench-ref'], notAfter: new Date(Date.now() + DAY) }, a.owner.privateKey);
}

/** The files a CLI login reads (technician key, owner key, credential, bundle) in a fresh folder. */
export async function loginFiles(w: World, prefix = 'fb-access-cli-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await writeFile(join(dir, 'tech.pem'), privateKeyPem(w.auth.technician.privateKey));
  await writeFile(join(dir, 'owner.pub.pem'), publicKeyPem(w.auth.owner.publicKey));
  await writeFile(join(dir, 'cred.cose'), w.auth.credential);
  await writeFile(join(dir, 'bundle.cose'), w.bundleBytes);
  return dir;
}

/** The CLI options naming the files of loginFiles. */
export const LOGIN_ARGS = ['--key', 'tech.pem', '--credential', 'cred.cose', '--bundle', 'bundle.cose', '--owner-key', 'owner.pub.pem'];

/** A CLI io that keeps what a verb writes. */
export function captureIo(dir: string) {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t), cwd: dir }, text: () => out.join(''), errors: () => err.join('') };
}

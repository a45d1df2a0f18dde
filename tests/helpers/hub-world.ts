/**
 * A small fleet for hub tests and benches: an owner, a trust bundle,
 * technicians with owner-signed credentials, and signed hash-chained trails
 * in the audit export format (src/core/store/audit.ts).
 */
import { exportEntryHash, type AuditExport, type AuditExportEntry } from '../../src/core/store/audit.ts';
import { fromHex, toHex } from '../../src/core/base/bytes.ts';
import { keyIdHex, seedSigner, type AuditSigner } from '../../src/core/store/sig.ts';
import { issueBundle } from '../../src/core/trust/bundle.ts';
import { issueCredential, type Permission } from '../../src/core/trust/credential.ts';
import { generateEd25519 } from '../../src/core/trust/ed25519.ts';
import { randomBytes } from '../../src/core/trust/artifact.ts';
import { createHash } from 'node:crypto';

export interface Tech {
  id: string;
  seed: Uint8Array;
  publicKey: Uint8Array;
  keyId: string;
  signer: AuditSigner;
  credential: Uint8Array;
  credentialId: Uint8Array;
  credentialB64: string;
}

export interface World {
  owner: { privateKey: Uint8Array; publicKey: Uint8Array };
  bundle: Uint8Array;
  bundleVersion: number;
  tech(id: string, permissions?: Permission[]): Promise<Tech>;
  /** A newer bundle revoking these credentials (by id). */
  revoke(credentialIds: Uint8Array[]): Promise<Uint8Array>;
}

export async function makeWorld(): Promise<World> {
  const owner = await generateEd25519();
  let version = 1;
  const expires = new Date(Date.now() + 365 * 86400_000);
  const bundle = await issueBundle({ version, expires, anchors: { owner: [owner.publicKey] } }, owner.privateKey);
  const w: World = {
    owner,
    bundle,
    bundleVersion: version,
    async tech(id, permissions = ['sync', 'fleet', 'identify', 'attest', 'update', 'configure']) {
      const k = await generateEd25519();
      const credentialId = randomBytes(16);
      const credential = await issueCredential(
        { technicianId: id, name: id, publicKey: k.publicKey, permissions, models: ['*'], credentialId, notBefore: new Date(Date.now() - 86400_000), notAfter: expires },
        owner.privateKey,
      );
      return {
        id,
        seed: k.privateKey,
        publicKey: k.publicKey,
        keyId: keyIdHex(k.publicKey),
        signer: await seedSigner(id, k.privateKey),
        credential,
        credentialId,
        credentialB64: Buffer.from(credential).toString('base64'),
      };
    },
    async revoke(credentialIds) {
      version++;
      w.bundleVersion = version;
      return issueBundle({ version, expires, anchors: { owner: [owner.publicKey] }, revocations: { credentialIds } }, owner.privateKey);
    },
  };
  return w;
}

export interface EntrySpec {
  op: string;
  outcome?: string;
  device?: AuditExportEntry['device'];
  details?: Record<string, unknown>;
  time?: number;
}

/** A growing signed trail (what an app or station would export). */
export class Trail {
  entries: AuditExportEntry[] = [];
  constructor(public tech: Tech) {}

  get head() {
    const l = this.entries.at(-1);
    return l ? { seq: l.seq, hash: l.hash } : null;
  }

  get genesis(): string {
    return this.entries[0].hash;
  }

  async add(specs: EntrySpec[], signer: Tech = this.tech): Promise<AuditExportEntry[]> {
    const out: AuditExportEntry[] = [];
    let prev = this.entries.at(-1)?.hash ?? '00'.repeat(32);
    let seq = this.entries.at(-1)?.seq ?? 0;
    for (const s of specs) {
      const e: AuditExportEntry = {
        seq: ++seq,
        time: s.time ?? Date.now(),
        technician: { id: signer.id, keyId: signer.keyId },
        op: s.op,
        device: s.device ?? {},
        outcome: s.outcome ?? 'ok',
        ...(s.details ? { details: s.details } : {}),
        prev,
        hash: '',
        sig: '00'.repeat(64),
        signer: toHex(signer.publicKey),
      };
      e.hash = exportEntryHash(e);
      prev = e.hash;
      out.push(e);
    }
    const sigs = await Promise.all(out.map((e) => signer.signer.sign(fromHex(e.hash))));
    out.forEach((e, i) => (e.sig = toHex(sigs[i])));
    this.entries.push(...out);
    return out;
  }

  export(from = 1, to = this.entries.length): AuditExport {
    const entries = this.entries.slice(from - 1, to);
    const l = entries.at(-1);
    return { format: 'fieldbench-audit', version: 1, exported: new Date().toISOString(), entries, head: l ? { seq: l.seq, hash: l.hash } : null };
  }

  push(from = 1, to = this.entries.length, credentials: Tech[] = [this.tech]) {
    return { ...this.export(from, to), credentials: credentials.map((t) => t.credentialB64) };
  }
}

/** Identifiers of a synthetic device number n. */
export function deviceN(n: number, opts: { devEui?: string; serial?: string } = {}): AuditExportEntry['device'] {
  const key = toHex(sha(n));
  return {
    serial: opts.serial ?? `SN-${String(n).padStart(8, '0')}`,
    devicePublicKey: key,
    devEui: opts.devEui ?? (0x70b3d50000000000n + BigInt(n)).toString(16).padStart(16, '0'),
  };
}

/** 32 bytes that differ for every n (a device key): distinct devices must not share a key by accident. */
function sha(n: number): Uint8Array {
  return new Uint8Array(createHash('sha256').update(`fieldbench-test-device-${n}`).digest());
}

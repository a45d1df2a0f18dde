/**
 * What the hub trusts: the owner keys it was started with (pinned) and the
 * newest owner-signed trust bundle it has accepted (its revocations decide
 * who is refused). Technician credentials are verified against that bundle
 * and cached by their digest until the bundle changes.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { verifyBundle, type TrustBundle } from '../core/trust/bundle.ts';
import { decodeCredentialUnverified, verifyCredential, type TechnicianCredential } from '../core/trust/credential.ts';
import { containsBytes, toHex as hex } from '../core/base/bytes.ts';
import { keyId } from '../core/trust/keys.ts';
import type { HubDb } from './db.ts';
import { HubError } from './errors.ts';

export class HubTrust {
  private creds = new Map<string, TechnicianCredential>();
  private constructor(
    private readonly ownerKeys: Uint8Array[],
    public bundle: TrustBundle,
    private bundleBytes: Uint8Array,
  ) {}

  /**
   * Load the held bundle: the newer of the one stored in the database and
   * `initial` (a file given at start). Both must verify under the pinned owner keys.
   */
  static async open(db: HubDb, ownerKeys: Uint8Array[], initial?: Uint8Array, now?: number): Promise<HubTrust> {
    if (!ownerKeys.length) throw new HubError('config', 'the hub needs the owner public key (--owner-key)', 500);
    const rows = await db.query<{ bytes: Uint8Array }>('SELECT bytes FROM trust WHERE id = 1');
    let best: { b: TrustBundle; bytes: Uint8Array } | undefined;
    for (const bytes of [rows[0]?.bytes, initial]) {
      if (!bytes) continue;
      const r = await verifyBundle(new Uint8Array(bytes), { ownerKeys, now, allowStale: true });
      if (!r.ok) {
        if (bytes === initial) throw new HubError('config', `the trust bundle does not verify: ${r.reason}`, 500);
        continue;
      }
      if (!best || r.value.version > best.b.version) best = { b: r.value, bytes: new Uint8Array(bytes) };
    }
    if (!best) throw new HubError('config', 'the hub has no trust bundle yet: start it with --bundle FILE (owner-signed)', 500);
    const t = new HubTrust(ownerKeys, best.b, best.bytes);
    await t.store(db);
    return t;
  }

  private async store(db: HubDb): Promise<void> {
    await db.query(
      `INSERT INTO trust (id, version, bytes) VALUES (1, $1, $2)
       ON CONFLICT (id) DO UPDATE SET version = excluded.version, bytes = excluded.bytes, updated = now()
       WHERE trust.version < excluded.version`,
      [this.bundle.version, this.bundleBytes],
    );
  }

  get bytes(): Uint8Array {
    return this.bundleBytes;
  }

  /** Accept a newer owner-signed bundle (revocations take effect at once). */
  async update(db: HubDb, bytes: Uint8Array, now?: number): Promise<TrustBundle> {
    const r = await verifyBundle(bytes, { ownerKeys: this.ownerKeys, held: this.bundle, now });
    if (!r.ok) throw new HubError(r.code === 'replayed' ? 'stale-bundle' : 'bad-bundle', `${r.reason}`, 409);
    if (r.value.version === this.bundle.version) return this.bundle;
    this.bundle = r.value;
    this.bundleBytes = bytes;
    this.creds.clear();
    await this.store(db);
    return this.bundle;
  }

  /** Verify a technician credential under the held bundle (cached), at time `now` (ms) or without a time check. */
  async credential(bytes: Uint8Array, opts: { now?: number; anyTime?: boolean } = {}): Promise<TechnicianCredential> {
    const id = hex(sha256(bytes));
    let c = this.creds.get(id);
    if (!c) {
      // Validity windows are checked by the caller (at request time or at entry time).
      const r = await verifyCredential(bytes, { bundle: this.bundle, now: opts.anyTime ? undefined : opts.now });
      if (!r.ok) {
        if (r.code === 'revoked') throw new HubError('revoked', `${r.reason}; ask the owner for a new credential`, 403);
        if (opts.anyTime && (r.code === 'expired' || r.code === 'not-yet-valid')) {
          // verified apart from the window: re-verify with a time inside it
          const u = await verifyCredential(bytes, { bundle: this.bundle, now: this.windowTime(bytes) });
          if (u.ok) c = u.value;
          else throw new HubError('bad-credential', `the technician credential does not verify: ${u.reason}`, 403);
        } else {
          throw new HubError(r.code === 'expired' ? 'expired-credential' : 'bad-credential', `the technician credential does not verify: ${r.reason}`, 403);
        }
      } else c = r.value;
      if (this.creds.size > 4096) this.creds.clear();
      this.creds.set(id, c);
    }
    this.checkNotRevoked(c);
    return c;
  }

  /** A time inside the credential's window (for checks that apply the window themselves). */
  private windowTime(bytes: Uint8Array): number | undefined {
    try {
      return decodeCredentialUnverified(bytes).notBefore * 1000;
    } catch {
      return undefined;
    }
  }

  /** Refuse a credential (or its key) that the held bundle revokes. */
  checkNotRevoked(c: TechnicianCredential): void {
    const rv = this.bundle.revocations;
    if (containsBytes(rv.credentialIds, c.credentialId)) {
      throw new HubError('revoked', `technician credential ${hex(c.credentialId)} of ${c.technicianId} is revoked; ask the owner for a new credential`, 403);
    }
    if (containsBytes(rv.keyIds, keyId(c.publicKey))) {
      throw new HubError('revoked', `technician key ${hex(keyId(c.publicKey))} of ${c.technicianId} is revoked; ask the owner for a new credential`, 403);
    }
  }
}

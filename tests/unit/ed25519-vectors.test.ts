/**
 * Ed25519 conformance: RFC 8032, the classic sign.input, Wycheproof, ZIP-215 and the
 * "Taming the many EdDSAs" edge cases, against the strict RFC 8032 rule of ed25519.ts.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as ed from '@noble/ed25519';
import { describe, expect, it } from 'vitest';
import {
  ED25519_RULE,
  KeyFormatError,
  ed25519PublicKey,
  ed25519PublicKeyProblem,
  ed25519Sign,
  ed25519Verify,
  generateEd25519,
} from '../../src/core/trust/ed25519.ts';

const VEC = path.resolve(__dirname, '../../../shared/vectors/ed25519');
const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const json = (f: string) => JSON.parse(readFileSync(path.join(VEC, f), 'utf8'));

describe('Ed25519 rule', () => {
  it('is strict RFC 8032', () => {
    expect(ED25519_RULE).toBe('rfc8032-strict');
  });
});

describe('RFC 8032 section 7.1', () => {
  const cases: { priv: string; pub: string; msg: string; sig: string }[] = json('rfc8032-ed25519.json');
  it('has the four tests', () => expect(cases.length).toBe(4));
  for (const [i, c] of cases.entries()) {
    it(`TEST ${i}: public key, deterministic signature, verify`, async () => {
      expect(toHex(await ed25519PublicKey(hex(c.priv)))).toBe(c.pub);
      expect(toHex(await ed25519Sign(hex(c.msg), hex(c.priv)))).toBe(c.sig);
      expect(await ed25519Verify(hex(c.sig), hex(c.msg), hex(c.pub))).toBe(true);
      const m = hex(c.msg + '00');
      expect(await ed25519Verify(hex(c.sig), m, hex(c.pub))).toBe(false);
    });
  }
});

describe('sign.input (1024 lines)', () => {
  const lines = readFileSync(path.join(VEC, 'sign.input.txt'), 'utf8').split('\n').filter((l) => l.length > 0);
  it('signs every line byte-exactly and verifies it; a changed message or signature is rejected', async () => {
    expect(lines.length).toBe(1024);
    let n = 0;
    for (const line of lines) {
      const [skpk, pk, msgHex, sigmsg] = line.split(':');
      const seed = hex(skpk.slice(0, 64));
      const pub = hex(pk);
      const msg = hex(msgHex);
      const sig = hex(sigmsg.slice(0, 128));
      expect(skpk.slice(64)).toBe(pk);
      expect(sigmsg.slice(128)).toBe(msgHex);
      expect(toHex(await ed25519PublicKey(seed))).toBe(pk);
      expect(toHex(await ed25519Sign(msg, seed))).toBe(toHex(sig));
      expect(await ed25519Verify(sig, msg, pub)).toBe(true);
      // every 16th line: one flipped bit in the signature and in the message must fail
      if (n % 16 === 0) {
        const badSig = sig.slice();
        badSig[n % 64] ^= 1 << (n % 8);
        expect(await ed25519Verify(badSig, msg, pub)).toBe(false);
        const badMsg = msg.length > 0 ? msg.slice() : Uint8Array.of(0);
        if (msg.length > 0) badMsg[0] ^= 0x80;
        expect(await ed25519Verify(sig, badMsg, pub)).toBe(false);
      }
      n++;
    }
    expect(n).toBe(1024);
  }, 120_000);
});

describe('Wycheproof ed25519_test.json', () => {
  const w = json('wycheproof-ed25519_test.json');
  type T = { tcId: number; comment: string; msg: string; sig: string; result: 'valid' | 'invalid' | 'acceptable'; flags: string[] };
  const all: { pk: string; t: T }[] = [];
  for (const g of w.testGroups) for (const t of g.tests as T[]) all.push({ pk: g.publicKey.pk, t });

  it('has 151 cases: 88 valid, 63 invalid, none "acceptable"', () => {
    expect(all.length).toBe(151);
    expect(all.filter((c) => c.t.result === 'valid').length).toBe(88);
    expect(all.filter((c) => c.t.result === 'invalid').length).toBe(63);
  });
  it('every verdict matches (valid accepted, invalid rejected)', async () => {
    const wrong: string[] = [];
    for (const { pk, t } of all) {
      const got = await ed25519Verify(hex(t.sig), hex(t.msg), hex(pk));
      // "acceptable" does not occur in this file; strict RFC 8032 would reject such legacy cases
      const want = t.result === 'valid';
      if (got !== want) wrong.push(`tcId ${t.tcId} (${t.comment}): got ${got}, want ${t.result}`);
    }
    expect(wrong).toEqual([]);
  });
});

describe('ZIP-215 vectors (small-order keys, non-canonical encodings)', () => {
  const z: { vk_bytes: string; sig_bytes: string; valid_legacy: boolean; valid_zip215: boolean }[] = json('zip215.json');
  const msg = new TextEncoder().encode('Zcash');

  it('has 196 cases', () => expect(z.length).toBe(196));

  it('strict RFC 8032 rejects all 196 (every key is small-order or non-canonical)', async () => {
    const accepted: number[] = [];
    for (const [i, c] of z.entries()) if (await ed25519Verify(hex(c.sig_bytes), msg, hex(c.vk_bytes))) accepted.push(i);
    expect(accepted).toEqual([]);
    for (const c of z) expect(ed25519PublicKeyProblem(hex(c.vk_bytes))).toBeTypeOf('string');
  });

  it('the rule matters: ZIP-215 semantics would accept the valid_zip215 column (verdicts differ on these vectors)', async () => {
    let zipAccepted = 0;
    for (const c of z) {
      let got = false;
      try {
        got = await ed.verifyAsync(hex(c.sig_bytes), msg, hex(c.vk_bytes), { zip215: true });
      } catch {
        got = false;
      }
      expect(got).toBe(c.valid_zip215);
      if (got) zipAccepted++;
    }
    expect(zipAccepted).toBeGreaterThan(0);
    // our rule rejects at least everything either column rejects
    expect(z.filter((c) => c.valid_legacy).length).toBeGreaterThan(0);
  });
});

describe('noble edge cases (eprint 2020/1244)', () => {
  const e: { message: string; pub_key: string; signature: string }[] = json('noble-edge-cases.json');
  // Cofactored strict verification: 2-5 (mixed-order A, canonical, S < L) verify;
  // 0, 1 (small-order A), 6, 7 (S >= L), 8, 9 (non-canonical R), 10, 11 (non-canonical A) do not.
  const ACCEPTED = [2, 3, 4, 5];
  it('has 12 cases', () => expect(e.length).toBe(12));
  for (const [i, c] of e.entries()) {
    it(`case ${i} ${ACCEPTED.includes(i) ? 'accepted' : 'rejected'}`, async () => {
      expect(await ed25519Verify(hex(c.signature), hex(c.message), hex(c.pub_key))).toBe(ACCEPTED.includes(i));
    });
  }
  it('keys of the accepted cases 2-5 (torsion component) are refused at import', () => {
    for (const i of ACCEPTED) expect(ed25519PublicKeyProblem(hex(e[i].pub_key))).toMatch(/prime-order subgroup/);
    expect(ed25519PublicKeyProblem(hex(e[0].pub_key))).toMatch(/small order/);
    expect(ed25519PublicKeyProblem(hex(e[10].pub_key))).toMatch(/canonical/);
  });
});

describe('ed25519Verify never throws', () => {
  it('returns false on wrong lengths and types', async () => {
    const { privateKey, publicKey } = await generateEd25519();
    const msg = Uint8Array.of(1, 2, 3);
    const sig = await ed25519Sign(msg, privateKey);
    expect(await ed25519Verify(sig, msg, publicKey)).toBe(true);
    expect(await ed25519Verify(sig.subarray(0, 63), msg, publicKey)).toBe(false);
    expect(await ed25519Verify(new Uint8Array(65), msg, publicKey)).toBe(false);
    expect(await ed25519Verify(sig, msg, publicKey.subarray(0, 31))).toBe(false);
    expect(await ed25519Verify(null as never, msg, publicKey)).toBe(false);
    expect(await ed25519Verify(sig, 'abc' as never, publicKey)).toBe(false);
    expect(await ed25519Verify(sig, msg, new Uint8Array(32).fill(0xff))).toBe(false);
    expect(await ed25519Verify(new Uint8Array(64).fill(0xff), msg, publicKey)).toBe(false);
  });
  it('signing with a bad seed is a KeyFormatError', async () => {
    await expect(ed25519Sign(Uint8Array.of(1), new Uint8Array(31))).rejects.toBeInstanceOf(KeyFormatError);
    await expect(ed25519PublicKey(new Uint8Array(64))).rejects.toThrow(/32-byte seed/);
  });
  it('generateEd25519 gives distinct, valid keys', async () => {
    const a = await generateEd25519();
    const b = await generateEd25519();
    expect(toHex(a.privateKey)).not.toBe(toHex(b.privateKey));
    expect(ed25519PublicKeyProblem(a.publicKey)).toBeUndefined();
    expect(toHex(await ed25519PublicKey(a.privateKey))).toBe(toHex(a.publicKey));
  });
});

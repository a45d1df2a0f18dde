/**
 * The in-process PKCS#11 checks of tests/unit/factory-keys.test.ts, run as a
 * child process: SoftHSM2 reads SOFTHSM2_CONF with getenv() when it
 * initialises, and vitest's worker threads cannot set the real environment
 * (process.env is a per-thread copy), so the test starts this script with the
 * temporary token configuration in its environment.
 *
 * usage: node --import tsx tests/helpers/pkcs11-check.ts MODULE PIN
 * Exit 0 and one JSON line on stdout when every check holds; a failed check
 * throws (exit 1, the assertion on stderr).
 */
import assert from 'node:assert/strict';
import { ed25519 } from '@noble/curves/ed25519.js';
import pkcs11js from 'pkcs11js';
import { pkcs11GenerateKey, pkcs11ImportKey, pkcs11Signer, type Pkcs11KeyRef } from '../../src/core/trust/pkcs11.ts';
import { signChecked } from '../../src/core/trust/signer.ts';

const [MODULE, PIN] = process.argv.slice(2);
const ref = (o: Partial<Pkcs11KeyRef> = {}): Pkcs11KeyRef => ({ module: MODULE, tokenLabel: 'line-1', keyLabel: 'mfr', pin: PIN, ...o });
const rejects = async (p: Promise<unknown>, code: string, text?: RegExp) => {
  await assert.rejects(p, (e: { code?: string; message: string }) => {
    assert.equal(e.code, code, e.message);
    if (text) assert.match(e.message, text);
    return true;
  });
};

// 1. a key generated inside the token signs with CKM_EDDSA, concurrent signatures queue on one session
const pub = await pkcs11GenerateKey(ref());
assert.equal(pub.length, 32);
const s = await pkcs11Signer(ref());
assert.equal(s.kind, 'pkcs11');
assert.deepEqual(s.publicKey, pub);
const msgs = Array.from({ length: 6 }, (_, i) => crypto.getRandomValues(new Uint8Array(40 + i)));
const sigs = await Promise.all(msgs.map((m) => signChecked(s, m)));
sigs.forEach((sig, i) => assert.ok(ed25519.verify(sig, msgs[i], pub), `signature ${i}`));
s.close();
await rejects(s.sign(new Uint8Array(1)), 'bad-key', /closed/);

// 2. the private key is sensitive and not extractable
const p = new pkcs11js.PKCS11();
p.load(MODULE);
try {
  p.C_Initialize();
} catch (e) {
  assert.match((e as Error).message, /ALREADY_INITIALIZED/); // our signer initialised the module in this process
}
const slot = p.C_GetSlotList(true).find((x) => p.C_GetTokenInfo(x).label.trim() === 'line-1')!;
const ses = p.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
p.C_Login(ses, pkcs11js.CKU_USER, PIN);
p.C_FindObjectsInit(ses, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_LABEL, value: 'mfr' }]);
const [h] = p.C_FindObjects(ses, 2);
p.C_FindObjectsFinal(ses);
assert.throws(() => p.C_GetAttributeValue(ses, h, [{ type: pkcs11js.CKA_VALUE }]), /SENSITIVE/);
const attrs = p.C_GetAttributeValue(ses, h, [{ type: pkcs11js.CKA_EXTRACTABLE }, { type: pkcs11js.CKA_SENSITIVE }]);
assert.deepEqual(attrs.map((x) => (x.value as Buffer)[0]), [0, 1]);
p.C_CloseSession(ses);

// 3. clear refusals
await rejects(pkcs11Signer(ref({ pin: '0000-0000' })), 'bad-pin', /wrong PIN/);
await rejects(pkcs11Signer(ref({ tokenLabel: 'line-9' })), 'token-not-found', /"line-1"/);
await rejects(pkcs11Signer(ref({ keyLabel: 'nope' })), 'key-not-found');
await rejects(pkcs11Signer(ref({ tokenLabel: 'spare' })), 'key-not-found');
await rejects(pkcs11GenerateKey(ref()), 'key-exists');
await rejects(pkcs11Signer(ref({ module: '/nonexistent/libpkcs11.so' })), 'hsm-unavailable');
await rejects(pkcs11Signer({ module: MODULE, keyLabel: 'mfr', pin: PIN }), 'token-not-found', /slot id or a token label/);

// 4. an imported key signs for its public key; by slot id too; a taken label is refused
const seed = crypto.getRandomValues(new Uint8Array(32));
const seedPub = ed25519.getPublicKey(seed);
await pkcs11ImportKey(ref({ tokenLabel: 'spare', keyLabel: 'legacy' }), seed, seedPub);
const spareSlot = p.C_GetSlotList(true).find((x) => p.C_GetTokenInfo(x).label.trim() === 'spare')!;
const bySlot = await pkcs11Signer({ module: MODULE, slot: spareSlot.readBigUInt64LE(0), keyLabel: 'legacy', pin: PIN });
assert.deepEqual(bySlot.publicKey, seedPub);
assert.ok(ed25519.verify(await bySlot.sign(Uint8Array.of(7)), Uint8Array.of(7), seedPub));
bySlot.close();
await rejects(pkcs11ImportKey(ref({ tokenLabel: 'spare', keyLabel: 'legacy' }), seed, seedPub), 'key-exists');
// an import whose seed and public key disagree stores nothing
const other = ed25519.getPublicKey(crypto.getRandomValues(new Uint8Array(32)));
await rejects(pkcs11ImportKey(ref({ tokenLabel: 'spare', keyLabel: 'mismatch' }), seed, other), 'bad-signature', /nothing was stored/);
await rejects(pkcs11Signer(ref({ tokenLabel: 'spare', keyLabel: 'mismatch' })), 'key-not-found');
// a token whose public object under the label is another key's (relabelled by hand): caught by the probe signature at open
const rw = p.C_OpenSession(spareSlot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
p.C_Login(rw, pkcs11js.CKU_USER, PIN);
const oid = Buffer.from([0x06, 0x03, 0x2b, 0x65, 0x70]);
p.C_CreateObject(rw, [
  { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: 0x40 }, { type: pkcs11js.CKA_TOKEN, value: true },
  { type: pkcs11js.CKA_PRIVATE, value: true }, { type: pkcs11js.CKA_SIGN, value: true }, { type: pkcs11js.CKA_SENSITIVE, value: true },
  { type: pkcs11js.CKA_EC_PARAMS, value: oid }, { type: pkcs11js.CKA_VALUE, value: Buffer.from(seed) }, { type: pkcs11js.CKA_LABEL, value: 'swapped' },
]);
p.C_CreateObject(rw, [
  { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: 0x40 }, { type: pkcs11js.CKA_TOKEN, value: true },
  { type: pkcs11js.CKA_EC_PARAMS, value: oid }, { type: pkcs11js.CKA_EC_POINT, value: Buffer.concat([Buffer.of(4, 32), Buffer.from(other)]) }, { type: pkcs11js.CKA_LABEL, value: 'swapped' },
]);
p.C_CloseSession(rw);
await rejects(pkcs11Signer(ref({ tokenLabel: 'spare', keyLabel: 'swapped' })), 'bad-signature', /does not sign for the public key/);

process.stdout.write(JSON.stringify({ ok: true, generated: Buffer.from(pub).toString('hex'), imported: Buffer.from(seedPub).toString('hex') }) + '\n');

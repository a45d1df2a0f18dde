/**
 * The manufacturer key (or any station key) inside an HSM, through PKCS#11
 * (Node only: pkcs11js loads the vendor's module, e.g. SoftHSM2's
 * /usr/lib/softhsm/libsofthsm2.so, a YubiHSM's yubihsm_pkcs11.so, a Luna or
 * nShield library). The key is Ed25519: CKK_EC_EDWARDS with CKA_EC_PARAMS the
 * OID 1.3.101.112, signed with CKM_EDDSA without parameters (pure Ed25519,
 * RFC 8032; PKCS#11 3.0).
 *
 * The private key never leaves the token: pkcs11GenerateKey creates it inside
 * (CKA_SENSITIVE, not CKA_EXTRACTABLE); pkcs11ImportKey moves an existing seed
 * in once (for a key that already has certificates out in the field) with the
 * same attributes, so it cannot be read back afterwards.
 *
 * pkcs11Signer opens one logged-in session and checks, before it is handed
 * out, that the token's private key signs for the public key stored beside it
 * (a probe signature over a random message): a wrong slot, a relabelled key or a
 * broken module fails at station start, not on the first unit. A session runs
 * one signing operation at a time (PKCS#11 rule), so signatures are queued;
 * every signature is also verified by the caller's signChecked.
 */
import { ed25519Verify } from './ed25519.ts';
import { type Signer, SignerError } from './signer.ts';

/** PKCS#11 3.0 constants pkcs11js 2.1 does not name. */
export const CKK_EC_EDWARDS = 0x40;
export const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055;
export const CKM_EDDSA = 0x1057;
/** DER of OID 1.3.101.112 (id-Ed25519): the CKA_EC_PARAMS of an Ed25519 key. */
export const ED25519_EC_PARAMS = Uint8Array.of(0x06, 0x03, 0x2b, 0x65, 0x70);
/** PrintableString "edwards25519": the older (PKCS#11 3.0 draft) way some tokens name the curve. */
const EDWARDS25519_NAME = Uint8Array.of(0x13, 0x0c, ...new TextEncoder().encode('edwards25519'));

const CKR = {
  PIN_INCORRECT: 0xa0,
  PIN_INVALID: 0xa1,
  PIN_LEN_RANGE: 0xa2,
  PIN_EXPIRED: 0xa3,
  PIN_LOCKED: 0xa4,
  CRYPTOKI_ALREADY_INITIALIZED: 0x191,
  USER_ALREADY_LOGGED_IN: 0x100,
  MECHANISM_INVALID: 0x70,
};

export interface Pkcs11KeyRef {
  /** Path of the PKCS#11 module (shared library). */
  module: string;
  /** Slot id as the token's tools list it (decimal), or */
  slot?: number | bigint | string;
  /** the token's label (what `softhsm2-util --show-slots` prints as Label). One of slot / tokenLabel is required. */
  tokenLabel?: string;
  /** CKA_LABEL of the key (private and public objects carry the same label). */
  keyLabel: string;
  /** The user PIN. */
  pin: string;
}

type Pkcs11Module = typeof import('pkcs11js');
type Pkcs11 = InstanceType<Pkcs11Module['PKCS11']>;
type Handle = Buffer;

interface Loaded {
  lib: Pkcs11Module;
  p: Pkcs11;
  users: number;
}

/** One loaded, initialised module per path (C_Initialize is once per process and module; see releaseModule). */
const modules = new Map<string, Promise<Loaded>>();

async function loadModule(path: string): Promise<Loaded> {
  let pending = modules.get(path);
  if (!pending) {
    pending = (async () => {
      let lib: Pkcs11Module;
      try {
        const m = (await import('pkcs11js')) as Pkcs11Module & { default?: Pkcs11Module };
        lib = (m.default ?? m) as Pkcs11Module;
      } catch (e) {
        throw new SignerError('hsm-unavailable', `PKCS#11 support (the pkcs11js package) cannot be loaded: ${(e as Error).message}`);
      }
      const p = new lib.PKCS11();
      try {
        p.load(path);
      } catch (e) {
        throw new SignerError('hsm-unavailable', `cannot load the PKCS#11 module ${path}: ${(e as Error).message}`);
      }
      try {
        p.C_Initialize();
      } catch (e) {
        if ((e as { code?: number }).code !== CKR.CRYPTOKI_ALREADY_INITIALIZED) {
          throw new SignerError('hsm-unavailable', `the PKCS#11 module ${path} does not initialise: ${(e as Error).message}`);
        }
      }
      return { lib, p, users: 0 };
    })();
    modules.set(path, pending);
    pending.catch(() => modules.delete(path));
  }
  const l = await pending;
  l.users++;
  return l;
}

/**
 * A session closed: the module stays loaded and initialised for the life of
 * the process. C_Finalize is process-wide, so finalising when our last session
 * closes would pull the module from under any other user in the process (and a
 * station opens the token again for the next run).
 */
function releaseModule(_path: string, l: Loaded): void {
  l.users--;
}

function handleNumber(h: Handle): bigint {
  return h.length >= 8 ? h.readBigUInt64LE(0) : BigInt(h.readUInt32LE(0));
}

function findSlot(l: Loaded, ref: Pkcs11KeyRef): Handle {
  if (ref.slot === undefined && ref.tokenLabel === undefined) throw new SignerError('token-not-found', 'name the token: a slot id or a token label');
  let slots: Handle[];
  try {
    slots = l.p.C_GetSlotList(true);
  } catch (e) {
    throw new SignerError('hsm-unavailable', `the PKCS#11 module lists no slots: ${(e as Error).message}`);
  }
  const found: { slot: Handle; label: string }[] = [];
  const seen: string[] = [];
  for (const s of slots) {
    let label: string;
    try {
      label = l.p.C_GetTokenInfo(s).label.replace(/[\s\0]+$/, '');
    } catch {
      continue;
    }
    seen.push(`${handleNumber(s)} ${JSON.stringify(label)}`);
    if (ref.slot !== undefined) {
      let want: bigint;
      try {
        want = BigInt(ref.slot);
      } catch {
        throw new SignerError('token-not-found', `slot ${String(ref.slot)} is not a slot id (a decimal number)`);
      }
      if (handleNumber(s) !== want) continue;
      if (ref.tokenLabel !== undefined && label !== ref.tokenLabel) {
        throw new SignerError('token-not-found', `slot ${want} holds token ${JSON.stringify(label)}, not ${JSON.stringify(ref.tokenLabel)}`);
      }
    } else if (label !== ref.tokenLabel) continue;
    found.push({ slot: s, label });
  }
  const what = ref.slot !== undefined ? `slot ${String(ref.slot)}` : `token ${JSON.stringify(ref.tokenLabel)}`;
  if (found.length === 0) throw new SignerError('token-not-found', `no initialised ${what} in ${ref.module} (tokens: ${seen.join(', ') || 'none'})`);
  if (found.length > 1) throw new SignerError('token-not-found', `${found.length} tokens are labelled ${JSON.stringify(ref.tokenLabel)}; name the slot id instead`);
  return found[0].slot;
}

function loginError(e: unknown): SignerError {
  const code = (e as { code?: number }).code;
  if (code === CKR.PIN_LOCKED) return new SignerError('bad-pin', 'the token PIN is locked (too many wrong attempts); the security officer must reset it');
  if (code === CKR.PIN_INCORRECT || code === CKR.PIN_INVALID || code === CKR.PIN_LEN_RANGE) return new SignerError('bad-pin', 'wrong PIN for the token');
  if (code === CKR.PIN_EXPIRED) return new SignerError('bad-pin', 'the token PIN has expired; set a new one with the token tools');
  return new SignerError('hsm-unavailable', `login to the token failed: ${(e as Error).message}`);
}

interface Session {
  l: Loaded;
  s: Handle;
  close(): void;
}

async function openSession(ref: Pkcs11KeyRef, rw: boolean): Promise<Session> {
  if (typeof ref.keyLabel !== 'string' || !ref.keyLabel) throw new SignerError('key-not-found', 'a key label is required');
  if (typeof ref.pin !== 'string' || !ref.pin) throw new SignerError('bad-pin', 'a PIN is required');
  const l = await loadModule(ref.module);
  let s: Handle | undefined;
  try {
    const slot = findSlot(l, ref);
    s = l.p.C_OpenSession(slot, l.lib.CKF_SERIAL_SESSION | (rw ? l.lib.CKF_RW_SESSION : 0));
    try {
      l.p.C_Login(s, l.lib.CKU_USER, ref.pin);
    } catch (e) {
      if ((e as { code?: number }).code !== CKR.USER_ALREADY_LOGGED_IN) throw loginError(e);
    }
  } catch (e) {
    if (s) {
      try {
        l.p.C_CloseSession(s);
      } catch {
        /* closed */
      }
    }
    releaseModule(ref.module, l);
    throw e;
  }
  const session = s;
  let closed = false;
  return {
    l,
    s: session,
    close() {
      if (closed) return;
      closed = true;
      try {
        l.p.C_CloseSession(session);
      } catch {
        /* the module went away */
      }
      releaseModule(ref.module, l);
    },
  };
}

function find(ses: Session, cls: number, label: string): Handle[] {
  const { p, lib } = ses.l;
  p.C_FindObjectsInit(ses.s, [
    { type: lib.CKA_CLASS, value: cls },
    { type: lib.CKA_LABEL, value: label },
  ]);
  try {
    return p.C_FindObjects(ses.s, 16);
  } finally {
    p.C_FindObjectsFinal(ses.s);
  }
}

/** The 32-byte key from CKA_EC_POINT: a DER OCTET STRING (04 20 ..) as PKCS#11 3.0 says, or the raw 32 bytes some tokens return. */
function ecPoint(v: Uint8Array): Uint8Array | undefined {
  if (v.length === 34 && v[0] === 0x04 && v[1] === 0x20) return new Uint8Array(v.subarray(2));
  if (v.length === 32) return new Uint8Array(v);
  return undefined;
}

function isEd25519Params(v: Uint8Array | undefined): boolean {
  if (!v) return false;
  const eq = (a: Uint8Array) => a.length === v.length && a.every((x, i) => x === v[i]);
  return eq(ED25519_EC_PARAMS) || eq(EDWARDS25519_NAME);
}

function attr(ses: Session, h: Handle, type: number): Uint8Array | undefined {
  const v = ses.l.p.C_GetAttributeValue(ses.s, h, [{ type }])[0]?.value;
  return v instanceof Uint8Array ? new Uint8Array(v) : undefined;
}

function locateKey(ses: Session, label: string): { priv: Handle; publicKey: Uint8Array } {
  const { lib } = ses.l;
  const privs = find(ses, lib.CKO_PRIVATE_KEY, label);
  if (privs.length === 0) throw new SignerError('key-not-found', `no private key labelled ${JSON.stringify(label)} on the token (is the PIN the user PIN of the right token?)`);
  if (privs.length > 1) throw new SignerError('key-not-found', `${privs.length} private keys are labelled ${JSON.stringify(label)}; a station key label must be unique`);
  const keyType = attr(ses, privs[0], lib.CKA_KEY_TYPE);
  if (!keyType || keyType[0] !== CKK_EC_EDWARDS || keyType.subarray(1).some((x) => x !== 0)) {
    throw new SignerError('bad-key', `key ${JSON.stringify(label)} is not an Edwards-curve (CKK_EC_EDWARDS) key; fieldbench signs with Ed25519`);
  }
  const pubs = find(ses, lib.CKO_PUBLIC_KEY, label);
  if (pubs.length !== 1) throw new SignerError('key-not-found', `key ${JSON.stringify(label)} has ${pubs.length === 0 ? 'no' : pubs.length} public key object${pubs.length === 1 ? '' : 's'} with its label (the public half is needed to name the key)`);
  if (!isEd25519Params(attr(ses, pubs[0], lib.CKA_EC_PARAMS))) throw new SignerError('bad-key', `key ${JSON.stringify(label)} is not on Ed25519 (CKA_EC_PARAMS is not 1.3.101.112)`);
  const point = attr(ses, pubs[0], lib.CKA_EC_POINT);
  const publicKey = point && ecPoint(point);
  if (!publicKey) throw new SignerError('bad-key', `the public key of ${JSON.stringify(label)} has an unreadable CKA_EC_POINT`);
  return { priv: privs[0], publicKey };
}

async function signOnce(ses: Session, priv: Handle, message: Uint8Array): Promise<Uint8Array> {
  try {
    ses.l.p.C_SignInit(ses.s, { mechanism: CKM_EDDSA }, priv);
  } catch (e) {
    if ((e as { code?: number }).code === CKR.MECHANISM_INVALID) throw new SignerError('hsm-unavailable', 'the token does not offer CKM_EDDSA (Ed25519 signatures need a PKCS#11 3.0 token)');
    throw new SignerError('sign-failed', `the token refused to start a signature: ${(e as Error).message}`);
  }
  try {
    const sig = await ses.l.p.C_SignAsync(ses.s, Buffer.from(message), Buffer.alloc(64));
    return new Uint8Array(sig);
  } catch (e) {
    throw new SignerError('sign-failed', `the token failed to sign: ${(e as Error).message}`);
  }
}

export interface Pkcs11Signer extends Signer {
  /** The token's key id as the tools list it: label. */
  readonly keyLabel: string;
  /** Log out and close the session (signing afterwards throws). */
  close(): void;
}

/** A Signer whose key stays in the token. Throws SignerError (hsm-unavailable, token-not-found, bad-pin, key-not-found, bad-key, bad-signature). */
export async function pkcs11Signer(ref: Pkcs11KeyRef): Promise<Pkcs11Signer> {
  const ses = await openSession(ref, false);
  try {
    const { priv, publicKey } = locateKey(ses, ref.keyLabel);
    let queue: Promise<unknown> = Promise.resolve();
    let closed = false;
    const sign = (message: Uint8Array): Promise<Uint8Array> => {
      if (closed) return Promise.reject(new SignerError('bad-key', 'this PKCS#11 signer was closed'));
      const run = queue.then(() => signOnce(ses, priv, message));
      queue = run.catch(() => undefined);
      return run;
    };
    const probe = crypto.getRandomValues(new Uint8Array(32));
    const sig = await sign(probe);
    if (!(await ed25519Verify(sig, probe, publicKey))) {
      throw new SignerError('bad-signature', `the token's private key ${JSON.stringify(ref.keyLabel)} does not sign for the public key stored with its label`);
    }
    return {
      kind: 'pkcs11',
      keyLabel: ref.keyLabel,
      publicKey,
      sign,
      close() {
        closed = true;
        void queue.finally(() => ses.close());
      },
    };
  } catch (e) {
    ses.close();
    throw e;
  }
}

const keyTemplate = (lib: Pkcs11Module, label: string, id: Uint8Array) => ({
  pub: [
    { type: lib.CKA_TOKEN, value: true },
    { type: lib.CKA_VERIFY, value: true },
    { type: lib.CKA_EC_PARAMS, value: Buffer.from(ED25519_EC_PARAMS) },
    { type: lib.CKA_LABEL, value: label },
    { type: lib.CKA_ID, value: Buffer.from(id) },
  ],
  priv: [
    { type: lib.CKA_TOKEN, value: true },
    { type: lib.CKA_SIGN, value: true },
    { type: lib.CKA_PRIVATE, value: true },
    { type: lib.CKA_SENSITIVE, value: true },
    { type: lib.CKA_EXTRACTABLE, value: false },
    { type: lib.CKA_LABEL, value: label },
    { type: lib.CKA_ID, value: Buffer.from(id) },
  ],
});

function refuseExisting(ses: Session, label: string): void {
  const { lib } = ses.l;
  const n = find(ses, lib.CKO_PRIVATE_KEY, label).length + find(ses, lib.CKO_PUBLIC_KEY, label).length;
  if (n > 0) throw new SignerError('key-exists', `the token already holds a key labelled ${JSON.stringify(label)}; pick another label (keys are never overwritten)`);
}

/** Generate an Ed25519 key pair inside the token (never extractable). Returns its public key. */
export async function pkcs11GenerateKey(ref: Pkcs11KeyRef): Promise<Uint8Array> {
  const ses = await openSession(ref, true);
  try {
    refuseExisting(ses, ref.keyLabel);
    const t = keyTemplate(ses.l.lib, ref.keyLabel, crypto.getRandomValues(new Uint8Array(8)));
    let kp;
    try {
      kp = await ses.l.p.C_GenerateKeyPairAsync(ses.s, { mechanism: CKM_EC_EDWARDS_KEY_PAIR_GEN }, t.pub, t.priv);
    } catch (e) {
      if ((e as { code?: number }).code === CKR.MECHANISM_INVALID) throw new SignerError('hsm-unavailable', 'the token cannot generate Ed25519 keys (no CKM_EC_EDWARDS_KEY_PAIR_GEN)');
      throw new SignerError('hsm-unavailable', `the token failed to generate the key: ${(e as Error).message}`);
    }
    const point = attr(ses, kp.publicKey, ses.l.lib.CKA_EC_POINT);
    const pub = point && ecPoint(point);
    if (!pub) throw new SignerError('bad-key', 'the generated public key has an unreadable CKA_EC_POINT');
    return pub;
  } finally {
    ses.close();
  }
}

/**
 * Move an existing Ed25519 seed into the token (sensitive, not extractable),
 * with its public key beside it under the same label. The caller zeroes its seed.
 */
export async function pkcs11ImportKey(ref: Pkcs11KeyRef, seed: Uint8Array, publicKey: Uint8Array): Promise<void> {
  if (!(seed instanceof Uint8Array) || seed.length !== 32 || !(publicKey instanceof Uint8Array) || publicKey.length !== 32) throw new SignerError('bad-key', 'an Ed25519 seed and public key are 32 bytes each');
  const ses = await openSession(ref, true);
  const value = Buffer.from(seed);
  try {
    refuseExisting(ses, ref.keyLabel);
    const { lib, p } = ses.l;
    const t = keyTemplate(lib, ref.keyLabel, crypto.getRandomValues(new Uint8Array(8)));
    const point = Buffer.concat([Buffer.of(0x04, 0x20), Buffer.from(publicKey)]);
    let priv: Handle | undefined;
    try {
      priv = p.C_CreateObject(ses.s, [
        { type: lib.CKA_CLASS, value: lib.CKO_PRIVATE_KEY }, { type: lib.CKA_KEY_TYPE, value: CKK_EC_EDWARDS },
        { type: lib.CKA_EC_PARAMS, value: Buffer.from(ED25519_EC_PARAMS) }, { type: lib.CKA_VALUE, value: value }, ...t.priv,
      ]);
      p.C_CreateObject(ses.s, [
        { type: lib.CKA_CLASS, value: lib.CKO_PUBLIC_KEY }, { type: lib.CKA_KEY_TYPE, value: CKK_EC_EDWARDS },
        { type: lib.CKA_EC_POINT, value: point }, ...t.pub,
      ]);
    } catch (e) {
      if (priv) {
        try {
          p.C_DestroyObject(ses.s, priv);
        } catch {
          /* left for the officer */
        }
      }
      throw new SignerError('hsm-unavailable', `the token refused the key: ${(e as Error).message}`);
    }
    const sig = await signOnce(ses, priv, publicKey);
    if (!(await ed25519Verify(sig, publicKey, publicKey))) {
      for (const h of [...find(ses, lib.CKO_PRIVATE_KEY, ref.keyLabel), ...find(ses, lib.CKO_PUBLIC_KEY, ref.keyLabel)]) {
        try {
          p.C_DestroyObject(ses.s, h);
        } catch {
          /* left for the security officer */
        }
      }
      throw new SignerError('bad-signature', 'the seed does not sign for the public key given with it; nothing was stored');
    }
  } finally {
    value.fill(0);
    ses.close();
  }
}

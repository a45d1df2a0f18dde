/**
 * Request signing between a fieldbench app, station or CLI and a fleet hub
 * (docs/HUB.md, "Access"). Every request carries:
 *   x-fieldbench-credential: base64 of the caller's owner-signed technician credential
 *   x-fieldbench-auth:       v1 ts=<ms since epoch> nonce=<32 hex> sig=<128 hex>
 * sig = Ed25519 (the credential's key) over the UTF-8 of
 *   "fieldbench-hub-v1\n" METHOD "\n" PATH?QUERY "\n" ts "\n" nonce "\n" hex(SHA-256(body))
 * The hub refuses a ts more than 5 minutes away from its clock and a nonce it
 * has seen inside that window (replay).
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { toBase64 as base64, toHex } from '../base/bytes.ts';

export const AUTH_HEADER = 'x-fieldbench-auth';
export const CREDENTIAL_HEADER = 'x-fieldbench-credential';
export const AUTH_WINDOW_MS = 300_000;

export interface RequestSigner {
  /** Ed25519 signature (64 bytes) by the credential's key. */
  sign(msg: Uint8Array): Promise<Uint8Array>;
}

export function authMessage(method: string, pathAndQuery: string, ts: number, nonce: string, body: Uint8Array): Uint8Array {
  return authMessageOfDigest(method, pathAndQuery, ts, nonce, toHex(sha256(body)));
}

/** The same message from the body's SHA-256 (hex), for callers with a faster hash at hand. */
export function authMessageOfDigest(method: string, pathAndQuery: string, ts: number, nonce: string, bodySha256Hex: string): Uint8Array {
  return new TextEncoder().encode(`fieldbench-hub-v1\n${method.toUpperCase()}\n${pathAndQuery}\n${ts}\n${nonce}\n${bodySha256Hex}`);
}

/** SHA-256 (hex) of a request body: the platform's WebCrypto when there is one (a push is megabytes), else @noble/hashes. */
export async function bodyDigestHex(body: Uint8Array): Promise<string> {
  const subtle = globalThis.crypto?.subtle;
  if (subtle && body.length > 4096) {
    try {
      return toHex(new Uint8Array(await subtle.digest('SHA-256', body as BufferSource)));
    } catch {
      /* below */
    }
  }
  return toHex(sha256(body));
}


export async function signRequest(
  signer: RequestSigner,
  credential: Uint8Array,
  method: string,
  pathAndQuery: string,
  body: Uint8Array,
  now = Date.now(),
): Promise<Record<string, string>> {
  const n = new Uint8Array(16);
  globalThis.crypto.getRandomValues(n);
  const nonce = toHex(n);
  const sig = await signer.sign(authMessageOfDigest(method, pathAndQuery, now, nonce, await bodyDigestHex(body)));
  return { [CREDENTIAL_HEADER]: base64(credential), [AUTH_HEADER]: `v1 ts=${now} nonce=${nonce} sig=${toHex(sig)}` };
}

export function parseAuthHeader(h: string | undefined): { ts: number; nonce: string; sig: string } | undefined {
  const m = /^v1 ts=(\d{1,16}) nonce=([0-9a-f]{32}) sig=([0-9a-f]{128})$/.exec(h ?? '');
  if (!m) return undefined;
  return { ts: Number(m[1]), nonce: m[2], sig: m[3] };
}

/**
 * SHA-256 of a large buffer (a firmware image): WebCrypto where the runtime has it (browsers and
 * Node; about ten times faster than JavaScript on a 256 KiB image, which a factory station hashes
 * for every unit), @noble/hashes for small inputs and where WebCrypto is missing or refuses.
 */
import { sha256 } from '@noble/hashes/sha2.js';

export async function sha256Large(data: Uint8Array): Promise<Uint8Array> {
  const subtle = globalThis.crypto?.subtle;
  if (subtle && data.length >= 4096) {
    try {
      return new Uint8Array(await subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>));
    } catch {
      /* fall through to the JavaScript implementation */
    }
  }
  return sha256(data);
}

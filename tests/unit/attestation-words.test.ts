/**
 * The attestation panel's words: the appraisal's technical details (algorithm names, interface
 * ids, kept as they are in the audit trail and the CLI) said in plain words where the verified
 * claims say the same, with the interface names the Interfaces panel uses.
 */
import { describe, expect, it } from 'vitest';
import { checkDetailInWords, claimsInWords } from '../../src/core/trust/attestation-words.ts';
import { interfaceWords } from '../../src/core/ops/access/interfaces.ts';
import type { EatClaims } from '../../src/core/trust/eat.ts';

const claims = { interfaces: { smp_serial: 'open', shell: 'open', debug: 'disabled' }, instanceId: new Uint8Array(4), profile: 'p', lifecycleState: 'secured' } as unknown as EatClaims;

describe('attestation details in words', () => {
  it('the signature as the device identity key, not the algorithm', () => {
    const w = checkDetailInWords({ check: 'signature', result: 'pass', detail: 'EdDSA signature verified with device key 7a8dbd93609b4b90' }, claims);
    expect(w).toContain("device's identity key");
    expect(w).not.toMatch(/EdDSA|ES256|7a8d/);
  });

  it('a failed signature keeps its reason', () => {
    expect(checkDetailInWords({ check: 'signature', result: 'fail', detail: 'bad-signature: no match' }, undefined)).toBe('bad-signature: no match');
  });

  it('open interfaces by their names in words (the Interfaces panel wording), no raw ids', () => {
    const w = checkDetailInWords({ check: 'interfaces', result: 'warn', detail: 'interfaces open without authentication: smp_serial, shell' }, claims);
    expect(w).toContain(interfaceWords('smp_serial'));
    expect(w).toContain(interfaceWords('shell'));
    expect(w.replace(interfaceWords('smp_serial'), '').replace(interfaceWords('shell'), '')).not.toMatch(/smp_serial|shell/);
    expect(w).not.toContain(interfaceWords('debug'));
  });

  it('all interfaces closed', () => {
    const w = checkDetailInWords({ check: 'interfaces', result: 'pass', detail: '1 interfaces disabled or authenticated' }, { ...claims, interfaces: { debug: 'disabled' } } as unknown as EatClaims);
    expect(w).toMatch(/^every interface is off or needs a technician login/);
  });

  it('other checks keep their detail', () => {
    expect(checkDetailInWords({ check: 'nonce', result: 'pass', detail: 'nonce matches the challenge' }, claims)).toBe('nonce matches the challenge');
  });

  it('the claims list names interfaces in words with their state', () => {
    const row = claimsInWords(claims).find((r) => r.label === 'Interfaces')!;
    expect(row.value).toBe(`${interfaceWords('smp_serial')}: open; ${interfaceWords('shell')}: open; ${interfaceWords('debug')}: off`);
  });
});

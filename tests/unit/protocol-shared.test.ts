/**
 * One protocol definition per SMP group (src/core/protocol), shared by the
 * client (src/core/groups, smp/errors.ts) and the reference device
 * (src/device): the same objects, not copies; no side keeps a table of its
 * own; and every error code the device can send reads, on the client, as the
 * protocol's own words for it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as protoSecurity from '../../src/core/protocol/security.ts';
import * as protoImage from '../../src/core/protocol/image.ts';
import * as protoSettings from '../../src/core/protocol/settings.ts';
import * as protoMgmt from '../../src/core/protocol/mgmt.ts';
import * as clientSecurity from '../../src/core/groups/security.ts';
import * as clientSettings from '../../src/core/groups/settings.ts';
import * as deviceSecurity from '../../src/device/security.ts';
import * as deviceMgmt from '../../src/device/mgmt.ts';
import { SmpError, describeGroupErr } from '../../src/core/smp/errors.ts';

const ROOT = resolve(import.meta.dirname, '../..');

function sources(dir: string): { file: string; text: string }[] {
  const out: { file: string; text: string }[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (name.endsWith('.ts')) out.push({ file: p.slice(ROOT.length + 1), text: readFileSync(p, 'utf8') });
  }
  return out;
}

describe('one protocol definition per group, shared by client and device', () => {
  it('the client and the device hand out the very objects the protocol module defines', () => {
    expect(clientSecurity.SEC_RC).toBe(protoSecurity.SEC_RC);
    expect(clientSecurity.SEC).toBe(protoSecurity.SEC);
    expect(deviceSecurity.SEC_RC).toBe(protoSecurity.SEC_RC);
    expect(deviceMgmt.RC).toBe(protoMgmt.MGMT_RC);
    expect(clientSettings.SETTINGS_GROUP).toBe(protoSettings.SETTINGS_GROUP);
  });

  it('every security-group code the device can send reads on the client as the protocol says (and the mgmt, image and settings codes too)', () => {
    for (const [name, e] of Object.entries(protoSecurity.SECURITY.errors)) {
      const err = new SmpError('group', 'x', e.rc, protoSecurity.SECURITY.id);
      expect(clientSecurity.secErrorName(err), name).toBe(name);
      expect(clientSecurity.describeSecError(err), name).toContain(e.text);
    }
    for (const [name, e] of Object.entries(protoImage.IMAGE_GROUP.errors)) expect(describeGroupErr(protoImage.IMAGE_GROUP.id, e.rc), name).toBe(e.text);
    for (const [name, e] of Object.entries(protoSettings.SETTINGS_GROUP_DEF.errors)) expect(describeGroupErr(protoSettings.SETTINGS_GROUP, e.rc), name).toBe(e.text);
  });

  it('no file outside src/core/protocol defines a table of group error codes or command ids of its own', () => {
    // a table of its own: an object literal mapping a code name to a number, as the protocol modules do
    const tableOfItsOwn = /\b(?:NotAuthenticated|BadSignature|EACCESSDENIED|ENOTSUP|ProvisionCert|ConfigApply)\s*:\s*\d+/;
    const offenders = [...sources(join(ROOT, 'src/core')), ...sources(join(ROOT, 'src/device'))]
      .filter((s) => !s.file.startsWith('src/core/protocol/'))
      .filter((s) => tableOfItsOwn.test(s.text))
      .map((s) => s.file);
    expect(offenders).toEqual([]);
  });
});

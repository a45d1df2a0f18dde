/**
 * AppState (the app's trust and records state, Svelte runes) over a
 * fake IndexedDB: a trust bundle added to the library is adopted when it is
 * newer and verifies under the held bundle, refused with the reason
 * otherwise; a newer verifying bundle stored before start-up is adopted at
 * start; demo trust from an earlier visit is told apart from this session's.
 */
import 'fake-indexeddb/auto';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type FieldbenchDB } from '../../src/core/store/db.ts';
import { putArtifact } from '../../src/core/store/artifacts.ts';
import { importArtifact } from '../../src/core/ops/library.ts';
import { makeAuthorities, type Authorities } from '../../src/device/provisioning.ts';
import { issueBundle } from '../../src/core/trust/bundle.ts';
import { publicKeyPem } from '../../src/core/trust/keys.ts';
import { AppState } from '../../src/ui/app-state.svelte.ts';

const DAY = 86400_000;
let auth: Authorities;
let other: Authorities;
let n = 0;
const dbs: FieldbenchDB[] = [];

beforeAll(async () => {
  auth = await makeAuthorities({ bundleVersion: 5 });
  other = await makeAuthorities({ bundleVersion: 9 });
});
afterEach(() => {
  for (const d of dbs.splice(0)) d.close();
});

function bundleV(a: Authorities, version: number): Promise<Uint8Array> {
  return issueBundle(
    { version, expires: new Date(Date.now() + 30 * DAY), anchors: { manufacturer: [a.manufacturer.publicKey], firmware: [a.firmware.publicKey], owner: [a.owner.publicKey] } },
    a.owner.privateKey,
  );
}

async function appWith(name = `app-state-${process.pid}-${n++}`): Promise<{ app: AppState; db: FieldbenchDB; name: string }> {
  let db!: FieldbenchDB;
  const app = new AppState(async () => {
    db = await openStore({ name });
    dbs.push(db);
    return db;
  });
  await app.ready;
  expect(app.storeError).toBe('');
  return { app, db, name };
}

async function holdV5(app: AppState): Promise<void> {
  await app.importFiles([new File([publicKeyPem(auth.owner.publicKey)], 'owner.pem'), new File([auth.bundle as Uint8Array<ArrayBuffer>], 'bundle.cbor')]);
  expect(app.trust?.bundle?.value.version).toBe(5);
}

describe('AppState: library bundles', () => {
  it('a newer bundle added on the Library page becomes the held bundle', async () => {
    const { app, db } = await appWith();
    await holdV5(app);
    const v6 = await bundleV(auth, 6);
    const r = await importArtifact(db, 'bundle-v6.cbor', v6, { bundle: app.trust!.bundle!.value });
    expect(r.ok).toBe(true);
    await app.libraryChanged();
    expect(app.trust?.bundle?.value.version).toBe(6);
    expect(app.libraryNotes).toHaveLength(1);
    expect(app.libraryNotes[0]).toMatchObject({ ok: true, name: 'bundle-v6.cbor' });
    expect(app.libraryNotes[0].text).toContain('trust bundle v6 verified and held');
    // Nothing new: nothing more said.
    await app.libraryChanged();
    expect(app.libraryNotes).toHaveLength(1);
  });

  it('an older bundle or one from another owner in the library is refused with the reason; the held bundle stays', async () => {
    const { app, db } = await appWith();
    await holdV5(app);
    const v4 = await bundleV(auth, 4);
    const foreign = await bundleV(other, 9);
    // Stored without the Library page's check (e.g. the library judged against another bundle).
    await putArtifact(db, 'bundle', v4, () => ({ ok: true }), { name: 'bundle-v4.cbor' });
    await putArtifact(db, 'bundle', foreign, () => ({ ok: true }), { name: 'foreign-v9.cbor' });
    await app.libraryChanged();
    expect(app.trust?.bundle?.value.version).toBe(5);
    const byName = Object.fromEntries(app.libraryNotes.map((m) => [m.name, m]));
    expect(byName['bundle-v4.cbor'].ok).toBe(false);
    expect(byName['bundle-v4.cbor'].text).toMatch(/older than the held version 5/);
    expect(byName['foreign-v9.cbor'].ok).toBe(false);
    expect(byName['foreign-v9.cbor'].text).toMatch(/not adopted/);
    // Also on the Trust page's list.
    expect(app.messages.filter((m) => !m.ok).map((m) => m.name).sort()).toEqual(['bundle-v4.cbor', 'foreign-v9.cbor']);
  });

  it('bundles the Trust page imports are not considered again as library additions', async () => {
    const { app } = await appWith();
    await holdV5(app);
    await app.importFiles([new File([(await bundleV(auth, 7)) as Uint8Array<ArrayBuffer>], 'bundle-v7.cbor')]);
    expect(app.trust?.bundle?.value.version).toBe(7);
    await app.libraryChanged();
    expect(app.libraryNotes).toEqual([]);
  });

  it('at start-up a newer verifying bundle stored earlier is adopted quietly; older ones are left alone', async () => {
    const first = await appWith();
    await holdV5(first.app);
    await putArtifact(first.db, 'bundle', await bundleV(auth, 8), () => ({ ok: true }), { name: 'bundle-v8.cbor' });
    await putArtifact(first.db, 'bundle', await bundleV(auth, 3), () => ({ ok: true }), { name: 'bundle-v3.cbor' });
    first.db.close();
    const again = await appWith(first.name);
    expect(again.app.trust?.bundle?.value.version).toBe(8);
    expect(again.app.libraryNotes.map((m) => m.ok)).toEqual([true]);
    expect(again.app.messages.some((m) => !m.ok)).toBe(false);
  });
});

describe('AppState: demo trust', () => {
  it("this session's demo trust is current; held from an earlier visit it is stale until reloaded", async () => {
    const first = await appWith();
    expect(first.app.staleDemo).toBe(false);
    await first.app.loadDemo();
    expect(first.app.trust?.demo).toBe(true);
    expect(first.app.isSessionDemo()).toBe(true);
    expect(first.app.staleDemo).toBe(false);
    first.db.close();
    // A new visit (a new AppState over the stored trust, with no demo kit of its own yet).
    const again = await appWith(first.name);
    expect(again.app.trust?.demo).toBe(true);
    expect(again.app.staleDemo).toBe(true);
    await again.app.loadDemo();
    expect(again.app.staleDemo).toBe(false);
    expect(again.app.trust?.missing).toEqual([]);
  });
});

describe('imports are operations of the audit trail', () => {
  it('records every trust import and refusal once a key can sign; nothing before', async () => {
    const { app, db } = await appWith();
    // No key yet: the owner key and bundle are imported but cannot be signed for.
    await holdV5(app);
    expect(await db.audit.count()).toBe(0);
    await app.loadDemo('a passphrase');
    const afterDemo = await db.audit.toArray();
    expect(afterDemo.map((e) => [e.op, e.outcome])).toEqual([['import', 'ok']]);
    // A refused import (the older demo bundle) is recorded with its reason.
    await app.importOlderDemoBundle();
    const last = (await db.audit.toArray()).at(-1)!;
    expect(last).toMatchObject({ op: 'import', outcome: 'rejected' });
    expect(JSON.stringify(last.details)).toMatch(/older|replay/i);
    // The Library page's imports go through the same door.
    await app.auditImport('firmware.bin', false, undefined, 'firmware.bin: not listed in the held bundle');
    expect((await db.audit.toArray()).at(-1)).toMatchObject({ op: 'import', outcome: 'rejected', details: { file: 'firmware.bin' } });
  });
});

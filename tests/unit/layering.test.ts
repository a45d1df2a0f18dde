/**
 * The layering of src/core, enforced: every file's imports are read and an
 * import that reaches upward (or out of core into a front end or the device)
 * fails here, so the shape stays true as code is added.
 *
 *   base                      nothing (the lowest module)
 *   link                      base
 *   protocol                  base (pure data: ids, codes, texts, message formats)
 *   smp                       base, link, protocol
 *   trust                     base
 *   store                     base, trust
 *   groups                    base, link, smp, protocol, trust
 *   ops and any other folder  anything in core
 *
 * Nothing under src/core imports src/ui, src/cli, src/device or src/hub.
 * The reference device (src/device) may import core but not the front ends.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const CORE = join(ROOT, 'src/core');

const ALLOWED: Record<string, readonly string[]> = {
  base: [],
  link: ['base'],
  protocol: ['base'],
  smp: ['base', 'link', 'protocol'],
  trust: ['base'],
  store: ['base', 'trust'],
  groups: ['base', 'link', 'smp', 'protocol', 'trust'],
};

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else if (/\.(ts|svelte)$/.test(name)) out.push(p);
  }
  return out;
}

/** Every module specifier a file imports or re-exports (static and dynamic). */
export function importsOf(text: string): string[] {
  const out: string[] = [];
  const re = /(?:^|[\s;])(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|(?:^|[\s;])import\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (const m of text.matchAll(re)) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}

/** The src-relative place of a relative import ('core/smp', 'ui', ...), or null for a package. */
function target(from: string, spec: string): string[] | null {
  if (!spec.startsWith('.')) return null;
  return relative(join(ROOT, 'src'), resolve(dirname(from), spec)).split(sep);
}

type Source = { file: string; text: string };
const read = (files: string[]): Source[] => files.map((file) => ({ file, text: readFileSync(file, 'utf8') }));

function violations(core: Source[] = read(filesUnder(CORE)), device: Source[] = read(filesUnder(join(ROOT, 'src/device')))): string[] {
  const bad: string[] = [];
  for (const { file, text } of core) {
    const own = relative(CORE, file).split(sep);
    const layer = own.length > 1 ? own[0] : '';
    for (const spec of importsOf(text)) {
      const t = target(file, spec);
      if (!t) continue;
      const where = relative(ROOT, file);
      if (t[0] !== 'core') {
        bad.push(`${where} imports ${spec} (outside src/core)`);
        continue;
      }
      const to = t.length > 2 ? t[1] : '';
      if (to === layer) continue;
      const allowed = ALLOWED[layer];
      if (allowed && !allowed.includes(to)) bad.push(`${where} (${layer}) imports ${spec} (${to || 'core root'})`);
    }
  }
  for (const { file, text } of device) {
    for (const spec of importsOf(text)) {
      const t = target(file, spec);
      if (t && t[0] !== 'core' && t[0] !== 'device') bad.push(`${relative(ROOT, file)} imports ${spec} (a front end)`);
    }
  }
  return bad;
}

describe('layering of src/core', () => {
  it('no file imports upward', () => {
    expect(violations()).toEqual([]);
  });

  it('the import reader sees every form of import (so the rule cannot pass by missing them)', () => {
    const text = [
      "import { a } from '../smp/client.ts';",
      "import type { B } from '../groups/os.ts';",
      "export { c } from '../ops/info.ts';",
      "export * from '../store/db.ts';",
      "import '../ui/app.css';",
      "const m = await import('../trust/cose.ts');",
      'import {\n  d,\n  e,\n} from "../link/link.ts";',
    ].join('\n');
    expect(importsOf(text)).toEqual([
      '../smp/client.ts',
      '../groups/os.ts',
      '../ops/info.ts',
      '../store/db.ts',
      '../ui/app.css',
      '../link/link.ts',
      '../trust/cose.ts',
    ].sort((x, y) => text.indexOf(x) - text.indexOf(y)));
  });

  it('an upward or outward import is reported', () => {
    const core = [
      { file: join(CORE, 'smp/session.ts'), text: "import { readParams } from '../groups/os.ts';" },
      { file: join(CORE, 'trust/cose.ts'), text: "import { encodeCbor } from '../smp/cbor.ts';" },
      { file: join(CORE, 'base/bytes.ts'), text: "import { x } from '../link/link.ts';" },
      { file: join(CORE, 'ops/info.ts'), text: "import { y } from '../../ui/app-state.svelte.ts';" },
      { file: join(CORE, 'ops/update.ts'), text: "import { z } from '../groups/image.ts';" },
    ];
    const device = [{ file: join(ROOT, 'src/device/device.ts'), text: "import { w } from '../cli/main.ts';" }];
    const bad = violations(core, device);
    expect(bad).toHaveLength(5);
    expect(bad.join('\n')).not.toMatch(/ops\/update/);
  });
});

/**
 * How an SMP group is defined, once, for both sides: the client
 * (src/core/groups) and the reference device (src/device) import the same
 * definition object. A group is its id, its command ids and its error codes,
 * each code with a name and the text a person reads. Adding a command or a
 * code is one entry in the group's table; defineGroup checks that no id or rc
 * is used twice.
 */

export interface ErrorEntry {
  /** The group-specific rc (v2 `err.rc`). */
  readonly rc: number;
  /** What it means, in words (shown to people; never matched by tests). */
  readonly text: string;
}

export interface GroupDefinition<C extends Record<string, number>, E extends Record<string, ErrorEntry>> {
  /** The name the device reports through the Enum group (when it has one). */
  readonly name: string;
  /** The group id (a default for application groups, which are found by name). */
  readonly id: number;
  /** Command ids by name. */
  readonly commands: C;
  /** Group error codes by name. */
  readonly errors: E;
  /** rc by error name: `SEC.rc.Replayed`. */
  readonly rc: { readonly [K in keyof E]: E[K]['rc'] };
  /** The error name of an rc, or undefined for one the group does not define. */
  errorName(rc: number): (keyof E & string) | undefined;
  /** The text of an rc, or undefined for one the group does not define. */
  errorText(rc: number): string | undefined;
}

export function defineGroup<const C extends Record<string, number>, const E extends Record<string, ErrorEntry>>(def: {
  name: string;
  id: number;
  commands: C;
  errors: E;
}): GroupDefinition<C, E> {
  const ids = new Map<number, string>();
  for (const [k, v] of Object.entries(def.commands)) {
    if (ids.has(v)) throw new Error(`group ${def.name}: command id ${v} is both ${ids.get(v)} and ${k}`);
    ids.set(v, k);
  }
  const byRc = new Map<number, keyof E & string>();
  const rc: Record<string, number> = {};
  for (const [k, v] of Object.entries(def.errors)) {
    if (!Number.isInteger(v.rc) || v.rc <= 0) throw new Error(`group ${def.name}: error ${k} has rc ${v.rc}`);
    if (byRc.has(v.rc)) throw new Error(`group ${def.name}: rc ${v.rc} is both ${byRc.get(v.rc)} and ${k}`);
    byRc.set(v.rc, k as keyof E & string);
    rc[k] = v.rc;
  }
  return Object.freeze({
    ...def,
    rc: Object.freeze(rc) as GroupDefinition<C, E>['rc'],
    errorName: (n: number) => byRc.get(n),
    errorText: (n: number) => {
      const k = byRc.get(n);
      return k === undefined ? undefined : def.errors[k].text;
    },
  });
}

/** rc -> text of a group's errors (the shape smp/errors.ts keeps by group id). */
export function errorTexts(g: { errors: Record<string, ErrorEntry> }): Record<number, string> {
  const out: Record<number, string> = {};
  for (const e of Object.values(g.errors)) out[e.rc] = e.text;
  return out;
}

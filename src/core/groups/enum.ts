/** SMP Enumeration management group (group 10): which groups a device supports. */
import type { RequestOptions, SmpClient } from '../smp/client.ts';
import { SmpError } from '../smp/errors.ts';
import { GROUP_NAMES, Group } from '../smp/header.ts';

import { ENUM } from '../protocol/enum.ts';

export { ENUM, ENUM_GROUP } from '../protocol/enum.ts';

export interface GroupInfo {
  id: number;
  name: string;
  /** Number of command handlers, when the device reports details. */
  handlers?: number;
}

export async function groupCount(c: SmpClient, opts?: RequestOptions): Promise<number> {
  const r = await c.read(Group.Enum, ENUM.Count, {}, opts);
  if (typeof r.count !== 'number') throw new SmpError('decode', 'enum count reply lacks "count"');
  return r.count;
}

export async function groupList(c: SmpClient, opts?: RequestOptions): Promise<number[]> {
  const r = await c.read(Group.Enum, ENUM.List, {}, opts);
  if (!Array.isArray(r.groups) || !r.groups.every((g) => typeof g === 'number')) throw new SmpError('decode', 'enum list reply lacks "groups"');
  return r.groups as number[];
}

/** Group ids with names: details where the device has them, else the list with well-known names. */
export async function listGroups(c: SmpClient, opts?: RequestOptions): Promise<GroupInfo[]> {
  try {
    const r = await c.read(Group.Enum, ENUM.Details, {}, opts);
    if (Array.isArray(r.groups)) {
      return (r.groups as Record<string, unknown>[])
        .filter((g) => g && typeof g.group === 'number')
        .map((g) => ({
          id: g.group as number,
          name: typeof g.name === 'string' && g.name ? g.name : (GROUP_NAMES[g.group as number] ?? `group ${g.group}`),
          handlers: typeof g.handlers === 'number' ? g.handlers : undefined,
        }));
    }
  } catch (e) {
    if (!(e instanceof SmpError) || e.kind === 'closed' || e.kind === 'timeout') throw e;
  }
  const ids = await groupList(c, opts);
  return ids.map((id) => ({ id, name: GROUP_NAMES[id] ?? `group ${id}` }));
}

/** Find an application-defined group by its name (our security group's id is configurable). */
export function findGroup(groups: GroupInfo[], name: string): GroupInfo | undefined {
  return groups.find((g) => g.name === name);
}

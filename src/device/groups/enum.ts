/** Enumeration management group on the reference device. */
import { ENUM, ENUM_GROUP } from '../../core/protocol/enum.ts';
import { Group } from '../../core/smp/header.ts';
import type { ReferenceDevice } from '../device.ts';
import { type Body, type GroupDef, MgmtError, RC } from '../mgmt.ts';


export function enumGroup(device: ReferenceDevice): GroupDef {
  const ids = () => [...device.groups.keys()].sort((a, b) => a - b);
  const handlerCount = (g: GroupDef) => Object.keys(g.read ?? {}).length + Object.keys(g.write ?? {}).length;
  return {
    id: Group.Enum,
    name: 'enum',
    read: {
      [ENUM.Count]: () => ({ count: device.groups.size }),
      [ENUM.List]: () => ({ groups: ids() }),
      [ENUM.Single]: (b: Body) => {
        const index = typeof b.index === 'number' ? b.index : 0;
        const list = ids();
        if (index < 0 || index >= list.length) throw new MgmtError(RC.EINVAL, ENUM_GROUP.rc.IndexTooLarge);
        return index === list.length - 1 ? { group: list[index], end: true } : { group: list[index] };
      },
      [ENUM.Details]: (b: Body) => {
        if (!device.opts.enumDetails) throw new MgmtError(RC.ENOTSUP);
        const want = Array.isArray(b.groups) ? new Set(b.groups as number[]) : null;
        return {
          groups: ids()
            .filter((id) => !want || want.has(id))
            .map((id) => {
              const g = device.groups.get(id)!;
              return { group: id, name: g.name, handlers: handlerCount(g) };
            }),
        };
      },
    },
  };
}

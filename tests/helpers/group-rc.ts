import { SmpError } from '../../src/core/smp/errors.ts';

/** The group rc a request was refused with (err.rc), undefined when it succeeded; any other failure is thrown. */
export async function groupRc(p: Promise<unknown>): Promise<number | undefined> {
  try {
    await p;
  } catch (e) {
    if (e instanceof SmpError && e.kind === 'group') return e.rc;
    throw e;
  }
  return undefined;
}

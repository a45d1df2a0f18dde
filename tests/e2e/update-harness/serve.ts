/** The update test harness (tests/e2e/update-harness), built and served by serveHarness. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Harness, serveHarness } from '../serve-harness.ts';

export type UpdateHarnessServer = Harness;
export const startUpdateHarness = (): Promise<Harness> => serveHarness(path.dirname(fileURLToPath(import.meta.url)));

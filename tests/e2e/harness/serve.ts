/** The records test harness (tests/e2e/harness), built and served by serveHarness. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Harness, serveHarness } from '../serve-harness.ts';

export type { Harness };
export const startHarness = (): Promise<Harness> => serveHarness(path.dirname(fileURLToPath(import.meta.url)));

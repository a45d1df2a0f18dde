/**
 * Live tests against the real Zephyr SMP servers (not part of `npm test`):
 *   FIELDBENCH_PEER=1 npx vitest run --config tests/peer/vitest.config.ts
 * Needs the fixtures extracted (tests/peer/fixtures.ts), libc6-i386 and qemu-system-arm.
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export default defineConfig({
  root,
  test: {
    include: ['tests/peer/**/*.test.ts'],
    environment: 'node',
    testTimeout: 60000,
    hookTimeout: 30000,
    pool: 'forks',
    fileParallelism: false,
  },
});

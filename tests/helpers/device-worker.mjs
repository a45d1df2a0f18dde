// The entry of a worker thread that runs reference devices (tests/helpers/device-worker.ts): TypeScript
// through tsx's loader, registered here so that it works under `tsx`, vitest and plain node alike.
import { register } from 'tsx/esm/api';
register();
await import('./device-worker.ts');

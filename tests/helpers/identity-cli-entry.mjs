// Runs tests/helpers/identity-cli-entry.ts through tsx, as src/cli/bin.mjs does for main.ts.
import { register } from 'tsx/esm/api';

register();
await import('./identity-cli-entry.ts');

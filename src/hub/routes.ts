/** Routes beyond records and the registry: identifier blocks. */
import type { Permission } from '../core/trust/credential.ts';
import { grantBlock, listBlocks, type BlockRequest } from './blocks.ts';
import type { Ctx } from './server.ts';

export interface Route {
  method: 'GET' | 'POST' | 'PUT';
  path: RegExp;
  permission: Permission;
  run(c: Ctx): Promise<unknown>;
}

export function extraRoutes(): Route[] {
  return [
    { method: 'POST', path: /^\/v1\/blocks$/, permission: 'sync', run: (c) => grantBlock(c.opts.db, c.body() as BlockRequest, c.caller.keyId) },
    { method: 'GET', path: /^\/v1\/blocks$/, permission: 'fleet', run: async (c) => ({ blocks: await listBlocks(c.opts.db) }) },
  ];
}

/** Routes beyond records and the registry: identifier blocks, campaigns, artifacts, device tags. */
import type { Permission } from '../core/trust/credential.ts';
import { grantBlock, listBlocks, type BlockRequest } from './blocks.ts';
import { campaignStatus, getArtifact, listCampaigns, publishCampaign, setTags, type PublishBody, type TagBody } from './campaigns.ts';
import type { Ctx } from './server.ts';

export interface Route {
  method: 'GET' | 'POST' | 'PUT';
  path: RegExp;
  permission: Permission;
  /** Takes pipelined positions (?after, ?last) as requests arrive (src/hub/chain-order.ts). */
  ordered?: boolean;
  /** Runs while the request's nonce is being recorded, and awaits c.fresh itself before it acts. */
  overlapsNonce?: boolean;
  run(c: Ctx): Promise<unknown>;
}

export function extraRoutes(): Route[] {
  return [
    { method: 'POST', path: /^\/v1\/blocks$/, permission: 'sync', run: (c) => grantBlock(c.opts.db, c.body() as BlockRequest, c.caller.keyId) },
    { method: 'GET', path: /^\/v1\/blocks$/, permission: 'fleet', run: async (c) => ({ blocks: await listBlocks(c.opts.db) }) },
    { method: 'POST', path: /^\/v1\/campaigns$/, permission: 'fleet', run: (c) => publishCampaign(c.opts.db, c.opts.trust, c.body() as PublishBody, c.opts.now?.() ?? Date.now()) },
    { method: 'GET', path: /^\/v1\/campaigns$/, permission: 'sync', run: async (c) => ({ campaigns: await listCampaigns(c.opts.db) }) },
    { method: 'GET', path: /^\/v1\/campaigns\/([0-9a-f]{32})$/, permission: 'sync', run: (c) => campaignStatus(c.opts.db, c.params[0]) },
    { method: 'GET', path: /^\/v1\/artifacts\/([0-9a-f]{64})$/, permission: 'sync', run: (c) => getArtifact(c.opts.db, c.params[0]) },
    { method: 'PUT', path: /^\/v1\/tags$/, permission: 'fleet', run: (c) => setTags(c.opts.db, c.body() as TagBody) },
  ];
}

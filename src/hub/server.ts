/**
 * The fleet hub's HTTP API (docs/HUB.md). Plain HTTP on the listen address:
 * put TLS in front (a reverse proxy) for anything but localhost.
 *
 * Every route except /v1/health is authenticated (src/core/sync/auth.ts):
 * credential under the held bundle, not revoked, inside its window; the
 * request signature by the credential's key; timestamp within 5 minutes;
 * nonce never seen (stored in the database, so a restart or a second hub
 * on the same database does not reopen the window). Permissions come from
 * the credential ('sync' or 'fleet'). Rate limits per address (before any
 * signature check) and per key.
 *
 * Errors are JSON {error: {code, message}}; unexpected failures are logged
 * with an id and answered as 'internal' with that id only.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createHash, randomUUID } from 'node:crypto';
import { AUTH_HEADER, AUTH_WINDOW_MS, CREDENTIAL_HEADER, authMessageOfDigest, parseAuthHeader } from '../core/sync/auth.ts';
import { fromHex } from '../core/base/bytes.ts';
import { keyIdHex, verifyEd25519 } from '../core/store/sig.ts';
import type { Permission, TechnicianCredential } from '../core/trust/credential.ts';
import type { HubDb } from './db.ts';
import { HubError } from './errors.ts';
import { ingest, listSources, sourceHead } from './ingest.ts';
import { deviceState, listCollisions, listDrift, lookupIdentifier, recoverRechecks } from './registry.ts';
import type { HubTrust } from './trust.ts';
import { extraRoutes, type Route } from './routes.ts';
import { ChainOrder, type ChainTurn } from './chain-order.ts';
import { createVerifyPool, sharedVerifyPool, type VerifyPool } from './verify-pool.ts';

export interface RateLimit {
  /** Requests per second, sustained. */
  rate: number;
  /** Requests allowed in a burst. */
  burst: number;
}

export interface HubOptions {
  db: HubDb;
  trust: HubTrust;
  /** Origins allowed by CORS (the app's origin when it is served elsewhere); none by default. */
  cors?: string[];
  perAddress?: RateLimit;
  perKey?: RateLimit;
  /** 'chain' (default): per-batch signature verification; 'every': every entry's signature. */
  verify?: 'chain' | 'every';
  /**
   * Worker threads that verify pushed batches (src/hub/verify-pool.ts) while
   * the main thread serves requests and the database: default one pool per
   * process sized to the machine; 0 verifies on the main thread.
   */
  verifyWorkers?: number;
  maxBodyBytes?: number;
  log?: (line: string) => void;
  now?: () => number;
}

export interface Caller {
  credential: TechnicianCredential;
  keyId: string;
}

export interface Ctx {
  opts: HubOptions;
  pool: VerifyPool;
  /** The request body as received. */
  raw: Uint8Array;
  caller: Caller;
  /** A pipelined push's place in its chain (src/hub/chain-order.ts), taken when it arrived. */
  turn?: ChainTurn;
  /** The request's nonce is recorded (resolves) or was seen before (rejects 'replayed'); routes with overlapsNonce await it themselves. */
  fresh: Promise<void>;
  query: URLSearchParams;
  params: string[];
  body: () => unknown;
}

class Buckets {
  private m = new Map<string, { tokens: number; t: number }>();
  constructor(private readonly l: RateLimit) {}
  take(key: string, now: number): number {
    let b = this.m.get(key);
    if (!b) {
      if (this.m.size > 100_000) this.m.clear();
      b = { tokens: this.l.burst, t: now };
      this.m.set(key, b);
    }
    b.tokens = Math.min(this.l.burst, b.tokens + ((now - b.t) / 1000) * this.l.rate);
    b.t = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - b.tokens) / this.l.rate) * 1000);
  }
}

const DEFAULT_PER_ADDRESS: RateLimit = { rate: 200, burst: 400 };
const DEFAULT_PER_KEY: RateLimit = { rate: 100, burst: 200 };

function coreRoutes(): Route[] {
  return [
    {
      method: 'POST', path: /^\/v1\/records$/, permission: 'sync', ordered: true,
      // the raw body goes to the verification workers, which parse it there; they start once the
      // request's signature verified, while the hub records its nonce (on PGlite that waits for the
      // push being stored: a pipelined push is verified meanwhile)
      overlapsNonce: true,
      run: async (c) => {
        const declared = ChainOrder.declared(c.query);
        const t = c.turn;
        const verify = c.opts.verify ?? 'chain';
        const prepared = c.pool.run(c.raw, verify);
        prepared.catch(() => undefined);
        try {
          await c.fresh;
        } catch (e) {
          t?.done('void');
          throw e;
        }
        try {
          return await ingest(c.opts.db, c.opts.trust, c.raw, {
            pusher: c.caller.keyId, verify, prepared,
            position: declared && t ? { ...declared, turn: t } : undefined,
          });
        } finally {
          t?.done('refused'); // no-op once stored
        }
      },
    },
    {
      method: 'GET', path: /^\/v1\/sources\/([0-9a-f]{64})$/, permission: 'sync',
      run: async (c) => ({ source: c.params[0], head: await sourceHead(c.opts.db, c.params[0]) }),
    },
    { method: 'GET', path: /^\/v1\/sources$/, permission: 'fleet', run: async (c) => ({ sources: await listSources(c.opts.db) }) },
    {
      method: 'GET', path: /^\/v1\/devices$/, permission: 'fleet',
      run: async (c) => {
        const kind = c.query.get('kind') ?? '';
        const value = c.query.get('value') ?? '';
        if (!['serial', 'devicePublicKey', 'ueid', 'mac', 'devEui'].includes(kind) || !value) {
          throw new HubError('bad-request', 'give ?kind=serial|devicePublicKey|ueid|mac|devEui&value=...');
        }
        const sides = await lookupIdentifier(c.opts.db, kind, value);
        const devices = await Promise.all(sides.map((s) => deviceState(c.opts.db, s.anchor)));
        return { kind, value, collision: sides.filter((s) => !s.anchor.startsWith('serial:')).length > 1, sides, devices };
      },
    },
    { method: 'GET', path: /^\/v1\/duplicates$/, permission: 'fleet', run: async (c) => ({ collisions: await listCollisions(c.opts.db) }) },
    { method: 'GET', path: /^\/v1\/drift$/, permission: 'fleet', run: async (c) => ({ drift: await listDrift(c.opts.db) }) },
    {
      method: 'GET', path: /^\/v1\/status$/, permission: 'sync',
      run: async (c) => {
        const [r] = await c.opts.db.query<Record<string, string>>(
          `SELECT (SELECT count(*) FROM sources) AS sources, (SELECT count(*) FROM entries) AS entries, (SELECT count(*) FROM devices) AS devices,
                  (SELECT count(*) FROM collisions) AS collisions, (SELECT count(*) FROM drift) AS drift, (SELECT count(*) FROM sources WHERE gap IS NOT NULL) AS problems`,
        );
        const n = (k: string) => Number(r[k]);
        return {
          hub: 'fieldbench-hub', storage: c.opts.db.kind, bundleVersion: c.opts.trust.bundle.version,
          sources: n('sources'), entries: n('entries'), devices: n('devices'), collisions: n('collisions'), drift: n('drift'), problems: n('problems'),
          caller: { technician: c.caller.credential.technicianId, keyId: c.caller.keyId, permissions: c.caller.credential.permissions },
        };
      },
    },
    { method: 'GET', path: /^\/v1\/bundle$/, permission: 'sync', run: async (c) => ({ version: c.opts.trust.bundle.version, bundle: Buffer.from(c.opts.trust.bytes).toString('base64') }) },
    {
      method: 'PUT', path: /^\/v1\/bundle$/, permission: 'fleet',
      run: async (c) => {
        const b = (c.body() as { bundle?: unknown })?.bundle;
        if (typeof b !== 'string') throw new HubError('bad-request', 'give {"bundle": "<base64 of the owner-signed trust bundle>"}');
        const v = await c.opts.trust.update(c.opts.db, new Uint8Array(Buffer.from(b, 'base64')), c.opts.now?.());
        return { version: v.version };
      },
    },
  ];
}

export interface RunningHub {
  url: string;
  server: Server;
  /** Worker threads verifying pushed batches (0: on the main thread). */
  verifyThreads: number;
  close(): Promise<void>;
}

/** Serve the hub on host:port (port 0 = any free port). */
export async function startHub(opts: HubOptions, listen: { host: string; port: number }): Promise<RunningHub> {
  const own = opts.verifyWorkers !== undefined ? createVerifyPool(opts.verifyWorkers, opts.log) : undefined;
  const pool = own ?? sharedVerifyPool();
  const verifyThreads = await pool.ready();
  // collision re-checks a killed hub left undone (src/hub/registry.ts)
  const rechecked = await recoverRechecks(opts.db);
  if (rechecked) (opts.log ?? ((l: string) => process.stderr.write(l + '\n')))(`[hub] ran the collision re-check of ${rechecked} push(es) a stopped hub had not finished`);
  const handler = hubHandler(opts, pool);
  const server = createServer((req, res) => void handler(req, res));
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => resolve());
  });
  const a = server.address() as { address: string; port: number };
  const host = a.address.includes(':') ? `[${a.address}]` : a.address;
  const purge = setInterval(() => void opts.db.query('DELETE FROM nonces WHERE expires < $1', [Date.now()]).catch(() => undefined), 60_000);
  purge.unref();
  return {
    url: `http://${host}:${a.port}`,
    server,
    verifyThreads,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(purge);
        server.close(() => void (own ? own.close() : Promise.resolve()).then(() => resolve()));
        server.closeAllConnections();
      }),
  };
}

export function hubHandler(opts: HubOptions, pool: VerifyPool = sharedVerifyPool()): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const routes = [...coreRoutes(), ...extraRoutes()];
  const perAddress = new Buckets(opts.perAddress ?? DEFAULT_PER_ADDRESS);
  const perKey = new Buckets(opts.perKey ?? DEFAULT_PER_KEY);
  const now = opts.now ?? Date.now;
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const maxBody = opts.maxBodyBytes ?? 64 * 1024 * 1024;
  const order = new ChainOrder();

  return async (req, res) => {
    const origin = req.headers.origin;
    if (origin && opts.cors?.includes(origin)) {
      res.setHeader('access-control-allow-origin', origin);
      res.setHeader('vary', 'Origin');
      res.setHeader('access-control-allow-headers', `content-type, ${AUTH_HEADER}, ${CREDENTIAL_HEADER}`);
      res.setHeader('access-control-allow-methods', 'GET, POST, PUT');
      res.setHeader('access-control-max-age', '600');
    }
    res.setHeader('cache-control', 'no-store');
    res.setHeader('x-content-type-options', 'nosniff');
    let turn: ChainTurn | undefined;
    try {
      const url = new URL(req.url ?? '/', 'http://hub');
      if (req.method === 'OPTIONS') {
        res.writeHead(origin && opts.cors?.includes(origin) ? 204 : 403).end();
        return;
      }
      if (req.method === 'GET' && url.pathname === '/v1/health') return send(res, 200, { ok: true, hub: 'fieldbench-hub' });
      const wait = perAddress.take(req.socket.remoteAddress ?? '?', now());
      if (wait) throw new HubError('rate-limited', `too many requests from this address; retry in ${Math.ceil(wait / 1000)} s`, 429, { retryAfterMs: wait });
      const route = routes.find((r) => r.method === req.method && r.path.test(url.pathname));
      if (!route) {
        const other = routes.some((r) => r.path.test(url.pathname));
        throw new HubError(other ? 'bad-request' : 'not-found', other ? `${req.method} is not allowed on ${url.pathname}` : `no such endpoint ${url.pathname} (see docs/HUB.md)`, other ? 405 : 404);
      }
      // a pipelined push takes its place in its chain as it arrives (src/hub/chain-order.ts)
      const declared = route.ordered ? ChainOrder.declared(url.searchParams) : undefined;
      const cred = req.headers[CREDENTIAL_HEADER];
      turn = declared && typeof cred === 'string' ? order.enter(cred, declared) : undefined;
      const raw = await readBody(req, maxBody);
      const { caller, fresh } = await authenticate(opts, req, url, raw, now());
      fresh.catch(() => undefined);
      if (!route.overlapsNonce) await fresh;
      const w2 = perKey.take(caller.keyId, now());
      if (w2) throw new HubError('rate-limited', `too many requests for technician ${caller.credential.technicianId}; retry in ${Math.ceil(w2 / 1000)} s`, 429, { retryAfterMs: w2 });
      if (route.permission && !caller.credential.permissions.includes(route.permission)) {
        throw new HubError('permission', `technician ${caller.credential.technicianId}'s credential does not grant '${route.permission}'; ask the owner for a credential with it`, 403);
      }
      let parsed: unknown;
      let parsedOk = false;
      const ctx: Ctx = {
        opts,
        pool,
        raw,
        caller,
        turn,
        fresh,
        query: url.searchParams,
        params: route.path.exec(url.pathname)!.slice(1),
        body: () => {
          if (!parsedOk) {
            if (!raw.length) throw new HubError('bad-request', 'this request needs a JSON body');
            try {
              parsed = JSON.parse(Buffer.from(raw).toString('utf8'));
            } catch {
              throw new HubError('bad-request', 'the body is not JSON');
            }
            parsedOk = true;
          }
          return parsed;
        },
      };
      const out = await route.run(ctx);
      if (out instanceof Uint8Array) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': out.length });
        res.end(out);
        return;
      }
      send(res, 200, out);
    } catch (e) {
      turn?.done('void'); // no-op when the route settled it
      if (e instanceof HubError) {
        if (e.status === 429 && e.extra?.retryAfterMs) res.setHeader('retry-after', String(Math.ceil(Number(e.extra.retryAfterMs) / 1000)));
        send(res, e.status, { error: { code: e.code, message: e.message, ...(e.extra ?? {}) } });
        return;
      }
      const id = randomUUID();
      log(`[hub] internal error ${id} on ${req.method} ${req.url}: ${(e as Error)?.stack ?? e}`);
      send(res, 500, { error: { code: 'internal', message: `the hub failed to handle this request; try again later, and give the hub's operator this id: ${id}`, id } });
    }
  };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: IncomingMessage, max: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const len = Number(req.headers['content-length'] ?? 0);
    if (len > max) {
      req.resume();
      reject(new HubError('too-large', `the request is ${len} bytes, over the hub's ${max}-byte limit; push in smaller parts`, 413));
      return;
    }
    const parts: Buffer[] = [];
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n > max) {
        req.destroy();
        reject(new HubError('too-large', `the request is over the hub's ${max}-byte limit; push in smaller parts`, 413));
        return;
      }
      parts.push(c);
    });
    req.on('end', () => resolve(new Uint8Array(Buffer.concat(parts))));
    req.on('error', reject);
  });
}

async function authenticate(opts: HubOptions, req: IncomingMessage, url: URL, body: Uint8Array, now: number): Promise<{ caller: Caller; fresh: Promise<void> }> {
  const credB64 = req.headers[CREDENTIAL_HEADER];
  const a = parseAuthHeader(req.headers[AUTH_HEADER] as string | undefined);
  if (typeof credB64 !== 'string' || !a) {
    throw new HubError('unauthenticated', `sign the request: headers ${CREDENTIAL_HEADER} (your credential) and ${AUTH_HEADER} (see docs/HUB.md); fieldbench's hub client does this`, 401);
  }
  if (Math.abs(now - a.ts) > AUTH_WINDOW_MS) {
    throw new HubError('clock-skew', `the request's time is ${Math.round((a.ts - now) / 1000)} s away from the hub's clock; set this computer's clock`, 401);
  }
  const credential = await opts.trust.credential(new Uint8Array(Buffer.from(credB64, 'base64')), { now });
  const msg = authMessageOfDigest(req.method ?? 'GET', url.pathname + url.search, a.ts, a.nonce, createHash('sha256').update(body).digest('hex'));
  if (!(await verifyEd25519(fromHex(a.sig), msg, credential.publicKey))) {
    throw new HubError('unauthenticated', 'the request signature does not verify under the credential\'s key: sign with the key the credential names', 401);
  }
  const keyId = keyIdHex(credential.publicKey);
  // the nonce is recorded in the database; the caller may start work meanwhile (and must await it)
  const fresh = opts.db.query('INSERT INTO nonces (nonce, key_id, expires) VALUES ($1, $2, $3) ON CONFLICT (nonce) DO NOTHING RETURNING 1', [fromHex(a.nonce), keyId, a.ts + AUTH_WINDOW_MS]).then((r) => {
    if (!r.length) throw new HubError('replayed', 'this request was already received (same nonce): a replay is refused; send a freshly signed request', 409);
  });
  return { caller: { credential, keyId }, fresh };
}

export type { Permission };

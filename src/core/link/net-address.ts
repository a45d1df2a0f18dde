/**
 * Network link addresses, scheme://host:port (IPv6 in brackets), as the TCP and
 * UDP links take them. Pure: no Node API.
 */
import { LinkOpenError } from './link.ts';

/**
 * Parse `scheme://host:port`; port 0 ("any free port") only with `listen`. Query
 * parameters are refused unless `query`, then the caller reads them from `url`.
 * Throws LinkOpenError('failed') with `hint` on any other shape.
 */
export function parseNetAddress(
  spec: string,
  scheme: 'tcp' | 'udp',
  hint: string,
  opts: { listen?: boolean; query?: boolean } = {},
): { host: string; port: number; url: URL; bad: () => LinkOpenError } {
  const bad = () => new LinkOpenError('failed', `not a ${scheme.toUpperCase()} address: ${JSON.stringify(spec)}`, hint);
  let u: URL;
  try {
    u = new URL(spec);
  } catch {
    throw bad();
  }
  if (u.protocol !== `${scheme}:` || !u.hostname || !u.port || (u.pathname !== '' && u.pathname !== '/') || (u.search && !opts.query) || u.hash) throw bad();
  const port = Number(u.port);
  if (!Number.isInteger(port) || port < (opts.listen ? 0 : 1) || port > 65535) throw bad();
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return { host, port, url: u, bad };
}

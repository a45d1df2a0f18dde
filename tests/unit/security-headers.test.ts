import { describe, expect, it } from 'vitest';
import { checkedOrigin, cspDirectives, headersFile, nginxSnippet, securityHeaders } from '../../scripts/security-headers.ts';

/** Parse the `_headers` format back: path lines, then indented "Name: value" lines. */
function parseHeadersFile(text: string): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  let cur: Record<string, string> | undefined;
  for (const line of text.split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    if (!/^\s/.test(line)) out.set(line.trim(), (cur = {}));
    else {
      const m = /^\s+([^:]+):\s*(.*)$/.exec(line);
      if (!m || !cur) throw new Error(`bad line ${line}`);
      cur[m[1]] = m[2];
    }
  }
  return out;
}

describe('security headers for static hosting', () => {
  it('the header set refuses framing, sniffing, referrers, and every permission but serial, usb and camera for the app itself', () => {
    const h = securityHeaders();
    expect(h['Content-Security-Policy']).toContain("frame-ancestors 'none'");
    expect(h['Content-Security-Policy']).toContain("connect-src 'self';");
    expect(h['Content-Security-Policy']).not.toMatch(/unsafe-(inline|eval)/);
    expect(h['X-Content-Type-Options']).toBe('nosniff');
    expect(h['Referrer-Policy']).toBe('no-referrer');
    const perms = Object.fromEntries(h['Permissions-Policy'].split(', ').map((p) => p.split('=')));
    expect(perms).toMatchObject({ serial: '(self)', usb: '(self)', camera: '(self)', microphone: '()', geolocation: '()' });
  });

  it('_headers and the nginx snippet carry exactly the same headers as vite preview', () => {
    const h = securityHeaders();
    const file = parseHeadersFile(headersFile());
    expect(file.get('/*')).toEqual(h);
    const nginx = nginxSnippet();
    for (const [k, v] of Object.entries(h)) expect(nginx).toContain(`add_header ${k} "${v}" always;`);
    // nothing in a header value could break out of the nginx quoting
    for (const v of Object.values(h)) expect(v).not.toMatch(/["\n;]\s*add_header/);
  });

  it('a hub origin is added to connect-src only when one is named, and only as a checked https origin', () => {
    expect(cspDirectives().find((d) => d.startsWith('connect-src'))).toBe("connect-src 'self'");
    expect(cspDirectives('https://hub.example.com').find((d) => d.startsWith('connect-src'))).toBe("connect-src 'self' https://hub.example.com");
    expect(checkedOrigin('http://127.0.0.1:8443')).toBe('http://127.0.0.1:8443');
    for (const bad of ['http://hub.example.com', 'hub.example.com', 'https://hub.example.com/path', "https://x.example'; script-src *", 'javascript:alert(1)']) {
      expect(() => checkedOrigin(bad), bad).toThrow(/FIELDBENCH_HUB_ORIGIN/);
    }
  });
});

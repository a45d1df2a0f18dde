/// <reference types="vitest/config" />
import { defineConfig, type Plugin } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { VitePWA } from 'vite-plugin-pwa';
import { cspDirectives, headersFile, nginxSnippet, securityHeaders } from './scripts/security-headers.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Content-Security-Policy of the built app (a <meta> in the built index.html,
 * and the same policy as a header from `vite preview` and in the hosting files
 * the build writes: scripts/security-headers.ts). No inline script, no
 * eval, no inline style: Svelte's component styles are emitted as CSS files
 * and its dynamic styles go through CSSOM (element.style), which CSP allows.
 * Nothing but the app's own origin (and a fleet hub's, when one is named at
 * build time): WebSerial/WebUSB are not fetches, and the virtual device runs
 * inside the page.
 */
const HUB_ORIGIN = process.env.FIELDBENCH_HUB_ORIGIN || undefined;
export const CSP = cspDirectives(HUB_ORIGIN).join('; ');

/** The hosting files: `_headers` (static hosts) and an nginx snippet, beside index.html. */
function hostingHeaders(): Plugin {
  return {
    name: 'fieldbench-hosting-headers',
    apply: 'build',
    generateBundle() {
      this.emitFile({ type: 'asset', fileName: '_headers', source: headersFile(HUB_ORIGIN) });
      this.emitFile({ type: 'asset', fileName: 'security-headers.nginx.conf', source: nginxSnippet(HUB_ORIGIN) });
    },
  };
}

/**
 * The CSP <meta> goes into the BUILT index.html only: the dev server injects
 * component styles as <style> elements for hot reload, which a strict policy
 * would block.
 */
function cspMeta(): Plugin {
  return {
    name: 'fieldbench-csp-meta',
    apply: 'build',
    transformIndexHtml: {
      order: 'post',
      handler: () => [{ tag: 'meta', attrs: { 'http-equiv': 'Content-Security-Policy', content: CSP }, injectTo: 'head-prepend' }],
    },
  };
}

/**
 * cbor-x probes for eval once at load (`new Function('')` in a try/catch) and
 * compiles record readers with `new Function` only if the probe succeeds.
 * Under our CSP the probe fails harmlessly but logs a CSP violation; in the
 * browser build we make the probe fail without trying eval, exactly as
 * cbor-x's own no-eval build does (its build swaps in an undefined
 * `BlockedFunction`). Node (CLI, tests) keeps the package unchanged.
 */
function cborNoEval(): Plugin {
  return {
    name: 'fieldbench-cbor-x-no-eval',
    apply: 'build',
    transform(code, id) {
      if (!/[\\/]cbor-x[\\/](decode|index)\.js$/.test(id) || !code.includes('new Function(')) return null;
      return { code: code.replace(/new Function\(/g, 'BlockedFunction('), map: null };
    },
  };
}

export default defineConfig({
  plugins: [
    svelte(),
    cspMeta(),
    hostingHeaders(),
    cborNoEval(),
    VitePWA({
      // The user decides when a new version takes over (UpdatePrompt.svelte).
      registerType: 'prompt',
      // Registered from UpdatePrompt.svelte through virtual:pwa-register: no inline script.
      injectRegister: false,
      // static/ (icons) is precached by the glob below; listing it again would only duplicate entries.
      includeAssets: [],
      includeManifestIcons: false,
      manifest: {
        id: '/',
        name: 'fieldbench — secure IoT device management',
        short_name: 'fieldbench',
        description: 'Manage IoT devices securely over MCUmgr SMP, offline, from the browser.',
        lang: 'en',
        start_url: '/',
        scope: '/',
        display: 'standalone',
        orientation: 'any',
        theme_color: '#0b57d0',
        background_color: '#f6f7f9',
        categories: ['utilities', 'productivity'],
        icons: [
          { src: '/icons/icon-192.png', sizes: '192x192', type: 'image/png', purpose: 'any' },
          { src: '/icons/icon-512.png', sizes: '512x512', type: 'image/png', purpose: 'any' },
          { src: '/icons/icon-maskable-512.png', sizes: '512x512', type: 'image/png', purpose: 'maskable' },
        ],
      },
      workbox: {
        // Everything the app needs offline (source maps are for debugging, not precached).
        globPatterns: ['**/*.{js,css,html,png,svg,ico,woff,woff2,json,wasm}'], // + manifest.webmanifest, added by the plugin
        globIgnores: ['**/*.map'],
        maximumFileSizeToCacheInBytes: 8 * 1024 * 1024,
        navigateFallback: 'index.html',
        cleanupOutdatedCaches: true,
        // The first install controls the open page at once; later versions wait for the user (skipWaiting on their word).
        clientsClaim: true,
        skipWaiting: false,
        runtimeCaching: [],
      },
      devOptions: { enabled: false },
    }),
  ],
  publicDir: 'static',
  // No modulepreload polyfill: every browser the app supports (WebSerial, WebUSB or the virtual device in a modern browser) has modulepreload.
  build: { target: 'es2022', sourcemap: false, modulePreload: { polyfill: false } },
  preview: { headers: securityHeaders(HUB_ORIGIN) },
  test: {
    include: ['tests/unit/**/*.test.ts'],
    environment: 'node',
    testTimeout: 20000,
    pool: 'threads',
    // The CLI records every device verb (src/cli/records.ts): tests keep theirs out of the user's data folder.
    env: { FIELDBENCH_RECORDS: process.env.FIELDBENCH_RECORDS ?? join(tmpdir(), `fieldbench-test-records-${process.pid}`) },
  },
});

/// <reference types="vitest/config" />
import { defineConfig, type Plugin } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { VitePWA } from 'vite-plugin-pwa';

/**
 * Content-Security-Policy of the built app (a <meta> in the built index.html,
 * and the same policy as a header from `vite preview`). No inline script, no
 * eval, no inline style: Svelte's component styles are emitted as CSS files
 * and its dynamic styles go through CSSOM (element.style), which CSP allows.
 * Nothing but the app's own origin: WebSerial/WebUSB are not fetches, and the
 * virtual device runs inside the page.
 */
const CSP_DIRECTIVES = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "font-src 'self'",
  "connect-src 'self'",
  "worker-src 'self'",
  "manifest-src 'self'",
  "media-src 'self' blob:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
];
export const CSP = CSP_DIRECTIVES.join('; ');
/** frame-ancestors is honoured only as a header, not in a <meta>. */
const CSP_HEADER = `${CSP}; frame-ancestors 'none'`;

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
  build: { target: 'es2022', sourcemap: true },
  preview: {
    headers: {
      'Content-Security-Policy': CSP_HEADER,
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      'Permissions-Policy': 'camera=(self), serial=(self), usb=(self)',
    },
  },
  test: {
    include: ['tests/unit/**/*.test.ts'],
    environment: 'node',
    testTimeout: 20000,
    pool: 'threads',
  },
});

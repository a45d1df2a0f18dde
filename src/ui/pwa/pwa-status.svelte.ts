/**
 * What the service worker reported, shared between the prompt (mounted on its own once the page
 * has loaded, main.ts) and the app's header, which shows "ready to work offline" in its line
 * instead of a toast over the page's controls.
 */
export const pwaStatus = $state({ offlineReady: false });

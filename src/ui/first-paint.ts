/**
 * After the first screen is painted (issue 14: first usable screen): work the
 * connect screen does not need (the local database, the trust code, the link
 * modules, the service worker) starts here, not before the first paint.
 */

/** Resolves in the task after the next frame (the page has painted), after at most `maxMs` when no frame comes (a hidden tab), or at once where nothing renders (Node). */
export function afterFirstPaint(maxMs = 500): Promise<void> {
  if (typeof requestAnimationFrame !== 'function') return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(resolve, maxMs);
    requestAnimationFrame(() =>
      setTimeout(() => {
        clearTimeout(t);
        resolve();
      }, 0),
    );
  });
}

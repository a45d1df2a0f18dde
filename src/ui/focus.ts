/**
 * Focus helpers: after an action, focus moves to its result (keyboard and
 * screen reader users land where the answer is, not back at the page).
 */

/** Svelte action: focus the element when it appears. */
export function focusOnMount(node: HTMLElement): void {
  queueMicrotask(() => node.focus({ preventScroll: false }));
}

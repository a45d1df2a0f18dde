/**
 * Interfaces in words (no imports: the attestation words and the job report use them too,
 * trust/attestation-words.ts, which may import only base): the states, their meaning and the reference device's interface
 * names as a technician reads them. Re-exported by interfaces.ts.
 */
export const INTERFACE_STATES = ['open', 'authenticated', 'disabled'] as const;
export type InterfaceState = (typeof INTERFACE_STATES)[number];

/** What each state means, in words (CLI and UI). */
export const INTERFACE_STATE_WORDS: Record<InterfaceState, string> = {
  open: 'anyone on the link can use it',
  authenticated: 'only after a technician login',
  disabled: 'nobody can use it',
};

/** Each state as a short label (the app's choices). */
export const INTERFACE_STATE_LABELS: Record<InterfaceState, string> = {
  open: 'Open',
  authenticated: 'Login required',
  disabled: 'Off',
};

/** What the reference device's interfaces are, in words (others are shown by their name). */
export const INTERFACE_NAME_WORDS: Record<string, string> = {
  smp_serial: 'Device management over the serial link (SMP)',
  shell: 'Command shell',
  debug: 'Debug port (SWD/JTAG)',
};

/** An interface's name in words, or its own name. */
export function interfaceWords(name: string): string {
  return Object.hasOwn(INTERFACE_NAME_WORDS, name) ? INTERFACE_NAME_WORDS[name]! : name;
}

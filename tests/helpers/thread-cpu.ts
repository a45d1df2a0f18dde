/**
 * CPU time of the calling THREAD, in µs (process.cpuUsage() counts every thread of the process, so
 * it cannot tell a station's main thread from the worker that runs its simulated devices). Linux:
 * utime + stime of /proc/thread-self/stat, in clock ticks (10 ms at the usual 100 Hz; a batch of
 * units takes seconds of CPU, so this is fine). Elsewhere: undefined.
 */
import { readFileSync } from 'node:fs';

const TICK_US = 10_000; // getconf CLK_TCK = 100 on Linux

export function threadCpuMicros(): number | undefined {
  try {
    const stat = readFileSync('/proc/thread-self/stat', 'utf8');
    // fields after the command name (which is in parentheses and may contain spaces)
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * TICK_US; // utime, stime (fields 14, 15 of the line)
  } catch {
    return undefined;
  }
}

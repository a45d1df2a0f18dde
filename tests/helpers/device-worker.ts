/**
 * A worker thread that runs factory-fresh reference devices (src/device), one per jig, so that a
 * benchmark's station and its simulated units do not share one event loop: the devices' key
 * generation, signatures, image hashing and flash timing run here, the station's work on the main
 * thread (tests/helpers/factory-world.ts, startDeviceWorker). Started through device-worker.mjs.
 *
 * Messages from the main thread (each answered with { re: id, ok, error? }):
 *   { id, op: 'create', jig, keys: { manufacturer, owner, firmware }, opts: JigOptions }
 *   { id, op: 'connect', jig, port }   a fresh cable: the device serves messagePortLink(port)
 *   { id, op: 'reboot', jig }          a power cycle (RAM state lost)
 *   { id, op: 'drop' }                 forget every unit (the next batch makes new ones)
 *   { id, op: 'cpu' }                  this thread's CPU time so far, µs (threadCpuMicros)
 */
import { parentPort } from 'node:worker_threads';
import { messagePortLink } from '../../src/core/link/message-port.ts';
import { createBlankDevice } from '../../src/device/provisioning.ts';
import type { ReferenceDevice } from '../../src/device/device.ts';
import { imageModelOf } from '../../src/device/groups/standard.ts';
import type { JigOptions } from './factory-world.ts';
import { threadCpuMicros } from './thread-cpu.ts';

export interface WorkerJigKeys {
  manufacturer: Uint8Array;
  owner: Uint8Array;
  firmware: Uint8Array;
}

type Request =
  | { id: number; op: 'create'; jig: number; keys: WorkerJigKeys; opts: JigOptions }
  | { id: number; op: 'connect'; jig: number; port: MessagePort }
  | { id: number; op: 'reboot'; jig: number }
  | { id: number; op: 'drop' }
  | { id: number; op: 'cpu' };

const devices = new Map<number, ReferenceDevice>();
const port = parentPort!;

port.on('message', (m: Request) => {
  void handle(m).then(
    (value) => port.postMessage({ re: m.id, ok: true, value }),
    (e) => port.postMessage({ re: m.id, ok: false, error: String((e as Error)?.stack ?? e) }),
  );
});

async function handle(m: Request): Promise<unknown> {
  switch (m.op) {
    case 'create': {
      const { device } = await createBlankDevice(
        { manufacturerKeys: [m.keys.manufacturer], ownerKeys: [m.keys.owner] },
        {
          bufSize: m.opts.bufSize ?? 512,
          ...(m.opts.bufCount ? { bufCount: m.opts.bufCount } : {}),
          image: { trustedKeys: [m.keys.firmware], eraseMsPerSector: m.opts.eraseMsPerSector ?? 0, writeUsPerByte: m.opts.writeUsPerByte ?? 0, slotSize: m.opts.slotSize ?? 256 * 1024 },
          serialRecovery: m.opts.blank ? { params: true } : undefined,
        },
      );
      const im = imageModelOf(device);
      await im.ready;
      if (m.opts.blank) {
        im.slots = [null, null];
        await device.reboot();
      }
      devices.set(m.jig, device);
      return null;
    }
    case 'connect': {
      const device = devices.get(m.jig);
      if (!device) throw new Error(`no device ${m.jig}`);
      void device.serve(messagePortLink(m.port, `worker jig ${m.jig}`));
      return null;
    }
    case 'reboot': {
      await devices.get(m.jig)?.reboot();
      return null;
    }
    case 'drop':
      devices.clear();
      return null;
    case 'cpu':
      return threadCpuMicros();
  }
}

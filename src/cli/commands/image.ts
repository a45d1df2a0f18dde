/**
 * fieldbench image info | verify | sign — MCUboot images.
 * `image sign` takes imgtool's option names and produces imgtool's bytes.
 */
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { EXIT_OK, EXIT_REJECTED, EXIT_USAGE, UsageError, parseArgs, type CliCommand, type CliIo } from '../command.ts';
import { InputError, readEd25519Private, readEd25519Public, readFirmware } from '../files.ts';
import { McubootError, parseImage, versionString, type McubootImage } from '../../core/trust/mcuboot/parse.ts';
import { formatUuid, verifyImage, type ImageVerifyReport } from '../../core/trust/mcuboot/verify.ts';
import { parseUuid, signImage, signedImageHexSegments, type SignImageOptions } from '../../core/trust/mcuboot/sign.ts';
import { IhexError, writeIhex } from '../../core/trust/ihex.ts';
import { toHex } from '../../core/base/bytes.ts';

/** Python-style int(value, 0): decimal, 0x, 0o, 0b. */
function basedInt(name: string, v: string): number {
  const s = v.trim().toLowerCase().replace(/_/g, '');
  let n: number;
  if (/^0x[0-9a-f]+$/.test(s)) n = parseInt(s.slice(2), 16);
  else if (/^0o[0-7]+$/.test(s)) n = parseInt(s.slice(2), 8);
  else if (/^0b[01]+$/.test(s)) n = parseInt(s.slice(2), 2);
  else if (/^(0|[1-9][0-9]*)$/.test(s)) n = parseInt(s, 10);
  else throw new UsageError(`--${name}: '${v}' is not a valid integer (use 0x/0o/0b prefixes as needed)`);
  if (!Number.isSafeInteger(n)) throw new UsageError(`--${name}: ${v} is too large`);
  return n;
}

function jsonReplacer(_k: string, v: unknown): unknown {
  if (v instanceof Uint8Array) return toHex(v);
  return v;
}

function describeImage(img: McubootImage) {
  const h = img.header;
  return {
    version: versionString(h.version),
    header: {
      magic: '0x' + h.magic.toString(16),
      loadAddr: '0x' + h.loadAddr.toString(16).padStart(8, '0'),
      hdrSize: h.hdrSize,
      protectTlvSize: h.protectTlvSize,
      imgSize: h.imgSize,
      flags: '0x' + h.flags.toString(16).padStart(8, '0'),
      flagNames: img.flagNames,
      version: h.version,
    },
    tlvOffset: img.tlvOffset,
    signedEnd: img.signedEnd,
    end: img.end,
    trailingBytes: img.trailingBytes,
    tlvs: img.tlvs.map((t) => ({
      type: '0x' + t.type.toString(16).padStart(2, '0'),
      name: t.name,
      protected: t.protected,
      offset: t.offset,
      length: t.length,
      value: toHex(t.value),
      ...(t.length === 4 && t.type === 0x50 ? { securityCounter: (t.value[0] | (t.value[1] << 8) | (t.value[2] << 16) | (t.value[3] << 24)) >>> 0 } : {}),
      ...(t.length === 16 && (t.type === 0x74 || t.type === 0x75) ? { uuid: formatUuid(t.value) } : {}),
    })),
  };
}

function printInfo(io: CliIo, path: string, img: McubootImage): void {
  const d = describeImage(img);
  const lines = [
    `${path}: MCUboot image, version ${d.version}`,
    `  load address   ${d.header.loadAddr}`,
    `  header size    ${d.header.hdrSize}`,
    `  image size     ${d.header.imgSize}`,
    `  protected TLVs ${d.header.protectTlvSize} bytes`,
    `  flags          ${d.header.flags}${d.header.flagNames.length ? ' (' + d.header.flagNames.join(', ') + ')' : ''}`,
    `  signed region  0..${d.signedEnd}, TLVs end at ${d.end}${d.trailingBytes ? `, ${d.trailingBytes} trailing byte(s) (padding/trailer)` : ''}`,
    `  TLVs:`,
  ];
  for (const t of d.tlvs) {
    const extra = t.securityCounter !== undefined ? ` = ${t.securityCounter}` : t.uuid ? ` = ${t.uuid}` : '';
    const val = t.value.length > 64 ? t.value.slice(0, 64) + '…' : t.value;
    lines.push(`    ${t.protected ? 'P' : ' '} ${t.type} ${t.name.padEnd(12)} ${String(t.length).padStart(4)} ${val}${extra}`);
  }
  io.out(lines.join('\n') + '\n');
}

async function withErrors(io: CliIo, usage: string, f: () => Promise<number>): Promise<number> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`error: ${e.message}\n${usage}\n`);
      return EXIT_USAGE;
    }
    if (e instanceof InputError) {
      io.err(`error: ${e.message}\n`);
      return EXIT_USAGE;
    }
    throw e;
  }
}

const infoUsage = 'usage: fieldbench image info FILE [--json]';
const verifyUsage =
  'usage: fieldbench image verify FILE --key PUB.pem [--key PUB2.pem ...] [--allow-unsigned] [--min-security-counter N] [--vid UUID] [--cid UUID] [--slot-size N] [--json]';
const signUsage =
  'usage: fieldbench image sign IN OUT --key PRIV.pem --version 1.2.3+4 --header-size 0x200 [--pad-header] [--slot-size N] [--align N] ' +
  '[--max-align N] [--max-sectors N] [--pad] [--confirm] [--test] [--overwrite-only] [--security-counter N|auto] [--sha 256|512] ' +
  '[--public-key-format hash|full] [--pure] [--load-addr A] [--rom-fixed A] [--non-bootable] [--erased-val 0|0xff] ' +
  '[--vid UUID|NAME] [--cid UUID|NAME] [--custom-tlv TAG VALUE] [--hex-addr A]\n' +
  '  IN and OUT are Intel HEX when named *.hex, raw binary otherwise (as imgtool).';

export const commands: Record<string, CliCommand> = {
  'image info': {
    summary: 'show the header and TLVs of an MCUboot image',
    usage: infoUsage,
    run: (argv, io) =>
      withErrors(io, infoUsage, async () => {
        const a = parseArgs(argv, { booleans: ['json'], known: [] });
        if (a.positional.length !== 1) throw new UsageError('expected one FILE');
        const path = a.positional[0];
        const bytes = (await readFirmware(io, path)).data;
        let img: McubootImage;
        try {
          img = parseImage(bytes);
        } catch (e) {
          if (e instanceof McubootError) {
            io.err(`error: ${path}: ${e.message} (${e.code})\n`);
            return EXIT_USAGE;
          }
          throw e;
        }
        if (a.has('json')) io.out(JSON.stringify(describeImage(img), jsonReplacer, 2) + '\n');
        else printInfo(io, path, img);
        return EXIT_OK;
      }),
  },

  'image verify': {
    summary: 'verify an MCUboot image as the bootloader would (hash, Ed25519 signature, key, TLVs)',
    usage: verifyUsage,
    run: (argv, io) =>
      withErrors(io, verifyUsage, async () => {
        const a = parseArgs(argv, {
          booleans: ['json', 'allow-unsigned', 'allow-any-unprotected-tlv'],
          known: ['key', 'min-security-counter', 'vid', 'cid', 'slot-size'],
        });
        if (a.positional.length !== 1) throw new UsageError('expected one FILE');
        const keyPaths = a.all('key');
        const allowUnsigned = a.has('allow-unsigned');
        if (keyPaths.length === 0 && !allowUnsigned) throw new UsageError('at least one --key PUB.pem is required (or --allow-unsigned)');
        const min = a.get('min-security-counter');
        const slot = a.get('slot-size');
        const uuid = (name: string) => {
          const v = a.get(name);
          if (v === undefined) return undefined;
          try {
            return parseUuid(v, undefined);
          } catch {
            throw new UsageError(`--${name} must be a UUID (8-4-4-4-12 or 32 hex digits)`);
          }
        };
        const vendorId = uuid('vid');
        const classId = uuid('cid');
        const keys: Uint8Array[] = [];
        for (const p of keyPaths) keys.push(await readEd25519Public(io, p, { what: 'firmware signing key' }));
        const path = a.positional[0];
        const bytes = (await readFirmware(io, path)).data;
        const report = await verifyImage(bytes, {
          keys,
          requireSignature: !allowUnsigned,
          minSecurityCounter: min !== undefined ? basedInt('min-security-counter', min) : undefined,
          maxImageSize: slot !== undefined ? basedInt('slot-size', slot) : undefined,
          vendorId,
          classId,
          allowAnyUnprotectedTlv: a.has('allow-any-unprotected-tlv'),
        });
        if (a.has('json')) io.out(JSON.stringify(reportJson(path, report, keyPaths), jsonReplacer, 2) + '\n');
        else {
          const lines = report.checks.map((c) => `  ${c.result.padEnd(6)} ${c.name.padEnd(17)} ${c.reason}`);
          io.out(`${path}: ${report.verdict.toUpperCase()}${report.version ? ` (version ${report.version})` : ''}\n${lines.join('\n')}\n`);
        }
        if (!report.ok) {
          io.err(`rejected: ${report.reason}\n`);
          return EXIT_REJECTED;
        }
        return EXIT_OK;
      }),
  },

  'image sign': {
    summary: 'sign a firmware binary or hex into an MCUboot image (imgtool-compatible options and output)',
    usage: signUsage,
    run: (argv, io) =>
      withErrors(io, signUsage, async () => {
        // --custom-tlv takes two values (TAG VALUE), as imgtool's; pull them out first
        const rest: string[] = [];
        const custom: [number, Uint8Array][] = [];
        for (let i = 0; i < argv.length; i++) {
          if (argv[i] === '--custom-tlv') {
            if (i + 2 >= argv.length) throw new UsageError('--custom-tlv needs TAG and VALUE');
            const tag = basedInt('custom-tlv', argv[i + 1]);
            const value = argv[i + 2];
            let bytes: Uint8Array;
            if (value.startsWith('0x')) {
              const h = value.slice(2);
              if (h.length % 2) throw new UsageError('custom TLV length is odd');
              if (!/^[0-9a-fA-F]*$/.test(h)) throw new UsageError(`custom TLV value ${value} is not hex`);
              bytes = Uint8Array.from({ length: h.length / 2 }, (_, j) => parseInt(h.slice(j * 2, j * 2 + 2), 16));
            } else bytes = new TextEncoder().encode(value);
            if (custom.some(([t]) => t === tag)) throw new UsageError(`custom TLV 0x${tag.toString(16)} already exists`);
            custom.push([tag, bytes]);
            i += 2;
          } else rest.push(argv[i]);
        }
        const a = parseArgs(rest, {
          booleans: ['pad-header', 'pad', 'confirm', 'test', 'overwrite-only', 'pure', 'non-bootable'],
          known: [
            'key', 'version', 'header-size', 'slot-size', 'align', 'max-align', 'max-sectors', 'security-counter', 'sha',
            'public-key-format', 'load-addr', 'rom-fixed', 'erased-val', 'vid', 'cid', 'hex-addr',
          ],
        });
        if (a.positional.length !== 2) throw new UsageError('expected IN and OUT');
        const [inPath, outPath] = a.positional;
        const num = (n: string) => {
          const v = a.get(n);
          return v === undefined ? undefined : basedInt(n, v);
        };
        const choice = <T extends string>(n: string, allowed: readonly T[]): T | undefined => {
          const v = a.get(n);
          if (v === undefined) return undefined;
          if (!allowed.includes(v as T)) throw new UsageError(`--${n} must be one of ${allowed.join(', ')}`);
          return v as T;
        };
        const sc = a.get('security-counter');
        const erased = choice('erased-val', ['0', '0xff'] as const);
        const opts: SignImageOptions = {
          version: a.require('version'),
          headerSize: basedInt('header-size', a.require('header-size')),
          padHeader: a.has('pad-header'),
          slotSize: num('slot-size') ?? 0,
          align: Number(choice('align', ['1', '2', '4', '8', '16', '32'] as const) ?? 1),
          maxAlign: a.has('max-align') ? Number(choice('max-align', ['8', '16', '32'] as const)) : undefined,
          maxSectors: num('max-sectors'),
          overwriteOnly: a.has('overwrite-only'),
          pad: a.has('pad'),
          confirm: a.has('confirm'),
          test: a.has('test'),
          securityCounter: sc === undefined ? undefined : sc.toLowerCase() === 'auto' ? 'auto' : basedInt('security-counter', sc),
          sha: choice('sha', ['auto', '256', '512'] as const),
          publicKeyFormat: choice('public-key-format', ['hash', 'full'] as const),
          pure: a.has('pure'),
          loadAddr: num('load-addr'),
          romFixed: num('rom-fixed'),
          nonBootable: a.has('non-bootable'),
          erasedVal: erased === undefined ? undefined : erased === '0' ? 0 : 0xff,
          vid: a.get('vid'),
          cid: a.get('cid'),
          customTlvs: custom,
        };
        const keyPath = a.get('key');
        if (keyPath) opts.key = await readEd25519Private(io, keyPath, 'signing key');
        const fw = await readFirmware(io, inPath);
        const hexOut = /\.hex$/i.test(outPath);
        let baseAddr = fw.baseAddr;
        if (baseAddr !== undefined && opts.padHeader && baseAddr) baseAddr -= opts.headerSize;
        const hexAddr = num('hex-addr');
        if (hexAddr !== undefined) baseAddr = hexAddr;
        if (hexOut && baseAddr === undefined) throw new UsageError('no address exists in the input file and none was given with --hex-addr');
        if (hexOut && baseAddr! < 0) throw new UsageError(`the header does not fit below the input's first address (0x${fw.baseAddr!.toString(16)})`);
        let out: Uint8Array;
        try {
          if (hexOut) {
            const signed = await signImage(fw.data, { ...opts, pad: false, confirm: false, test: false });
            out = new TextEncoder().encode(writeIhex(signedImageHexSegments(signed.image, baseAddr!, opts)));
          } else {
            out = (await signImage(fw.data, opts)).image;
          }
        } catch (e) {
          if (e instanceof McubootError) {
            if (e.code === 'oversized') {
              io.err(`rejected: ${e.message}\n`);
              return EXIT_REJECTED;
            }
            if (e.code === 'bad-input') throw new InputError(`${inPath}: ${e.message}`);
            throw new UsageError(e.message);
          }
          if (e instanceof IhexError) throw new UsageError(e.message);
          throw e;
        }
        try {
          await writeFile(resolve(io.cwd, outPath), out);
        } catch (e) {
          io.err(`error: cannot write ${outPath}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`);
          return EXIT_USAGE;
        }
        io.out(`${outPath}: ${out.length} bytes${opts.key ? '' : ' (unsigned)'}\n`);
        return EXIT_OK;
      }),
  },
};

function reportJson(path: string, r: ImageVerifyReport, keyPaths: string[]) {
  return {
    file: path,
    verdict: r.verdict,
    ok: r.ok,
    reason: r.reason,
    version: r.version,
    hashAlg: r.hashAlg,
    digest: r.digest,
    pure: r.pure,
    signedBy: r.keyIndex !== undefined ? keyPaths[r.keyIndex] : undefined,
    securityCounter: r.securityCounter,
    checks: r.checks,
    image: r.image ? describeImage(r.image) : undefined,
  };
}

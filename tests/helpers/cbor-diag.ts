/**
 * CBOR diagnostic notation (RFC 8949 section 8, plus the EDN extensions of
 * RFC 8610 appendix G / draft-ietf-cbor-edn-literals that the vector files
 * use) -> CBOR bytes and JS values. Test helper only.
 *
 * Supported:
 *   integers (decimal, 0x / 0o / 0b, negative), floats (decimal, exponent,
 *   hex floats 0x1.8p3, NaN, Infinity, -Infinity), encoding indicators _0.._3
 *   on integers, floats, strings, arrays and maps; "text" (JSON escapes),
 *   'text as bytes', h'..' (whitespace and / comments / allowed inside),
 *   b64'..' (base64 or base64url, padding optional), b32'..', h32'..',
 *   << item, item >> (embedded CBOR sequence, a byte string), juxtaposed
 *   string concatenation ("a" "b", h'01' h'02'); arrays, maps (key order is
 *   kept as written), tags N(...), indefinite forms [_ ], {_ }, (_ chunks),
 *   true false null undefined simple(N); comments / ... / and # to end of line.
 *
 * Bytes: a "plain" tree (definite lengths, no encoding indicators, no floats,
 * no duplicate keys, integers within cbor-x's exact range) is turned into
 * Map/Tag/array values and encoded with the project's encodeCbor, so these
 * tests exercise src/core/base/cbor.ts. Anything else is assembled head by
 * head here (leaves still via encodeCbor where it is exact).
 */
import { encodeCbor, Tag } from '../../src/core/base/cbor.ts';

export class DiagError extends Error {
  constructor(message: string, readonly offset: number, readonly line: number, readonly column: number) {
    super(`${message} (line ${line}, column ${column})`);
    this.name = 'DiagError';
  }
}

/** A simple value other than false/true/null/undefined. */
export class Simple {
  constructor(readonly value: number) {}
}

export type DiagNode =
  | { t: 'int'; value: bigint; ei?: number }
  | { t: 'float'; value: number; ei?: number }
  | { t: 'bytes'; value: Uint8Array; ei?: number }
  | { t: 'text'; value: string; ei?: number }
  | { t: 'bytes-indef'; chunks: DiagNode[] }
  | { t: 'text-indef'; chunks: DiagNode[] }
  | { t: 'array'; items: DiagNode[]; indef: boolean; ei?: number }
  | { t: 'map'; entries: [DiagNode, DiagNode][]; indef: boolean; ei?: number }
  | { t: 'tag'; tag: bigint; item: DiagNode }
  | { t: 'simple'; value: number };

const MAX_U64 = (1n << 64n) - 1n;
const te = new TextEncoder();

class Parser {
  pos = 0;
  constructor(readonly src: string) {}

  fail(msg: string, at = this.pos): never {
    let line = 1;
    let col = 1;
    for (let i = 0; i < at && i < this.src.length; i++) {
      if (this.src[i] === '\n') {
        line++;
        col = 1;
      } else col++;
    }
    throw new DiagError(msg, at, line, col);
  }

  /** Skip whitespace and comments. */
  ws(): void {
    const s = this.src;
    for (;;) {
      const c = s[this.pos];
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r') this.pos++;
      else if (c === '/') {
        const end = s.indexOf('/', this.pos + 1);
        if (end < 0) this.fail('unterminated / comment /');
        this.pos = end + 1;
      } else if (c === '#') {
        const end = s.indexOf('\n', this.pos);
        this.pos = end < 0 ? s.length : end + 1;
      } else return;
    }
  }

  peek(str: string): boolean {
    return this.src.startsWith(str, this.pos);
  }

  expect(str: string): void {
    if (!this.peek(str)) this.fail(`expected "${str}"`);
    this.pos += str.length;
  }

  /** Optional encoding indicator `_0`..`_3` right after an item (no space). */
  encodingIndicator(): number | undefined {
    const m = /^_([0-3])(?![0-9A-Za-z_])/.exec(this.src.slice(this.pos, this.pos + 3));
    if (!m) return undefined;
    this.pos += 2;
    return Number(m[1]);
  }

  /** A sequence of items separated by commas up to `close` (not consumed). */
  sequence(close: string): DiagNode[] {
    const items: DiagNode[] = [];
    this.ws();
    if (this.peek(close)) return items;
    for (;;) {
      items.push(this.item());
      this.ws();
      if (this.peek(',')) {
        this.pos++;
        this.ws();
        continue;
      }
      if (this.peek(close)) return items;
      this.fail(`expected "," or "${close}"`);
    }
  }

  item(): DiagNode {
    this.ws();
    const s = this.src;
    const c = s[this.pos];
    if (c === undefined) this.fail('unexpected end of input');
    if (c === '[') return this.array();
    if (c === '{') return this.map();
    if (c === '(' && s[this.pos + 1] === '_') return this.indefString();
    if (c === '"' || c === "'" || this.peek('<<') || /^(h|b64|b32|h32)'/.test(s.slice(this.pos, this.pos + 4))) {
      return this.strings();
    }
    if (/[0-9-]/.test(c) || this.peek('NaN') || this.peek('Infinity')) {
      const start = this.pos;
      const n = this.number();
      if (this.src[this.pos] !== '(') return n;
      // tag: N(item)
      if (n.t !== 'int' || n.ei !== undefined || n.value < 0n || n.value > MAX_U64) this.fail('bad tag number', start);
      this.pos++;
      const inner = this.item();
      this.ws();
      this.expect(')');
      return { t: 'tag', tag: n.value, item: inner };
    }
    const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(s.slice(this.pos))?.[0];
    if (word) {
      const start = this.pos;
      this.pos += word.length;
      switch (word) {
        case 'false':
          return { t: 'simple', value: 20 };
        case 'true':
          return { t: 'simple', value: 21 };
        case 'null':
          return { t: 'simple', value: 22 };
        case 'undefined':
          return { t: 'simple', value: 23 };
        case 'simple': {
          this.ws();
          this.expect('(');
          this.ws();
          const n = this.number();
          this.ws();
          this.expect(')');
          if (n.t !== 'int' || n.value < 0n || n.value > 255n || (n.value >= 24n && n.value < 32n)) {
            this.fail('simple(N) needs N in 0..23 or 32..255', start);
          }
          return { t: 'simple', value: Number(n.value) };
        }
      }
      this.fail(`unknown word "${word}"`, start);
    }
    this.fail(`unexpected character "${c}"`);
  }

  array(): DiagNode {
    this.expect('[');
    let indef = false;
    let ei: number | undefined;
    if (this.peek('_')) {
      ei = this.encodingIndicator();
      if (ei === undefined) {
        this.pos++;
        indef = true;
      }
    }
    const items = this.sequence(']');
    this.expect(']');
    return { t: 'array', items, indef, ei };
  }

  map(): DiagNode {
    this.expect('{');
    let indef = false;
    let ei: number | undefined;
    if (this.peek('_')) {
      ei = this.encodingIndicator();
      if (ei === undefined) {
        this.pos++;
        indef = true;
      }
    }
    const entries: [DiagNode, DiagNode][] = [];
    this.ws();
    if (!this.peek('}')) {
      for (;;) {
        const k = this.item();
        this.ws();
        this.expect(':');
        const v = this.item();
        entries.push([k, v]);
        this.ws();
        if (this.peek(',')) {
          this.pos++;
          continue;
        }
        if (this.peek('}')) break;
        this.fail('expected "," or "}"');
      }
    }
    this.expect('}');
    return { t: 'map', entries, indef, ei };
  }

  indefString(): DiagNode {
    const start = this.pos;
    this.expect('(_');
    const chunks = this.sequence(')');
    this.expect(')');
    if (chunks.length === 0) this.fail('(_ ) needs at least one chunk to know its type; write (_ "") or (_ h\'\')', start);
    const kind = chunks[0].t;
    if (kind !== 'bytes' && kind !== 'text') this.fail('indefinite string chunks must be strings', start);
    for (const ch of chunks) if (ch.t !== kind) this.fail('indefinite string chunks must all be the same string type', start);
    return kind === 'bytes' ? { t: 'bytes-indef', chunks } : { t: 'text-indef', chunks };
  }

  /** One or more juxtaposed strings of the same major type, concatenated. */
  strings(): DiagNode {
    const start = this.pos;
    const parts: DiagNode[] = [this.oneString()];
    for (;;) {
      const save = this.pos;
      this.ws();
      const s = this.src.slice(this.pos, this.pos + 4);
      if (s[0] === '"' || s[0] === "'" || s.startsWith('<<') || /^(h|b64|b32|h32)'/.test(s)) {
        parts.push(this.oneString());
      } else {
        this.pos = save;
        break;
      }
    }
    if (parts.length === 1) return parts[0];
    const kind = parts[0].t;
    for (const p of parts) if (p.t !== kind) this.fail('cannot concatenate text and byte strings', start);
    if (kind === 'text') return { t: 'text', value: parts.map((p) => (p as { value: string }).value).join('') };
    return { t: 'bytes', value: concat(parts.map((p) => (p as { value: Uint8Array }).value)) };
  }

  oneString(): DiagNode {
    const s = this.src;
    let node: DiagNode;
    if (this.peek('<<')) {
      this.pos += 2;
      const items = this.sequence('>>');
      this.expect('>>');
      node = { t: 'bytes', value: concat(items.map(encodeNode)) };
    } else if (s[this.pos] === '"') {
      node = { t: 'text', value: this.quoted('"') };
    } else if (s[this.pos] === "'") {
      node = { t: 'bytes', value: te.encode(this.quoted("'")) };
    } else {
      const m = /^(h|b64|b32|h32)'/.exec(s.slice(this.pos, this.pos + 4))!;
      this.pos += m[0].length;
      const bodyStart = this.pos;
      const end = s.indexOf("'", this.pos);
      if (end < 0) this.fail(`unterminated ${m[1]}'' string`);
      const raw = s.slice(this.pos, end);
      this.pos = end + 1;
      node = { t: 'bytes', value: this.decodeBase(m[1], raw, bodyStart) };
    }
    const ei = this.encodingIndicator();
    if (ei !== undefined) (node as { ei?: number }).ei = ei;
    return node;
  }

  decodeBase(kind: string, raw: string, at: number): Uint8Array {
    // comments and whitespace are allowed inside the literal
    const body = raw.replace(/\/[^/]*\//g, '').replace(/#[^\n]*/g, '').replace(/\s+/g, '');
    if (kind === 'h') {
      if (!/^[0-9a-fA-F]*$/.test(body)) this.fail("non-hex character in h''", at);
      if (body.length % 2) this.fail("odd number of hex digits in h''", at);
      const out = new Uint8Array(body.length / 2);
      for (let i = 0; i < out.length; i++) out[i] = parseInt(body.slice(2 * i, 2 * i + 2), 16);
      return out;
    }
    if (kind === 'b64') {
      if (!/^[A-Za-z0-9+/\-_]*={0,2}$/.test(body)) this.fail("invalid character in b64''", at);
      const std = body.replace(/=+$/, '').replace(/-/g, '+').replace(/_/g, '/');
      if (std.length % 4 === 1) this.fail("invalid length in b64''", at);
      const bin = atob(std + '='.repeat((4 - (std.length % 4)) % 4));
      return Uint8Array.from(bin, (ch) => ch.charCodeAt(0));
    }
    // base32 (RFC 4648) and base32hex
    const alphabet = kind === 'b32' ? 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567' : '0123456789ABCDEFGHIJKLMNOPQRSTUV';
    const chars = body.replace(/=+$/, '').toUpperCase();
    const out: number[] = [];
    let acc = 0;
    let bits = 0;
    for (const ch of chars) {
      const v = alphabet.indexOf(ch);
      if (v < 0) this.fail(`invalid character "${ch}" in ${kind}''`, at);
      acc = (acc << 5) | v;
      bits += 5;
      if (bits >= 8) {
        bits -= 8;
        out.push((acc >> bits) & 0xff);
      }
      acc &= (1 << bits) - 1;
    }
    return Uint8Array.from(out);
  }

  quoted(q: string): string {
    const s = this.src;
    this.pos++; // opening quote
    let out = '';
    for (;;) {
      const c = s[this.pos];
      if (c === undefined) this.fail('unterminated string');
      this.pos++;
      if (c === q) return out;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = s[this.pos++];
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case '"':
        case "'":
        case '\\':
        case '/':
          out += e;
          break;
        case 'u': {
          const h = s.slice(this.pos, this.pos + 4);
          if (!/^[0-9a-fA-F]{4}$/.test(h)) this.fail('bad \\u escape');
          this.pos += 4;
          out += String.fromCharCode(parseInt(h, 16));
          break;
        }
        default:
          this.fail(`unknown escape \\${e}`, this.pos - 1);
      }
    }
  }

  number(): DiagNode {
    const s = this.src;
    const start = this.pos;
    let neg = false;
    if (s[this.pos] === '-') {
      neg = true;
      this.pos++;
    }
    if (this.peek('Infinity')) {
      this.pos += 8;
      return { t: 'float', value: neg ? -Infinity : Infinity, ei: this.encodingIndicator() };
    }
    if (!neg && this.peek('NaN')) {
      this.pos += 3;
      return { t: 'float', value: NaN, ei: this.encodingIndicator() };
    }
    const rest = s.slice(this.pos);
    let m: RegExpExecArray | null;
    if ((m = /^0x([0-9a-fA-F]+)(?:\.([0-9a-fA-F]*))?p([+-]?[0-9]+)/.exec(rest))) {
      this.pos += m[0].length;
      const mant = parseInt(m[1] + (m[2] ?? ''), 16) / 16 ** (m[2]?.length ?? 0);
      const v = mant * 2 ** Number(m[3]);
      return { t: 'float', value: neg ? -v : v, ei: this.encodingIndicator() };
    }
    if ((m = /^0([xob])([0-9a-fA-F]+)/.exec(rest))) {
      this.pos += m[0].length;
      const prefix = { x: '0x', o: '0o', b: '0b' }[m[1] as 'x' | 'o' | 'b'];
      let v: bigint;
      try {
        v = BigInt(prefix + m[2]);
      } catch {
        this.fail('bad integer literal', start);
      }
      return { t: 'int', value: neg ? -v : v, ei: this.encodingIndicator() };
    }
    if ((m = /^[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(rest))) {
      this.pos += m[0].length;
      if (m[1] === undefined && m[2] === undefined) {
        const v = BigInt(m[0]);
        return { t: 'int', value: neg ? -v : v, ei: this.encodingIndicator() };
      }
      const v = Number(m[0]);
      return { t: 'float', value: neg ? -v : v, ei: this.encodingIndicator() };
    }
    this.fail('bad number', start);
  }

  parseAll(): DiagNode[] {
    const items: DiagNode[] = [];
    this.ws();
    while (this.pos < this.src.length) {
      items.push(this.item());
      this.ws();
      if (this.pos >= this.src.length) break;
      if (!this.peek(',')) this.fail('expected "," or end of input');
      this.pos++;
      this.ws();
      if (this.pos >= this.src.length) this.fail('dangling "," at end of input');
    }
    return items;
  }
}

/** Parse diagnostic notation holding exactly one item. */
export function parseDiag(text: string): DiagNode {
  const items = new Parser(text).parseAll();
  if (items.length !== 1) throw new DiagError(`expected exactly one item, found ${items.length}`, 0, 1, 1);
  return items[0];
}

/** Parse a CBOR sequence (items separated by commas), e.g. the content of << >>. */
export function parseDiagSequence(text: string): DiagNode[] {
  return new Parser(text).parseAll();
}

// ---------------------------------------------------------------------------
// Values

/**
 * The JS value of a node as decodeCbor would return it: Map for maps, Tag for
 * tags, Uint8Array, string, number (bigint beyond 2^53), boolean, null,
 * undefined, Simple for other simple values. Indefinite strings become their
 * concatenation.
 */
export function nodeToValue(n: DiagNode): unknown {
  switch (n.t) {
    case 'int':
      return n.value >= BigInt(Number.MIN_SAFE_INTEGER) && n.value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n.value) : n.value;
    case 'float':
      return n.value;
    case 'bytes':
    case 'text':
      return n.value;
    case 'bytes-indef':
      return concat(n.chunks.map((c) => (c as { value: Uint8Array }).value));
    case 'text-indef':
      return n.chunks.map((c) => (c as { value: string }).value).join('');
    case 'array':
      return n.items.map(nodeToValue);
    case 'map': {
      const m = new Map<unknown, unknown>();
      for (const [k, v] of n.entries) m.set(nodeToValue(k), nodeToValue(v));
      return m;
    }
    case 'tag':
      return new Tag(nodeToValue(n.item), Number(n.tag));
    case 'simple':
      return n.value === 20 ? false : n.value === 21 ? true : n.value === 22 ? null : n.value === 23 ? undefined : new Simple(n.value);
  }
}

export function diagToValue(text: string): unknown {
  return nodeToValue(parseDiag(text));
}

// ---------------------------------------------------------------------------
// Bytes

/** Whether encodeCbor(nodeToValue(n)) yields exactly the preferred encoding of n. */
export function isPlain(n: DiagNode): boolean {
  switch (n.t) {
    case 'int':
      // cbor-x writes integers outside the 32-bit ranges as float64
      return n.ei === undefined && n.value >= -(1n << 31n) && n.value <= (1n << 32n) - 1n;
    case 'float':
    case 'bytes-indef':
    case 'text-indef':
      return false;
    case 'bytes':
    case 'text':
      return n.ei === undefined;
    case 'array':
      return !n.indef && n.ei === undefined && n.items.every(isPlain);
    case 'map': {
      if (n.indef || n.ei !== undefined) return false;
      const seen = new Set<string>();
      for (const [k, v] of n.entries) {
        if (!isPlain(k) || !isPlain(v)) return false;
        // a JS Map would merge equal primitive keys; byte keys stay distinct
        const key = hex(encodeNode(k));
        if (seen.has(key)) return false;
        seen.add(key);
        const kv = nodeToValue(k);
        if (kv !== null && typeof kv === 'object' && !(kv instanceof Uint8Array)) return false;
      }
      // equal primitive keys with different encodings cannot occur for plain leaves
      return true;
    }
    case 'tag':
      return n.tag <= 0xffffffffn && n.tag !== 2n && n.tag !== 3n && isPlain(n.item);
    case 'simple':
      return n.value >= 20 && n.value <= 23;
  }
}

function head(major: number, arg: bigint, ei?: number): Uint8Array {
  const m = major << 5;
  let size: number; // bytes of argument: 0 (immediate), 1, 2, 4, 8
  if (ei !== undefined) size = [1, 2, 4, 8][ei];
  else if (arg < 24n) size = 0;
  else if (arg <= 0xffn) size = 1;
  else if (arg <= 0xffffn) size = 2;
  else if (arg <= 0xffffffffn) size = 4;
  else size = 8;
  if (arg > MAX_U64) throw new RangeError('argument does not fit in 64 bits');
  if (size && arg >= 1n << BigInt(size * 8)) throw new RangeError(`encoding indicator _${ei} too small for ${arg}`);
  if (size === 0) return Uint8Array.of(m | Number(arg));
  const out = new Uint8Array(1 + size);
  out[0] = m | { 1: 24, 2: 25, 4: 26, 8: 27 }[size]!;
  let v = arg;
  for (let i = size; i >= 1; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

function halfBits(v: number): number | null {
  if (Number.isNaN(v)) return 0x7e00;
  if (v === Infinity) return 0x7c00;
  if (v === -Infinity) return 0xfc00;
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a === 0) return sign;
  // normal halves: 2^-14 .. 65504; subnormal: multiples of 2^-24
  if (a >= 2 ** -14 && a <= 65504) {
    let e = Math.floor(Math.log2(a));
    if (a / 2 ** e >= 2) e++;
    else if (a / 2 ** e < 1) e--;
    const mant = a / 2 ** e - 1;
    const m10 = mant * 1024;
    if (!Number.isInteger(m10)) return null;
    return sign | ((e + 15) << 10) | m10;
  }
  if (a < 2 ** -14) {
    const m = a / 2 ** -24;
    if (!Number.isInteger(m)) return null;
    return sign | m;
  }
  return null;
}

function encodeFloat(v: number, ei?: number): Uint8Array {
  let width = ei === undefined ? 0 : ei; // 1 half, 2 single, 3 double
  if (ei === 0) throw new RangeError('_0 is not a float encoding indicator');
  if (width === 0) {
    width = halfBits(v) !== null ? 1 : Number.isNaN(v) || Math.fround(v) === v ? 2 : 3;
  }
  if (width === 1) {
    const h = halfBits(v);
    if (h === null) throw new RangeError(`${v} is not exact as a half float`);
    return Uint8Array.of(0xf9, h >> 8, h & 0xff);
  }
  const out = new Uint8Array(width === 2 ? 5 : 9);
  const dv = new DataView(out.buffer);
  if (width === 2) {
    if (!Number.isNaN(v) && Math.fround(v) !== v) throw new RangeError(`${v} is not exact as a single float`);
    out[0] = 0xfa;
    dv.setFloat32(1, v);
  } else {
    out[0] = 0xfb;
    dv.setFloat64(1, v);
  }
  return out;
}

/** Encode a node (preferred serialization unless indicators say otherwise). */
export function encodeNode(n: DiagNode): Uint8Array {
  if (isPlain(n)) return encodeCbor(nodeToValue(n));
  switch (n.t) {
    case 'int': {
      if (n.value >= 0n) {
        if (n.value <= MAX_U64) return head(0, n.value, n.ei);
        return concat([head(6, 2n), encodeBytesNode(bigBytes(n.value))]);
      }
      const m = -1n - n.value;
      if (m <= MAX_U64) return head(1, m, n.ei);
      return concat([head(6, 3n), encodeBytesNode(bigBytes(m))]);
    }
    case 'float':
      return encodeFloat(n.value, n.ei);
    case 'bytes':
      return concat([head(2, BigInt(n.value.length), n.ei), n.value]);
    case 'text': {
      const b = te.encode(n.value);
      return concat([head(3, BigInt(b.length), n.ei), b]);
    }
    case 'bytes-indef':
      return concat([Uint8Array.of(0x5f), ...n.chunks.map(encodeNode), Uint8Array.of(0xff)]);
    case 'text-indef':
      return concat([Uint8Array.of(0x7f), ...n.chunks.map(encodeNode), Uint8Array.of(0xff)]);
    case 'array':
      if (n.indef) return concat([Uint8Array.of(0x9f), ...n.items.map(encodeNode), Uint8Array.of(0xff)]);
      return concat([head(4, BigInt(n.items.length), n.ei), ...n.items.map(encodeNode)]);
    case 'map': {
      const body = n.entries.flatMap(([k, v]) => [encodeNode(k), encodeNode(v)]);
      if (n.indef) return concat([Uint8Array.of(0xbf), ...body, Uint8Array.of(0xff)]);
      return concat([head(5, BigInt(n.entries.length), n.ei), ...body]);
    }
    case 'tag':
      return concat([head(6, n.tag), encodeNode(n.item)]);
    case 'simple':
      return n.value < 24 ? Uint8Array.of(0xe0 | n.value) : Uint8Array.of(0xf8, n.value);
  }
}

function encodeBytesNode(b: Uint8Array): Uint8Array {
  return concat([head(2, BigInt(b.length)), b]);
}

function bigBytes(v: bigint): Uint8Array {
  let h = v.toString(16);
  if (h.length % 2) h = '0' + h;
  return Uint8Array.from(h.match(/../g)!.map((x) => parseInt(x, 16)));
}

/** Diagnostic notation (one item) -> CBOR bytes. */
export function diagToBytes(text: string): Uint8Array {
  return encodeNode(parseDiag(text));
}

/** Diagnostic notation of a CBOR sequence -> concatenated bytes. */
export function diagSequenceToBytes(text: string): Uint8Array {
  return concat(parseDiagSequence(text).map(encodeNode));
}

function concat(parts: Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += p.length;
  const out = new Uint8Array(len);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function hex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

export function fromHex(h: string): Uint8Array {
  const clean = h.replace(/\s+/g, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(clean)) throw new Error('bad hex');
  return Uint8Array.from(clean.match(/../g) ?? [], (x) => parseInt(x, 16));
}

/**
 * Unit labels: serial, model, DevEUI / MAC as text, and a 2D code (QR or
 * Data Matrix, encoded by bwip-js) carrying the same identifiers and the
 * fingerprint of the device's identity key. Rendered as SVG and PDF (any
 * printer, the app prints the SVG from the browser) and as ZPL (Zebra: ^BQ for
 * QR, ^BX for Data Matrix).
 *
 * The payload read back by identify (src/core/ops/identify.ts parseLabelCode):
 *   FB1;S=<serial>;M=<model>[;E=<devEui 16 hex>][;A=<mac 12 hex>];K=<fingerprint 32 hex>
 * Values are percent-encoded outside [A-Za-z0-9._-/:], so ';', '=' and ZPL's
 * '^' and '~' never appear raw. The fingerprint is keyFingerprint(): the first
 * 16 bytes of SHA-256 over the Ed25519 identity public key, so a label printed
 * for one device key cannot pass identify on a device holding another.
 */
import bwipjs from 'bwip-js/generic';
import { PDFDocument, StandardFonts, rgb } from 'pdf-lib';
import { checkLabelData, LabelError, labelPayload, type LabelData } from './label-code.ts';

export * from './label-code.ts';

export interface LabelTemplate {
  /** Label stock size in millimetres (default 50 x 25). */
  widthMm: number;
  heightMm: number;
  /** 2D symbology (default 'qr'). */
  code: 'qr' | 'datamatrix';
  /** Printer resolution for ZPL, dots per inch (default 203). */
  dpi: 203 | 300 | 600;
}

export const DEFAULT_LABEL_TEMPLATE: LabelTemplate = { widthMm: 50, heightMm: 25, code: 'qr', dpi: 203 };

/** Validate a template (profile field, unknown shape) over the defaults. */
export function labelTemplate(t?: unknown): LabelTemplate {
  if (t === undefined || t === null) return DEFAULT_LABEL_TEMPLATE;
  if (typeof t !== 'object') throw new LabelError('bad-template', 'a label template is an object {widthMm, heightMm, code, dpi}');
  const o = t as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!['widthMm', 'heightMm', 'code', 'dpi'].includes(k)) throw new LabelError('bad-template', `unknown label template field ${k}`);
  const out = { ...DEFAULT_LABEL_TEMPLATE };
  const size = (k: 'widthMm' | 'heightMm', min: number, max: number) => {
    if (o[k] === undefined) return;
    const v = o[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw new LabelError('bad-template', `${k} must be ${min}..${max} mm`);
    out[k] = v;
  };
  size('widthMm', 20, 200);
  size('heightMm', 10, 200);
  if (o.code !== undefined) {
    if (o.code !== 'qr' && o.code !== 'datamatrix') throw new LabelError('bad-template', "code must be 'qr' or 'datamatrix'");
    out.code = o.code;
  }
  if (o.dpi !== undefined) {
    if (o.dpi !== 203 && o.dpi !== 300 && o.dpi !== 600) throw new LabelError('bad-template', 'dpi must be 203, 300 or 600');
    out.dpi = o.dpi;
  }
  if (out.widthMm < out.heightMm * 1.5) throw new LabelError('bad-template', 'the label must be at least 1.5 times as wide as it is high (code on the left, text on the right)');
  return out;
}

/** The 2D code's module matrix (true = dark), without quiet zone. */
export function labelMatrix(d: LabelData, code: LabelTemplate['code'] = 'qr'): boolean[][] {
  const text = labelPayload(d);
  // QR: error correction M (15 %), enough for a scuffed label at these sizes
  const r = bwipjs.raw(code === 'qr' ? 'qrcode' : 'datamatrix', text, code === 'qr' ? 'eclevel=M' : '') as Array<{ pixs: number[]; pixx: number; pixy: number }>;
  const { pixs, pixx, pixy } = r[0];
  const m: boolean[][] = [];
  for (let y = 0; y < pixy; y++) {
    const row: boolean[] = [];
    for (let x = 0; x < pixx; x++) row.push(pixs[y * pixx + x] === 1);
    m.push(row);
  }
  return m;
}

/** Runs of dark modules per row: [x, y, length]. */
function runs(m: boolean[][]): [number, number, number][] {
  const out: [number, number, number][] = [];
  m.forEach((row, y) => {
    let x = 0;
    while (x < row.length) {
      if (!row[x]) {
        x++;
        continue;
      }
      const s = x;
      while (x < row.length && row[x]) x++;
      out.push([s, y, x - s]);
    }
  });
  return out;
}

interface Layout {
  t: LabelTemplate;
  margin: number;
  /** Code square: origin and module size (mm), quiet zone included in the square. */
  codeX: number;
  codeY: number;
  codeSize: number;
  module: number;
  quiet: number;
  textX: number;
  lines: { text: string; size: number; bold: boolean; y: number }[];
}

function groups(h: string, n: number): string {
  return h.toUpperCase().match(new RegExp(`.{1,${n}}`, 'g'))!.join(' ');
}

function layout(d: LabelData, t: LabelTemplate, m: boolean[][]): Layout {
  const margin = Math.max(1, t.heightMm * 0.06);
  const quiet = t.code === 'qr' ? 4 : 1; // QR needs 4 modules of quiet zone, Data Matrix 1
  const codeSize = t.heightMm - 2 * margin;
  const module = codeSize / (m.length + 2 * quiet);
  const textX = margin + codeSize + margin;
  const textW = t.widthMm - textX - margin;
  const raw: { text: string; weight: number; bold: boolean }[] = [
    { text: d.model, weight: 1.25, bold: true },
    { text: `S/N ${d.serial}`, weight: 1.1, bold: true },
  ];
  if (d.devEui) raw.push({ text: `DevEUI ${groups(d.devEui, 4)}`, weight: 0.85, bold: false });
  if (d.mac) raw.push({ text: `MAC ${d.mac.toUpperCase().match(/.{2}/g)!.join(':')}`, weight: 0.85, bold: false });
  raw.push({ text: `Key ${groups(d.keyFingerprint.slice(0, 16), 4)}`, weight: 0.75, bold: false });
  const usable = t.heightMm - 2 * margin;
  const totalWeight = raw.reduce((a, r) => a + r.weight, 0) * 1.25;
  let y = margin;
  const lines = raw.map((r) => {
    // font size from the height share, limited so the line fits the width (monospace ~0.6 em per char)
    const size = Math.min((usable * r.weight) / totalWeight, textW / (0.62 * r.text.length));
    y += (usable * r.weight * 1.25) / totalWeight;
    return { text: r.text, size, bold: r.bold, y: y - (usable * r.weight * 0.3) / totalWeight };
  });
  return { t, margin, codeX: margin, codeY: margin, codeSize, module, quiet, textX, lines };
}

function xml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const n = (v: number) => Number(v.toFixed(3)).toString();

/** SVG label (millimetre units), ready to print at 100%. */
export function labelSvg(d: LabelData, template?: unknown): string {
  const c = checkLabelData(d);
  const t = labelTemplate(template);
  const m = labelMatrix(c, t.code);
  const L = layout(c, t, m);
  const ox = L.codeX + L.quiet * L.module;
  const oy = L.codeY + L.quiet * L.module;
  const path = runs(m)
    .map(([x, y, len]) => `M${n(ox + x * L.module)} ${n(oy + y * L.module)}h${n(len * L.module)}v${n(L.module)}h${n(-len * L.module)}z`)
    .join('');
  const text = L.lines
    .map((l) => `<text x="${n(L.textX)}" y="${n(l.y)}" font-size="${n(l.size)}"${l.bold ? ' font-weight="bold"' : ''}>${xml(l.text)}</text>`)
    .join('');
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${n(t.widthMm)}mm" height="${n(t.heightMm)}mm" viewBox="0 0 ${n(t.widthMm)} ${n(t.heightMm)}" role="img" aria-label="${xml(`label ${c.model} ${c.serial}`)}">` +
    `<rect width="100%" height="100%" fill="#fff"/>` +
    `<path d="${path}" fill="#000" shape-rendering="crispEdges"/>` +
    `<g font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" fill="#000">${text}</g>` +
    `</svg>`
  );
}

const PT_PER_MM = 72 / 25.4;

/** PDF label: one page of the label's size. */
export async function labelPdf(d: LabelData, template?: unknown): Promise<Uint8Array> {
  return labelsPdf([d], template);
}

/** Several labels, one per page (a print run). */
export async function labelsPdf(list: LabelData[], template?: unknown): Promise<Uint8Array> {
  const t = labelTemplate(template);
  if (!Array.isArray(list) || list.length === 0) throw new LabelError('bad-label', 'no labels to print');
  const doc = await PDFDocument.create();
  doc.setTitle(list.length === 1 ? `Label ${list[0].serial}` : `${list.length} labels`);
  doc.setProducer('fieldbench');
  doc.setCreator('fieldbench');
  // fixed dates: the same labels give the same bytes
  doc.setCreationDate(new Date(0));
  doc.setModificationDate(new Date(0));
  const mono = await doc.embedFont(StandardFonts.Courier);
  const monoBold = await doc.embedFont(StandardFonts.CourierBold);
  for (const raw of list) {
    const c = checkLabelData(raw);
    const m = labelMatrix(c, t.code);
    const L = layout(c, t, m);
    const H = t.heightMm * PT_PER_MM;
    const page = doc.addPage([t.widthMm * PT_PER_MM, H]);
    const ox = L.codeX + L.quiet * L.module;
    const oy = L.codeY + L.quiet * L.module;
    for (const [x, y, len] of runs(m)) {
      page.drawRectangle({ x: (ox + x * L.module) * PT_PER_MM, y: H - (oy + (y + 1) * L.module) * PT_PER_MM, width: len * L.module * PT_PER_MM, height: L.module * PT_PER_MM, color: rgb(0, 0, 0), borderWidth: 0 });
    }
    for (const l of L.lines) page.drawText(l.text, { x: L.textX * PT_PER_MM, y: H - l.y * PT_PER_MM, size: l.size * PT_PER_MM, font: l.bold ? monoBold : mono, color: rgb(0, 0, 0) });
  }
  return doc.save({ useObjectStreams: false });
}

/** ZPL field data: ^FH hex escapes for anything but plain printable characters. */
function zplField(s: string): string {
  let out = '';
  for (const b of new TextEncoder().encode(s)) {
    const ch = String.fromCharCode(b);
    out += /[A-Za-z0-9 .,:/_+=()#*-]/.test(ch) ? ch : '_' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/** ZPL II for Zebra printers (^BQ QR model 2 or ^BX Data Matrix ECC 200). */
export function labelZpl(d: LabelData, template?: unknown): string {
  const c = checkLabelData(d);
  const t = labelTemplate(template);
  const m = labelMatrix(c, t.code);
  const L = layout(c, t, m);
  const dot = (mm: number) => Math.round((mm * t.dpi) / 25.4);
  const payload = labelPayload(c); // only [A-Za-z0-9._-/:%;=]: no ^ or ~
  const symbols = m.length + 2 * L.quiet;
  const mag = Math.max(1, Math.min(10, Math.floor(dot(L.codeSize) / symbols)));
  const out = ['^XA', '^CI28', `^PW${dot(t.widthMm)}`, `^LL${dot(t.heightMm)}`, '^LH0,0'];
  // ZPL places the QR's top a few dots below ^FO (model 2 adds its own quiet zone); keep our quiet zone as offset
  const ox = dot(L.codeX) + L.quiet * mag;
  const oy = dot(L.codeY) + L.quiet * mag;
  if (t.code === 'qr') out.push(`^FO${ox},${oy}^BQN,2,${mag},M^FDMA,${payload}^FS`);
  else out.push(`^FO${ox},${oy}^BXN,${mag},200^FD${payload}^FS`);
  for (const l of L.lines) {
    const h = Math.max(10, dot(l.size));
    out.push(`^FO${dot(L.textX)},${Math.max(0, dot(l.y) - h)}^A0N,${h},${Math.round(h * 0.6)}^FH_^FD${zplField(l.text)}^FS`);
  }
  out.push('^XZ');
  return out.join('\n') + '\n';
}

/** Several labels as one ZPL job. */
export function labelsZpl(list: LabelData[], template?: unknown): string {
  return list.map((d) => labelZpl(d, template)).join('');
}

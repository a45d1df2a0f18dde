/**
 * The job report as a PDF (pdf-lib, standard fonts, A4): what the page shows,
 * in local dates and times, one or two pages for a usual job. The report
 * itself (the JSON of report.ts) is embedded as the attachment
 * `job-report.json`, so a PDF can be checked against the audit trail it came
 * from (readReportPdf, then verifyJobReport; `fieldbench report verify`), and
 * the hash of the last audit entry it covers is in its keywords too.
 *
 * The app loads this module only when "Download PDF" is pressed (pdf-lib
 * stays out of the initial JavaScript); the CLI's `fieldbench report` uses it
 * as it is.
 */
import { PDFArray, PDFDict, PDFDocument, PDFName, PDFRawStream, PDFString, PDFHexString, StandardFonts, decodePDFRawStream, rgb, type PDFFont, type PDFPage } from 'pdf-lib';
import { localDateTime } from '../../trust/attestation-words.ts';
import { REPORT_FORMAT, RESULT_WORDS, stepName, type JobReport, type Proof } from './report.ts';

export const REPORT_ATTACHMENT = 'job-report.json';

const A4: [number, number] = [595.28, 841.89];
const MARGIN = 48;
const WIDTH = A4[0] - 2 * MARGIN;

/** WinAnsi text only (the standard fonts' encoding): anything else becomes its nearest ASCII. */
export function pdfSafe(s: string): string {
  return s
    .replace(/[✓✔]/g, 'ok')
    .replace(/[✗✘]/g, 'x')
    .replace(/→/g, '->')
    .replace(/≥/g, '>=')
    .replace(/≤/g, '<=')
    .replace(/[^\x20-\x7e\xa0-\xff…–—‘’“”•€]/g, '?');
}

interface Style {
  font: PDFFont;
  size: number;
  color?: [number, number, number];
}

class Writer {
  pages: PDFPage[] = [];
  page!: PDFPage;
  y = 0;
  constructor(
    private doc: PDFDocument,
    readonly f: { regular: PDFFont; bold: PDFFont; mono: PDFFont },
  ) {
    this.newPage();
  }
  newPage() {
    this.page = this.doc.addPage(A4);
    this.pages.push(this.page);
    this.y = A4[1] - MARGIN;
  }
  need(h: number) {
    if (this.y - h < MARGIN + 16) this.newPage();
  }
  /** Wrap text to the width (after an indent) and write it. */
  text(s: string, st: Style, indent = 0, gap = 2) {
    const lines = wrap(pdfSafe(s), st.font, st.size, WIDTH - indent);
    for (const l of lines) {
      this.need(st.size + gap);
      this.y -= st.size + gap;
      this.page.drawText(l, { x: MARGIN + indent, y: this.y, size: st.size, font: st.font, color: rgb(...(st.color ?? [0, 0, 0])) });
    }
  }
  /** "Label: value" with the label in bold, the value wrapped beside it. */
  pair(label: string, value: string, labelWidth = 120) {
    const size = 9.5;
    const ls = label ? wrap(pdfSafe(label), this.f.bold, size, labelWidth - 6) : [];
    const vs = wrap(pdfSafe(value), this.f.regular, size, WIDTH - labelWidth);
    const n = Math.max(ls.length, vs.length);
    this.need(n * (size + 3));
    for (let i = 0; i < n; i++) {
      this.y -= size + 3;
      if (ls[i]) this.page.drawText(ls[i], { x: MARGIN, y: this.y, size, font: this.f.bold });
      if (vs[i]) this.page.drawText(vs[i], { x: MARGIN + labelWidth, y: this.y, size, font: this.f.regular });
    }
  }
  heading(s: string) {
    this.need(80); // never a heading alone at the foot of a page
    this.y -= 10;
    this.text(s, { font: this.f.bold, size: 12.5 }, 0, 4);
    this.page.drawLine({ start: { x: MARGIN, y: this.y - 3 }, end: { x: MARGIN + WIDTH, y: this.y - 3 }, thickness: 0.5, color: rgb(0.6, 0.6, 0.6) });
    this.y -= 5;
  }
  proof(p: Proof, r: JobReport) {
    if (!p.length) return;
    const hashOf = (seq: number) => r.entries.find((e) => e.seq === seq)?.hash.slice(0, 16) ?? '?';
    this.text(`Proof: audit entr${p.length === 1 ? 'y' : 'ies'} ${p.map((s) => `#${s} (${hashOf(s)}…)`).join(', ')}`, { font: this.f.regular, size: 8, color: [0.3, 0.3, 0.3] }, 0, 3);
  }
}

function wrap(s: string, font: PDFFont, size: number, width: number): string[] {
  const out: string[] = [];
  for (const para of s.split('\n')) {
    let line = '';
    for (const word of para.split(/(\s+)/)) {
      const next = line + word;
      if (line && font.widthOfTextAtSize(next.trimEnd(), size) > width) {
        out.push(line.trimEnd());
        line = word.trimStart();
        // a single word longer than the width (a hash): cut it
        while (font.widthOfTextAtSize(line, size) > width) {
          let n = line.length;
          while (n > 1 && font.widthOfTextAtSize(line.slice(0, n), size) > width) n--;
          out.push(line.slice(0, n));
          line = line.slice(n);
        }
      } else line = next;
    }
    out.push(line.trimEnd());
  }
  return out;
}

const VERDICT_COLOR: Record<JobReport['verdict']['verdict'], [number, number, number]> = { ok: [0.05, 0.45, 0.15], 'do-not-deploy': [0.7, 0.05, 0.05], pending: [0.25, 0.25, 0.25] };

/** The report as PDF bytes. `now`: the time printed as "made" (default now). */
export async function reportPdf(r: JobReport, opts: { now?: number } = {}): Promise<Uint8Array> {
  if (r.format !== REPORT_FORMAT) throw new Error('not a job report');
  const doc = await PDFDocument.create();
  const name = r.device.serial ?? r.device.ids.devicePublicKey?.slice(0, 16) ?? 'device';
  doc.setTitle(`Job report: ${name}`);
  doc.setSubject(`${r.verdict.headline}${r.status === 'partial' ? ' (partial report)' : ''}`);
  doc.setAuthor(r.technicians.map((t) => t.id).join(', ') || 'fieldbench');
  doc.setKeywords(['fieldbench-job-report', ...(r.covers ? [`covers seq ${r.covers.seq}`, `hash ${r.covers.hash}`] : [])]);
  doc.setProducer('fieldbench');
  doc.setCreator('fieldbench');
  const made = opts.now ?? Date.now();
  doc.setCreationDate(new Date(made));
  doc.setModificationDate(new Date(made));
  const json = new TextEncoder().encode(JSON.stringify(r));
  await doc.attach(json, REPORT_ATTACHMENT, { mimeType: 'application/json', description: 'The job report as data: check it against the audit trail (fieldbench report verify)', creationDate: new Date(made), modificationDate: new Date(made) });

  const w = new Writer(doc, { regular: await doc.embedFont(StandardFonts.Helvetica), bold: await doc.embedFont(StandardFonts.HelveticaBold), mono: await doc.embedFont(StandardFonts.Courier) });
  const small: Style = { font: w.f.regular, size: 9 };

  w.text(`Job report: ${name}`, { font: w.f.bold, size: 18 }, 0, 6);
  w.text(r.status === 'finished' ? `Finished ${r.finished !== undefined ? localDateTime(r.finished) : ''}` : 'PARTIAL REPORT: the job is not finished; this is what was recorded so far.', { font: w.f.bold, size: 10, color: r.status === 'finished' ? [0.2, 0.2, 0.2] : [0.6, 0.35, 0] }, 0, 4);
  w.y -= 6;
  w.text(r.verdict.headline, { font: w.f.bold, size: 16, color: VERDICT_COLOR[r.verdict.verdict] }, 0, 4);
  if (r.verdict.reason && r.verdict.reason !== `${r.verdict.headline}.`) w.text(r.verdict.reason, { font: w.f.regular, size: 10.5 }, 0, 3);
  w.proof(r.verdict.proof, r);

  w.heading('Device');
  const d = r.device;
  if (d.serial) w.pair('Serial', d.serial);
  if (d.model) w.pair('Model', `${d.model}${d.hwRev ? `, hardware revision ${d.hwRev}` : ''}`);
  w.pair('Identity', d.identity + (d.badges.length > 1 ? ` (${d.badges.filter((b) => b !== 'verified').join(', ').replace(/-/g, ' ')})` : ''));
  if (d.keyFingerprint) w.pair('Key fingerprint', d.keyFingerprint);
  w.pair('Label', `${d.label.result === 'match' ? 'matches' : d.label.result === 'mismatch' ? 'DOES NOT MATCH' : 'not checked'}${d.label.entered ? ` (entered: ${d.label.entered})` : ''}: ${d.label.detail}`);
  if (d.ids.devEui) w.pair('DevEUI', d.ids.devEui);
  if (d.ids.mac) w.pair('MAC', d.ids.mac);
  if (d.ids.ueid) w.pair('UEID', d.ids.ueid);
  if (d.ids.devicePublicKey) w.pair('Identity key', d.ids.devicePublicKey);
  if (d.certificate) w.pair('Certificate', [d.certificate.serial && `serial ${d.certificate.serial}`, d.certificate.notAfter !== undefined && `valid until ${localDateTime(d.certificate.notAfter * 1000)}`, d.certificate.sha256 && `SHA-256 ${d.certificate.sha256}`].filter(Boolean).join('; '));
  for (const c of d.checks) w.pair(`  ${c.name}`, `${RESULT_WORDS[c.result] ?? c.result}: ${c.detail}`, 160);
  w.proof(d.proof, r);

  w.heading('Attestation');
  const a = r.attestation;
  if (!a) w.text('Not attested in this job.', small);
  else {
    w.pair('Verdict', 'reason' in a ? `${a.verdict}: ${a.reason}` : a.verdict);
    for (const c of a.checks) w.pair(`  ${c.name}`, `${RESULT_WORDS[c.result] ?? c.result}: ${c.detail}`, 160);
    if (a.claims.length) {
      w.text('What the device reports (signed claims):', { font: w.f.bold, size: 9.5 }, 0, 5);
      for (const c of a.claims) w.pair(`  ${c.label}`, c.value, 160);
    }
    w.proof(a.proof, r);
  }

  w.heading('Firmware and configuration');
  w.pair('Firmware before', r.firmware.before ?? 'not recorded');
  w.pair('Firmware after', r.firmware.after ?? 'not recorded');
  w.pair('What was done', r.firmware.words);
  if (r.firmware.image) w.pair('Image', `${r.firmware.image}${r.firmware.imageHash ? `, hash ${r.firmware.imageHash}` : ''}`);
  w.proof(r.firmware.proof, r);
  w.pair('Configuration before', r.configuration.before === 0 ? 'none' : r.configuration.before !== undefined ? `#${r.configuration.before}` : 'not recorded');
  w.pair('Configuration after', r.configuration.after !== undefined ? `#${r.configuration.after}` : r.configuration.changed ? 'unsigned' : 'unchanged');
  w.pair('What was done', r.configuration.words + (r.configuration.source ? ` (from ${r.configuration.source})` : ''));
  w.proof(r.configuration.proof, r);

  if (r.overrides.length) {
    w.heading('Overrides');
    for (const o of r.overrides) w.pair(localDateTime(o.time), `${o.text}. Reason: “${o.reason}” (entry #${o.seq})`, 130);
  }

  w.heading('Steps, technician and times');
  for (const s of r.steps) w.pair(stepName(s.step), s.words + (s.proof.length ? ` (entry #${s.proof.join(', #')})` : ''));
  w.pair('Technician', r.technicians.map((t) => `${t.id} (key ${t.keyId})`).join(', ') || 'none recorded');
  if (r.started !== undefined) w.pair('Started', localDateTime(r.started));
  w.pair('Finished', r.finished !== undefined ? localDateTime(r.finished) : 'not finished');

  w.heading('Audit entries that prove this report');
  for (const e of r.entries) {
    w.need(24);
    w.text(`#${e.seq}  ${localDateTime(e.time)}  ${e.what}`, { font: w.f.regular, size: 8.5 }, 0, 3);
    w.text(e.hash, { font: w.f.mono, size: 7.5, color: [0.25, 0.25, 0.25] }, 12, 2);
  }
  w.y -= 4;
  if (r.covers) {
    w.text(`This report covers the audit trail up to entry #${r.covers.seq}, hash ${r.covers.hash}.`, { font: w.f.bold, size: 8.5 }, 0, 4);
    w.text(
      `To check it: export the audit trail (or take the records log) and run "fieldbench audit verify <trail> --key <technician.pub.pem>": the trail must verify and hold entry #${r.covers.seq} with this hash; "fieldbench report verify <this PDF> <trail>" rebuilds the report from the trail and compares every item. ${r.trail.authenticated ? 'Built from a trail whose every entry is signed by a trusted technician key.' : 'Built from a trail checked for integrity (its signers: ' + (r.trail.signers.join(', ') || 'none') + ').'}`,
      { font: w.f.regular, size: 8 },
      0,
      3,
    );
  }
  w.pages.forEach((p, i) => p.drawText(pdfSafe(`${name} · job report · page ${i + 1} of ${w.pages.length} · made ${localDateTime(made)}`), { x: MARGIN, y: MARGIN - 20, size: 7.5, font: w.f.regular, color: rgb(0.4, 0.4, 0.4) }));
  return doc.save({ useObjectStreams: false });
}

/** The report embedded in a PDF made by reportPdf (its attachment), or null when there is none. */
export async function readReportPdf(bytes: Uint8Array): Promise<unknown | null> {
  const doc = await PDFDocument.load(bytes, { updateMetadata: false });
  const names = doc.catalog.lookupMaybe(PDFName.of('Names'), PDFDict);
  const ef = names?.lookupMaybe(PDFName.of('EmbeddedFiles'), PDFDict);
  const list = ef?.lookupMaybe(PDFName.of('Names'), PDFArray);
  if (!list) return null;
  for (let i = 0; i + 1 < list.size(); i += 2) {
    const n = list.lookup(i);
    const fname = n instanceof PDFString || n instanceof PDFHexString ? n.decodeText() : undefined;
    if (fname !== REPORT_ATTACHMENT) continue;
    const spec = list.lookup(i + 1, PDFDict);
    const stream = spec.lookup(PDFName.of('EF'), PDFDict).lookup(PDFName.of('F'));
    if (!(stream instanceof PDFRawStream)) return null;
    const data = decodePDFRawStream(stream).decode();
    return JSON.parse(new TextDecoder().decode(data));
  }
  return null;
}

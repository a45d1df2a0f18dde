/**
 * The text drawn on each page of a PDF made with pdf-lib's standard fonts
 * (WinAnsi hex strings in Tj operators), read back with pdf-lib: what a
 * reader sees, for tests (no PDF text extractor needed).
 */
import { PDFArray, PDFDocument, PDFName, PDFRawStream, decodePDFRawStream, type PDFPage } from 'pdf-lib';

const WINANSI_EXTRA: Record<number, string> = { 0x85: '…', 0x96: '–', 0x97: '—', 0x91: '‘', 0x92: '’', 0x93: '“', 0x94: '”', 0x95: '•', 0x80: '€' };

function streamsOf(page: PDFPage): PDFRawStream[] {
  const c = page.node.Contents();
  if (!c) return [];
  if (c instanceof PDFArray) return c.asArray().map((r) => page.doc.context.lookup(r)).filter((s): s is PDFRawStream => s instanceof PDFRawStream);
  return c instanceof PDFRawStream ? [c] : [];
}

export async function pdfPagesText(bytes: Uint8Array): Promise<string[]> {
  const doc = await PDFDocument.load(bytes, { updateMetadata: false });
  return doc.getPages().map((p) => {
    const lines: string[] = [];
    for (const s of streamsOf(p)) {
      const raw = s.dict.has(PDFName.of('Filter')) ? decodePDFRawStream(s).decode() : s.contents;
      const ops = new TextDecoder('latin1').decode(raw);
      for (const m of ops.matchAll(/<([0-9A-Fa-f]*)>\s*Tj/g)) {
        const hex = m[1];
        let t = '';
        for (let i = 0; i + 1 < hex.length; i += 2) {
          const b = parseInt(hex.slice(i, i + 2), 16);
          t += WINANSI_EXTRA[b] ?? String.fromCharCode(b);
        }
        lines.push(t);
      }
    }
    return lines.join('\n');
  });
}

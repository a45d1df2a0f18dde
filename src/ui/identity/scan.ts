/**
 * Label scanning with the camera: BarcodeDetector where the browser has it
 * (QR, Data Matrix, Code 128), else jsQR on video frames. Browser only.
 */
import jsQR from 'jsqr';

export interface CameraProblem {
  kind: 'unavailable' | 'denied' | 'no-camera' | 'busy' | 'failed';
  message: string;
}

/** A getUserMedia failure, in words a technician can act on. */
export function cameraProblem(e: unknown): CameraProblem {
  const name = (e as { name?: string })?.name ?? '';
  if (name === 'NotAllowedError' || name === 'SecurityError' || name === 'PermissionDeniedError') {
    return { kind: 'denied', message: 'Camera permission was denied. Allow the camera for this site in the browser settings, or type the label instead.' };
  }
  if (name === 'NotFoundError' || name === 'OverconstrainedError' || name === 'DevicesNotFoundError') {
    return { kind: 'no-camera', message: 'No camera was found. Type the label instead.' };
  }
  if (name === 'NotReadableError' || name === 'TrackStartError' || name === 'AbortError') {
    return { kind: 'busy', message: 'The camera is in use by another application or could not start. Close the other application, or type the label instead.' };
  }
  return { kind: 'failed', message: `The camera could not be started (${e instanceof Error ? e.message : String(e)}). Type the label instead.` };
}

type Detector = { detect(src: CanvasImageSource): Promise<{ rawValue: string }[]> };

async function nativeDetector(): Promise<Detector | null> {
  const BD = (globalThis as { BarcodeDetector?: { new (o?: { formats: string[] }): Detector; getSupportedFormats?: () => Promise<string[]> } }).BarcodeDetector;
  if (!BD) return null;
  try {
    const supported = (await BD.getSupportedFormats?.()) ?? ['qr_code'];
    const formats = ['qr_code', 'data_matrix', 'code_128'].filter((f) => supported.includes(f));
    return formats.length ? new BD({ formats }) : null;
  } catch {
    return null;
  }
}

/**
 * Start the camera in `video` and call onCode with the first code read.
 * Returns stop(); throws CameraProblem-shaped errors via onProblem.
 */
export async function startScanner(video: HTMLVideoElement, onCode: (text: string) => void, onProblem: (p: CameraProblem) => void): Promise<() => void> {
  const md = (globalThis.navigator as Navigator | undefined)?.mediaDevices;
  if (!md?.getUserMedia) {
    onProblem({ kind: 'unavailable', message: 'This browser cannot use a camera here (a camera needs HTTPS or localhost). Type the label instead.' });
    return () => {};
  }
  let stream: MediaStream;
  try {
    stream = await md.getUserMedia({ video: { facingMode: 'environment' }, audio: false });
  } catch (e) {
    onProblem(cameraProblem(e));
    return () => {};
  }
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stop = () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    for (const t of stream.getTracks()) t.stop();
    video.srcObject = null;
  };
  video.srcObject = stream;
  video.setAttribute('playsinline', '');
  video.muted = true;
  try {
    await video.play();
  } catch (e) {
    stop();
    onProblem(cameraProblem(e));
    return stop;
  }
  const detector = await nativeDetector();
  const canvas = document.createElement('canvas');
  const ctx2d = canvas.getContext('2d', { willReadFrequently: true });
  const tick = async () => {
    if (stopped) return;
    try {
      if (video.readyState >= 2 && video.videoWidth > 0) {
        let text: string | undefined;
        if (detector) {
          text = (await detector.detect(video))[0]?.rawValue;
        } else if (ctx2d) {
          // Downscale big frames: jsQR's cost grows with the pixel count.
          const scale = Math.min(1, 640 / video.videoWidth);
          canvas.width = Math.round(video.videoWidth * scale);
          canvas.height = Math.round(video.videoHeight * scale);
          ctx2d.drawImage(video, 0, 0, canvas.width, canvas.height);
          const img = ctx2d.getImageData(0, 0, canvas.width, canvas.height);
          text = jsQR(img.data, img.width, img.height, { inversionAttempts: 'attemptBoth' })?.data;
        }
        if (text && !stopped) {
          stop();
          onCode(text);
          return;
        }
      }
    } catch {
      /* a bad frame: try the next one */
    }
    timer = setTimeout(tick, detector ? 150 : 250);
  };
  void tick();
  return stop;
}

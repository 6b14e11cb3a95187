// Captured media: hashed and sealed in a worker, a signed manifest queued in the outbox (hash
// before bytes), then uploaded with tus (resumable; the upload URL and offset live in IndexedDB,
// so a dropped link or a restarted app resumes where the server's acknowledged offset is).
import * as tus from "tus-js-client";
import { db, get, put } from "./db.js";
import { currentKey, openBytes, seal, open } from "./vault.js";
import { accessToken } from "./api.js";
import * as outbox from "./outbox.js";
import { APP_VERSION } from "./version.js";

export const CHUNK = 4 * 1024 * 1024;
const ORDER = { signature: 0, document: 1, photo: 2, audio: 3, video: 4, bodycam: 5 };
const listeners = [];
export const onProgress = (fn) => listeners.push(fn);
const emit = (info) => listeners.forEach((fn) => fn(info));

/* global __WORKER_URL__ */
let worker = null;
function hashWorker() {
  if (!worker) worker = new Worker(__WORKER_URL__, { type: "module" });
  return worker;
}

function run(message) {
  return new Promise((resolve, reject) => {
    const w = hashWorker();
    const handler = (event) => {
      const m = event.data;
      if (m.id !== message.id) return;
      if (m.type === "progress") emit({ id: m.id, phase: "hash", done: m.done, size: m.size });
      else {
        w.removeEventListener("message", handler);
        if (m.type === "done") resolve(m); else reject(new Error(m.error));
      }
    };
    w.addEventListener("message", handler);
    w.postMessage(message);
  });
}

export const active = new Set(); // captures being hashed in this session

/** Only hash (the benchmark): nothing stored. */
export function hashOnly(file) { return run({ cmd: "hash", id: outbox.uuid(), file, chunkSize: CHUNK }); }

/**
 * A capture: hash + seal in the worker, then the signed manifest into the outbox.
 * `extra`: lat/lon/accuracy_m, second_inspector_id, certificate_number, witness, step.
 */
export async function capture(file, { inspectionId, kind, deviceId, extra = {} }) {
  const id = outbox.uuid();
  const mediaType = (file.type || (kind === "signature" ? "image/png" : "application/octet-stream")).slice(0, 80);
  const d = await db();
  await d.put("media", { id, inspection_id: inspectionId, kind, size: file.size, state: "hashing",
    created: new Date().toISOString(), name: await seal(file.name || `${kind}`) });
  active.add(id);
  const result = await run({ cmd: "ingest", id, file, key: currentKey(), chunkSize: CHUNK }).finally(() => active.delete(id));
  const clock = await get("clock");
  const manifest = await outbox.manifest({
    id, inspection_id: inspectionId, kind, sha256: result.sha256, size: result.size, media_type: mediaType,
    captured_at: outbox.deviceTime(), device_id: deviceId, app_version: APP_VERSION,
    acquisition_method: kind === "signature" ? "signature_pad" : "camera_capture",
    clock_offset_s: clock ? Math.round(clock.offset_ms / 1000) : undefined, ...extra });
  await d.put("media", { id, inspection_id: inspectionId, kind, size: result.size, sha256: result.sha256,
    media_type: mediaType, chunks: result.chunks, chunk_size: CHUNK, state: "queued", offset: 0,
    created: new Date().toISOString(), name: await seal(file.name || kind), manifest: await seal(manifest) });
  emit({ id, phase: "queued" });
  return { id, sha256: result.sha256, size: result.size };
}

export async function list(inspectionId = null) {
  const rows = await (await db()).getAll("media");
  return rows.filter((r) => !inspectionId || r.inspection_id === inspectionId);
}

export async function pendingBytes() {
  return (await list()).filter((r) => r.state !== "done").reduce((n, r) => n + (r.size - (r.offset || 0)), 0);
}

/** The plaintext of a stored capture, as a Blob (for a thumbnail or playback). */
export async function blobOf(rec) {
  const d = await db();
  const parts = [];
  for (let i = 0; i < rec.chunks; i++) parts.push(await openBytes(await d.get("chunks", [rec.id, i])));
  return new Blob(parts, { type: rec.media_type });
}

/** tus file source that decrypts the sealed chunks on demand (one chunk in memory at a time). */
function sealedSource(rec) {
  return {
    size: rec.size,
    async slice(start, end) {
      const d = await db();
      end = Math.min(end, rec.size);
      const first = Math.floor(start / rec.chunk_size), last = Math.floor((end - 1) / rec.chunk_size);
      const parts = [];
      for (let i = first; i <= last && end > start; i++) {
        const bytes = await openBytes(await d.get("chunks", [rec.id, i]));
        const from = i === first ? start - i * rec.chunk_size : 0;
        const to = i === last ? end - i * rec.chunk_size : bytes.length;
        parts.push(bytes.subarray(from, to));
      }
      return { value: new Blob(parts), done: end >= rec.size };
    },
    close() {},
  };
}

export const settings = { videoOnWifiOnly: false };

function onWifi() {
  const c = navigator.connection;
  return !c || !c.type || c.type === "wifi" || c.type === "ethernet";
}

let current = null; // the running tus upload (so a test or the UI can stop it)
export function abortCurrent() { if (current) current.abort(); }

async function uploadOne(rec) {
  const d = await db();
  await accessToken(); // refreshed now if stale; each request sets it again (onBeforeRequest)
  await new Promise((resolve, reject) => {
    const upload = new tus.Upload({ id: rec.id }, {
      endpoint: "/mobile/v1/uploads/",
      uploadUrl: rec.upload_url || null,
      chunkSize: CHUNK,
      retryDelays: [0, 1000, 3000, 5000],
      storeFingerprintForResuming: false,
      removeFingerprintOnSuccess: false,
      metadata: { sha256: rec.sha256, filetype: rec.media_type, capture_id: rec.id, kind: rec.kind },
      onBeforeRequest: async (req) => { req.setHeader("Authorization", `Bearer ${await accessToken()}`); },
      fileReader: { openFile: async () => sealedSource(rec) },
      onUploadUrlAvailable: async () => {
        rec.upload_url = upload.url;
        await d.put("media", { ...rec, state: "uploading" });
      },
      onChunkComplete: async (_size, accepted) => {
        rec.offset = accepted;
        await d.put("media", { ...rec, state: "uploading", offset: accepted });
        emit({ id: rec.id, phase: "upload", done: accepted, size: rec.size });
      },
      onError: reject,
      onSuccess: resolve,
    });
    current = upload;
    upload.start();
  }).finally(() => { current = null; });
  await d.put("media", { ...rec, state: "done", offset: rec.size, uploaded_at: new Date().toISOString() });
  emit({ id: rec.id, phase: "done" });
}

/** Upload what is waiting: signatures and photos before videos, smaller first within a kind. */
export async function uploadAll() {
  const s = (await get("settings")) || {};
  const rows = (await list()).filter((r) => r.state === "queued" || r.state === "uploading");
  rows.sort((a, b) => (ORDER[a.kind] ?? 9) - (ORDER[b.kind] ?? 9) || a.size - b.size);
  const errors = [];
  for (const rec of rows) {
    if ((rec.kind === "video" || rec.kind === "bodycam") && s.videoOnWifiOnly && !onWifi()) continue;
    try {
      await uploadOne(rec);
    } catch (exc) {
      const status = exc?.originalResponse?.getStatus?.();
      if (status === 410 || status === 404) { // expired or gone: start a new upload next time
        await (await db()).put("media", { ...rec, upload_url: null, offset: 0, state: "queued" });
      }
      errors.push(exc);
      if (!navigator.onLine || !status) break; // offline: stop, resume later
    }
  }
  if (errors.length) throw errors[0];
}

export async function manifestOf(rec) { return rec.manifest ? open(rec.manifest) : null; }

// Hashing worker: streams the captured file (File.stream(): the browser reads ahead while we hash),
// SHA-256 incrementally (hash-wasm), and stores it in slices of `chunkSize` bytes, each sealed
// (AES-GCM, the vault key passed in as a non-extractable CryptoKey) in IndexedDB. A 2 GB bodycam
// file never sits in memory: what the stream hands over is hashed at once, and at most one slice
// is held for sealing.
import { createSHA256 } from "hash-wasm";
import { openDB } from "idb";

const DB_NAME = "qinling-field";

self.onmessage = async (event) => {
  const { cmd, id, file, key, chunkSize } = event.data;
  try {
    const hasher = await createSHA256();
    hasher.init();
    const d = cmd === "ingest" ? await openDB(DB_NAME) : null;
    const slice = chunkSize || 4 * 1024 * 1024;
    let done = 0, index = 0, filled = 0, reported = 0;
    const buffer = d ? new Uint8Array(slice) : null;
    const seal = async (bytes) => {
      const iv = crypto.getRandomValues(new Uint8Array(12));
      const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, bytes);
      await d.put("chunks", { iv, ct }, [id, index]);
      index += 1;
    };
    const reader = file.stream().getReader();
    for (;;) {
      const { value, done: end } = await reader.read();
      if (end) break;
      hasher.update(value);
      done += value.length;
      if (buffer) {
        for (let at = 0; at < value.length;) {
          const take = Math.min(slice - filled, value.length - at);
          buffer.set(value.subarray(at, at + take), filled);
          filled += take;
          at += take;
          if (filled === slice) { await seal(buffer); filled = 0; }
        }
      }
      if (done - reported >= slice || done === file.size) {
        reported = done;
        self.postMessage({ type: "progress", id, done, size: file.size });
      }
    }
    if (buffer && filled > 0) await seal(buffer.subarray(0, filled));
    if (!buffer) index = Math.ceil(file.size / slice);  // hash only: the slices it would have stored
    if (d) d.close();
    self.postMessage({ type: "done", id, sha256: hasher.digest("hex"), size: file.size, chunks: index });
  } catch (exc) {
    self.postMessage({ type: "error", id, error: String(exc && exc.message || exc) });
  }
};

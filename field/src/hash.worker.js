// Hashing worker: reads the captured file in slices, SHA-256 incrementally (hash-wasm), and
// stores each slice sealed (AES-GCM, the vault key passed in as a non-extractable CryptoKey) in
// IndexedDB. A 2 GB bodycam file never sits in memory: one slice at a time.
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
    let done = 0, index = 0;
    // The next slice is read while this one is hashed (and sealed): the disk read and SHA-256 overlap,
    // with two slices in memory at most.
    const read = (start) => file.slice(start, Math.min(file.size, start + slice)).arrayBuffer();
    let next = file.size > 0 ? read(0) : null;
    for (let start = 0; start < file.size; start += slice) {
      const bytes = new Uint8Array(await next);
      next = start + slice < file.size ? read(start + slice) : null;
      hasher.update(bytes);
      if (d) {
        const iv = crypto.getRandomValues(new Uint8Array(12));
        const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, bytes);
        await d.put("chunks", { iv, ct }, [id, index]);
      }
      index += 1;
      done += bytes.length;
      self.postMessage({ type: "progress", id, done, size: file.size });
    }
    if (d) d.close();
    self.postMessage({ type: "done", id, sha256: hasher.digest("hex"), size: file.size, chunks: index });
  } catch (exc) {
    self.postMessage({ type: "error", id, error: String(exc && exc.message || exc) });
  }
};

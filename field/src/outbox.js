// The outbox: every local change is an operation with its op id (UUID) and the device's sequence
// number, both assigned when it is created and never changed on retry (sync/PROTOCOL.md §4).
import { db, entity, storeEntities } from "./db.js";
import { seal, open } from "./vault.js";
import { signManifest } from "./keys.js";

const RECORD_NS = "6f1c2a4e-5b0d-4c55-9a51-7e2f3c1d9b10";
const listeners = [];
export const onChange = (fn) => listeners.push(fn);
const changed = () => listeners.forEach((fn) => fn());

export function uuid() { return crypto.randomUUID(); }

/** uuid5(RECORD_NS, "<inspection>/<template>"): two devices editing offline edit the same record. */
export async function recordId(inspectionId, template) {
  const ns = Uint8Array.from(RECORD_NS.replace(/-/g, "").match(/../g).map((h) => parseInt(h, 16)));
  const name = new TextEncoder().encode(`${inspectionId}/${template}`);
  const buf = new Uint8Array(ns.length + name.length);
  buf.set(ns); buf.set(name, ns.length);
  const h = new Uint8Array(await crypto.subtle.digest("SHA-1", buf)).slice(0, 16);
  h[6] = (h[6] & 0x0f) | 0x50; h[8] = (h[8] & 0x3f) | 0x80;
  const hex = [...h].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function deviceTime() {
  // ISO 8601 with the device's offset (PROTOCOL: device_time is the device clock, untrusted)
  const d = new Date();
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? "+" : "-";
  const pad = (n) => String(Math.floor(Math.abs(n))).padStart(2, "0");
  const local = new Date(d.getTime() + off * 60000).toISOString().slice(0, 23);
  return `${local}${sign}${pad(off / 60)}:${pad(off % 60)}`;
}

/** Enqueue durably: seal first, then number and store in one IndexedDB transaction. */
export async function enqueue(entityName, action, data, { time = deviceTime(), notify = true } = {}) {
  const opId = uuid();
  const box = await seal({ entity: entityName, action, data, device_time: time });
  const d = await db();
  const tx = d.transaction(["meta", "outbox"], "readwrite");
  const seq = ((await tx.objectStore("meta").get("device_seq")) || 0) + 1;
  tx.objectStore("meta").put(seq, "device_seq");
  tx.objectStore("outbox").put({ seq, op_id: opId, state: "pending", box });
  await tx.done;
  if (notify) changed();
  return { seq, op_id: opId };
}

/** Many operations at once (the bench and the 5,000-op test): one transaction. */
export async function enqueueMany(items) {
  const boxes = await Promise.all(items.map(([e, a, data]) => seal({ entity: e, action: a, data, device_time: deviceTime() })));
  const d = await db();
  const tx = d.transaction(["meta", "outbox"], "readwrite");
  let seq = (await tx.objectStore("meta").get("device_seq")) || 0;
  for (const box of boxes) tx.objectStore("outbox").put({ seq: ++seq, op_id: uuid(), state: "pending", box });
  tx.objectStore("meta").put(seq, "device_seq");
  await tx.done;
  changed();
}

export async function pending(limit = 1000) {
  const d = await db();
  const rows = await d.getAllFromIndex("outbox", "state", "pending", limit);
  rows.sort((a, b) => a.seq - b.seq);
  // WebCrypto works off the main thread: decrypt the batch in parallel
  const bodies = await Promise.all(rows.map((row) => open(row.box)));
  return rows.map((row, i) => ({ op_id: row.op_id, seq: row.seq, ...bodies[i] }));
}

export async function depth() { return (await db()).countFromIndex("outbox", "state", "pending"); }

/** Everything pending for one inspection (what the inspection page shows as not yet sent). */
export async function pendingFor(inspectionId) {
  const ops = await pending(100000);
  return ops.filter((op) => (op.data.inspection_id || "") === inspectionId);
}

/**
 * Store the server's answers; an answered operation leaves the outbox (kept as 'done'). A plain
 * result (applied, merged, duplicate) keeps only its status; a conflict or a refusal is kept sealed.
 */
export async function settle(results) {
  const sealed = await Promise.all(results.map(async (r) =>
    [r.seq, r.status === "conflict" || r.status === "rejected" ? await seal(r) : null, r.status]));
  const d = await db();
  const tx = d.transaction("outbox", "readwrite");
  const rows = await Promise.all(sealed.map(([seq]) => tx.store.get(seq)));
  sealed.forEach(([, box, status], i) => {
    const row = rows[i];
    if (row) tx.store.put({ ...row, state: "done", status, result: box });
  });
  await tx.done;
  changed();
}

export async function answered(filter = () => true) {
  const d = await db();
  const rows = await d.getAllFromIndex("outbox", "state", "done");
  const out = [];
  for (const row of rows) {
    if (!row.result) continue;
    const result = await open(row.result);
    if (filter(result)) out.push({ ...result, op: await open(row.box) });
  }
  return out;
}

// ---- the operations the app makes ---------------------------------------------------------

export const note = (inspectionId, text) =>
  enqueue("note", "append", { id: uuid(), inspection_id: inspectionId, text });

export const setStatus = (inspectionId, status) =>
  enqueue("inspection", "set_status", { inspection_id: inspectionId, status });

const round = (x, places) => (x === null || x === undefined ? null : Math.round(x * 10 ** places) / 10 ** places);

export const checkIn = (inspectionId, { lat, lon, accuracy }) =>
  enqueue("check_in", "append", { id: uuid(), inspection_id: inspectionId, lat: round(lat, 7), lon: round(lon, 7),
    accuracy_m: round(accuracy, 1) });

/** Changed fields only, against the version this device last pulled; the local view shows them at once. */
export async function editRecord(inspectionId, fields, template = "on_site_record") {
  const id = await recordId(inspectionId, template);
  const known = await entity("inspection_record", id);
  const op = await enqueue("inspection_record", "edit", { inspection_id: inspectionId, template,
    base_version: known?.server_version ?? known?.version ?? 0, fields });
  const local = known || { id, inspection_id: inspectionId, template, version: 0, fields: {} };
  await storeEntities([["inspection_record", id, inspectionId, {
    ...local, server_version: known?.server_version ?? known?.version ?? 0, fields: { ...local.fields, ...fields } }]]);
  return op;
}

export const useDocumentNumber = (inspectionId, text) =>
  enqueue("document_number", "use", { inspection_id: inspectionId, text });

/** Sign the capture manifest and queue it (hash before bytes). */
export async function manifest(fields) {
  const signed = await signManifest(fields);
  await enqueue("media_manifest", "append", signed);
  return signed;
}

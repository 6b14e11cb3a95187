// IndexedDB (via idb): the server view, the outbox, media and their encrypted chunks.
// Values are sealed with the vault key; only keys, sequence numbers and states are in clear.
import { openDB, deleteDB } from "idb";
import { seal, open } from "./vault.js";

export const DB_NAME = "qinling-field";
let dbp = null;

export function db() {
  if (!dbp) {
    dbp = openDB(DB_NAME, 1, {
      upgrade(d) {
        d.createObjectStore("meta");      // clear: enrolment (wrapped data key, device id, device key)
        d.createObjectStore("vault");     // sealed: tokens, package, cursor, clock, conflicts
        const e = d.createObjectStore("entities"); // sealed server view, key "<kind>/<id>"
        e.createIndex("inspection", "inspection_id");
        const o = d.createObjectStore("outbox", { keyPath: "seq" });
        o.createIndex("state", "state");
        d.createObjectStore("media", { keyPath: "id" });
        d.createObjectStore("chunks");    // key [media id, index] → sealed bytes
      },
    });
  }
  return dbp;
}

export async function meta(key) { return (await db()).get("meta", key); }
export async function setMeta(key, value) { return (await db()).put("meta", value, key); }

export async function get(key, fallback = null) {
  const box = await (await db()).get("vault", key);
  return box ? open(box) : fallback;
}
export async function put(key, value) {
  const box = await seal(value);
  return (await db()).put("vault", box, key);
}

export async function entity(kind, id) {
  const row = await (await db()).get("entities", `${kind}/${id}`);
  return row ? open(row.box) : null;
}

export async function entitiesOf(kind, inspectionId = null) {
  const d = await db();
  const rows = inspectionId
    ? await d.getAllFromIndex("entities", "inspection", inspectionId)
    : await d.getAll("entities", IDBKeyRange.bound(`${kind}/`, `${kind}/\uffff`));
  const out = [];
  for (const row of rows) if (row.kind === kind) out.push(await open(row.box));
  return out;
}

/** Seal first (WebCrypto is async and would end an IDB transaction), then write in one transaction. */
export async function storeEntities(items, { clearInspection = null, clearAll = false } = {}) {
  const rows = [];
  for (const [kind, id, inspectionId, data] of items) {
    rows.push({ key: `${kind}/${id}`, row: { kind, inspection_id: inspectionId || "", box: await seal(data) } });
  }
  const d = await db();
  const tx = d.transaction("entities", "readwrite");
  if (clearAll) await tx.store.clear();
  if (clearInspection) {
    for (const key of await tx.store.index("inspection").getAllKeys(clearInspection)) await tx.store.delete(key);
    await tx.store.delete(`inspection/${clearInspection}`);
  }
  for (const { key, row } of rows) tx.store.put(row, key);
  await tx.done;
}

export async function deleteEntity(kind, id) { return (await db()).delete("entities", `${kind}/${id}`); }

/** Wipe everything on this device (revoked device, or the inspector signs out). */
export async function wipe() {
  if (dbp) { (await dbp).close(); dbp = null; }
  await deleteDB(DB_NAME);
  try { localStorage.clear(); } catch { /* private mode */ }
  if (self.caches) for (const name of await caches.keys()) if (name.startsWith("qf-data")) await caches.delete(name);
}

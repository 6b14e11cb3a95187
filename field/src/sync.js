// One sync session (sync/PROTOCOL.md): handshake, push the outbox, pull the changes, refresh the
// offline package, then the uploads. Runs on 'online', on app focus, on a timer, and by hand.
import { call, ApiError, Offline } from "./api.js";
import { get, put, storeEntities, deleteEntity, entity } from "./db.js";
import * as outbox from "./outbox.js";
import { APP_VERSION } from "./version.js";
import * as media from "./media.js";

const listeners = [];
export const onStatus = (fn) => listeners.push(fn);
export const status = { running: false, last_error: null, phase: "" };
const notify = () => listeners.forEach((fn) => fn(status));

export const pendingMediaBytes = () => media.pendingBytes();

function parse(t) { return new Date(t).getTime(); }

export async function hello() {
  const previous = await get("clock");
  const t0 = new Date();
  const body = { client_time: t0.toISOString(), report: { outbox_depth: await outbox.depth(),
    pending_media_bytes: await pendingMediaBytes(), app_version: APP_VERSION } };
  if (previous) body.previous = { offset_ms: previous.offset_ms, rtt_ms: previous.rtt_ms };
  const answer = await call("POST", "/mobile/v1/sync/hello", body);
  const t3 = Date.now();
  const t1 = parse(answer.server_receive), t2 = parse(answer.server_send);
  const theta = ((t1 - t0.getTime()) + (t2 - t3)) / 2; // server − device
  await put("clock", { offset_ms: -Math.round(theta), rtt_ms: Math.max(0, Math.round((t3 - t0.getTime()) - (t2 - t1))),
    at: new Date().toISOString() });
  return answer;
}

/** Full resync: replace the server view from the package, keep the outbox (PROTOCOL §2). */
export async function downloadPackage(inspectionId = null) {
  const pkg = await call("GET", "/mobile/v1/sync/package" + (inspectionId ? `?inspection_id=${inspectionId}` : ""));
  const items = [];
  for (const i of pkg.inspections) items.push(["inspection", i.id, i.id, i]);
  for (const r of pkg.records) items.push(["inspection_record", r.id, r.inspection_id, { ...r, server_version: r.version }]);
  for (const [kind, key] of [["note", "notes"], ["check_in", "check_ins"], ["media_manifest", "media_manifests"]]) {
    for (const row of pkg[key]) items.push([kind, row.id, row.inspection_id, row]);
  }
  // keep local, not yet acknowledged record edits visible on top of the fresh server view
  const mine = await outbox.pending(100000);
  await storeEntities(items, inspectionId ? { clearInspection: inspectionId } : { clearAll: true });
  await reapply(mine);
  if (!inspectionId) {
    await put("cursor", pkg.cursor);
    const { templates, checklists, team, targets, document_numbers, generated_at } = pkg;
    await put("package", { templates, checklists, team, targets, document_numbers, generated_at });
  } else {
    const old = await get("package");
    const merge = (a, b, key) => [...new Map([...(a || []), ...(b || [])].map((x) => [x[key], x])).values()];
    await put("package", { ...old, team: merge(old?.team, pkg.team, "user_id"), targets: merge(old?.targets, pkg.targets, "id") });
  }
  return pkg;
}

async function reapply(ops) {
  for (const op of ops) {
    if (op.entity !== "inspection_record") continue;
    const id = await outbox.recordId(op.data.inspection_id, op.data.template);
    const known = await entity("inspection_record", id);
    const base = known || { id, inspection_id: op.data.inspection_id, template: op.data.template, version: 0, fields: {} };
    await storeEntities([["inspection_record", id, op.data.inspection_id,
      { ...base, server_version: known?.server_version ?? known?.version ?? 0, fields: { ...base.fields, ...op.data.fields } }]]);
  }
}

export async function push() {
  let total = 0;
  for (;;) {
    const ops = await outbox.pending(1000);
    if (!ops.length) break;
    const depth = await outbox.depth();
    const device = await get("device");
    const answer = await call("POST", "/mobile/v1/sync/push", { device_id: device.device_id, ops, report: { outbox_depth: depth } });
    const bySeq = new Map(ops.map((op) => [op.op_id, op.seq]));
    const results = answer.results.map((r) => ({ ...r, seq: r.seq ?? bySeq.get(r.op_id) }));
    await outbox.settle(results);
    const conflicts = results.filter((r) => r.status === "conflict" || r.status === "rejected");
    if (conflicts.length) {
      const seen = (await get("problems")) || [];
      const opsById = new Map(ops.map((op) => [op.op_id, op]));
      for (const r of conflicts) seen.push({ ...r, op: opsById.get(r.op_id), at: new Date().toISOString() });
      await put("problems", seen.slice(-200));
    }
    total += ops.length;
  }
  return total;
}

export async function pull() {
  let count = 0;
  const fetchLater = new Set();
  for (;;) {
    const cursor = await get("cursor");
    let page;
    try {
      page = await call("GET", `/mobile/v1/sync/changes?limit=1000${cursor ? `&cursor=${cursor}` : ""}`);
    } catch (exc) {
      if (exc instanceof ApiError && exc.status === 410) { await downloadPackage(); continue; }
      throw exc;
    }
    const items = [];
    for (const c of page.changes) {
      if (c.op === "tombstone") {
        if (items.length) await storeEntities(items.splice(0));
        if (c.entity === "inspection") await storeEntities([], { clearInspection: c.inspection_id });
        else await deleteEntity(c.entity, c.id);
        continue;
      }
      if (c.entity === "inspection" && !(await entity("inspection", c.id))) fetchLater.add(c.id);
      const data = c.entity === "inspection_record" ? { ...c.data, server_version: c.data.version } : c.data;
      items.push([c.entity, c.id, c.inspection_id, data]);
    }
    if (items.length) await storeEntities(items);
    await put("cursor", page.cursor);
    count += page.changes.length;
    if (!page.more) break;
  }
  for (const id of fetchLater) await downloadPackage(id);
  return count;
}

let running = null;
/** One sync session; concurrent callers share it. */
export function syncNow(reason = "manual") {
  if (running) return running;
  running = (async () => {
    status.running = true; status.last_error = null; status.phase = "hello"; notify();
    try {
      if (!(await get("cursor"))) { status.phase = "package"; notify(); await downloadPackage(); }
      await hello();
      status.phase = "push"; notify();
      const pushed = await push();
      status.phase = "pull"; notify();
      const pulled = await pull();
      status.phase = "package"; notify();
      await downloadPackage();  // refreshed on every connection: windows, team, numbers (topped up)
      await put("last_sync", { at: new Date().toISOString(), pushed, pulled, reason });
      status.phase = "uploads"; notify();
      await media.uploadAll();
      status.phase = "";
    } catch (exc) {
      status.last_error = exc instanceof Offline ? "offline" : (exc.body?.message_zh ? `${exc.body.message_zh} / ${exc.body.message_en}` : String(exc.message || exc));
      status.phase = "";
    } finally {
      status.running = false; running = null; notify();
    }
  })();
  return running;
}

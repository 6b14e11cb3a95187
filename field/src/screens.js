// The work list, the inspection page, the record form (rendered from the template data),
// the signature pad and 亮证 (the certificate with its QR code).
import qrcode from "qrcode-generator";
import { h, fmtBytes, fmtTime, toast } from "./ui.js";
import { t, tt, pick } from "./i18n.js";
import * as store from "./db.js";
import * as outbox from "./outbox.js";
import * as media from "./media.js";
import { app, page, refreshBadge, route } from "./main.js";

const today = () => new Date().toLocaleDateString("sv-SE", { timeZone: "Asia/Shanghai" });

async function pkg() { return (await store.get("package")) || { templates: [], checklists: [], team: [], targets: [], document_numbers: [] }; }

function statusText(s) { return t(`st_${s}`); }

async function progressOf(inspectionId) {
  const [checkIns, notes, records, captures] = await Promise.all([
    store.entitiesOf("check_in", inspectionId), store.entitiesOf("note", inspectionId),
    store.entitiesOf("inspection_record", inspectionId), media.list(inspectionId)]);
  const pending = await outbox.pendingFor(inspectionId);
  const has = (entity) => pending.some((op) => op.entity === entity);
  const record = records.find((r) => r.template === "on_site_record");
  const f = record?.fields || {};
  const localCheckIn = pending.some((op) => op.entity === "check_in");
  return {
    checkin: checkIns.some((c) => c.device_id === app.device.device_id || c.user_id === app.device.user_id) || localCheckIn,
    record: !!(record && f.findings && f.party_name),
    media: captures.length + (await store.entitiesOf("media_manifest", inspectionId)).filter((m) => m.kind !== "signature").length > 0,
    signature: !!(f.party_signature_sha256 || f.party_refused_to_sign),
    notes: notes.length + pending.filter((op) => op.entity === "note").length,
    record_entity: record, pending, captures, checkIns, notesList: notes, unsentRecord: has("inspection_record"),
  };
}

export async function worklist() {
  const inspections = await store.entitiesOf("inspection");
  const { targets } = await pkg();
  const byId = new Map(targets.map((x) => [x.id, x]));
  inspections.sort((a, b) => (a.window_end || "").localeCompare(b.window_end || ""));
  const cards = [];
  for (const i of inspections) {
    const target = byId.get(i.target_id) || {};
    const p = await progressOf(i.id);
    const todo = ["checkin", "record", "media", "signature"].filter((k) => !p[k]);
    cards.push(h("a.card.inspection", { href: `#/i/${i.id}`, "data-id": i.id },
      h("div.row", h("b", target.name || `#${i.target_id}`), h("span", { class: `pill ${i.status}` }, statusText(i.status))),
      h("div.muted", `${t("window")}: ${i.window_start} — ${i.window_end}`),
      h("div.muted", i.purpose || ""),
      h("div.todo", todo.length ? `${t("todo")}: ${todo.map((k) => t(`t_${k}`)).join("、")}` : `✓ ${t("done")}`)));
  }
  page(tt("worklist"), null, [h("div", { id: "worklist" }, cards.length ? cards : h("p.card", t("no_work")))], "list");
}

function teamSection(inspection, team) {
  const byUser = new Map(team.map((m) => [m.user_id, m]));
  const day = today();
  return h("section.card", { id: "team" }, h("h2", t("team")), (inspection.members || []).map((m) => {
    const person = byUser.get(m.user_id) || {};
    const cert = (person.certificates || []).find((c) => c.number === m.certificate_number) || (person.certificates || [])[0];
    const valid = cert && cert.status === "active" && cert.valid_from <= day && day <= cert.valid_until;
    return h("div", { class: `member ${valid ? "ok" : "bad"}`, "data-user": m.user_id },
      h("div.row", h("b", person.display_name || `#${m.user_id}`), h("span.pill", m.team_role === "lead" ? t("lead") : t("member"))),
      h("div.muted", `${cert?.number || "—"} · ${t("valid_until")} ${cert?.valid_until || "—"}`),
      h("div", { class: valid ? "okay" : "error" }, valid ? `✓ ${t("cert_valid")}` : `✗ ${t("cert_invalid")}`));
  }));
}

/** Team members who may be recorded as an inspector today (an active certificate valid today). */
export function certifiedToday(inspection, team) {
  const byUser = new Map(team.map((m) => [m.user_id, m]));
  const day = today();
  return (inspection.members || []).map((m) => {
    const person = byUser.get(m.user_id) || {};
    const cert = (person.certificates || []).find((c) => c.number === m.certificate_number) || (person.certificates || [])[0];
    return { user_id: m.user_id, name: person.display_name || `#${m.user_id}`, cert,
      valid: !!cert && cert.status === "active" && cert.valid_from <= day && day <= cert.valid_until };
  });
}

function secondInspector(inspection, team, chosen, onchange) {
  const others = certifiedToday(inspection, team).filter((m) => m.user_id !== app.device.user_id);
  return h("label.field", h("span", t("second_inspector")),
    h("select", { id: "second-inspector", onchange },
      h("option", { value: "" }, "—"),
      others.map((m) => h("option", { value: String(m.user_id), disabled: !m.valid, selected: String(chosen) === String(m.user_id) },
        m.valid ? `${m.name} · ${m.cert?.number || ""}` : `${m.name} ✗ ${t("cert_invalid")}`))));
}

function dossier(target) {
  const pv = target.past_violations || [];
  return h("details.card", { id: "dossier" }, h("summary", h("h2", t("dossier"))),
    h("div.kv", h("span", t("uscc")), h("b", target.uscc || "—")),
    h("div.kv", h("span", t("address")), h("b", target.address || "—")),
    h("div.kv", h("span", t("industry")), h("b", target.industry || "—")),
    h("div.kv", h("span", t("risk_class")), h("b", target.risk_class || "—")),
    h("div.kv", h("span", t("permit")), h("b", target.permit_number || "—")),
    h("div.kv", h("span", t("credit")), h("b", target.credit_rating || "—")),
    h("h3", t("past_violations")),
    pv.length ? pv.map((v) => h("div.violation", h("b", v.decision_number || v.case_number),
      h("div", `${v.decision_date || ""} ${v.title || ""}`), h("div.muted", `${v.legal_basis || ""} · ¥${v.fine ?? "—"} · ${v.status}`)))
      : h("p.muted", t("none")));
}

export async function inspectionPage(id) {
  const inspection = await store.entity("inspection", id);
  if (!inspection) { location.hash = "#/"; return; }
  const p0 = await pkg();
  const target = p0.targets.find((x) => x.id === inspection.target_id) || {};
  const p = await progressOf(id);
  const checklist = p0.checklists[0];
  const mine = (p0.document_numbers || []);
  const used = new Set(p.pending.filter((op) => op.entity === "document_number").map((op) => op.data.text));
  const checkinBox = h("div", { id: "checkin-state" }, p.checkin ? `✓ ${t("checked_in")}` : "");
  const me = certifiedToday(inspection, p0.team).find((m) => m.user_id === app.device.user_id);
  const mediaList = h("div", { id: "media-list" }, p.captures.map(mediaRow));
  const seconds = (await store.get("second_inspector")) || {};
  const body = [
    me && !me.valid ? h("p.card.error", { id: "my-cert-invalid", role: "alert" }, `${t("my_cert")}: ${tt("cert_invalid")}`) : null,
    h("section.card", h("div.row", h("b", target.name || ""), h("span", { class: `pill ${inspection.status}` }, statusText(inspection.status))),
      h("div.kv", h("span", t("window")), h("b", { id: "window" }, `${inspection.window_start} — ${inspection.window_end}`)),
      h("div.kv", h("span", t("purpose")), h("b", inspection.purpose || "—")),
      h("div.todo", ["checkin", "record", "media", "signature"].map((k) => h("span", { class: `step ${p[k] ? "ok" : ""}`, id: `todo-${k}` }, `${p[k] ? "✓" : "○"} ${t(`t_${k}`)}`)))),
    h("section.card", h("h2", t("t_checkin")), checkinBox,
      h("button.primary", { id: "checkin", onclick: () => doCheckIn(id, checkinBox) }, tt("checkin_btn"))),
    h("section.card", h("a.button.primary", { href: `#/i/${id}/record`, id: "open-record" }, tt("t_record")),
      p.record_entity?.open_conflicts ? h("p.error", `${t("open_conflicts")}: ${p.record_entity.open_conflicts}`) : null,
      h("a.button", { href: `#/i/${id}/sign`, id: "open-sign" }, `${t("t_signature")}${p.signature ? " ✓" : ""}`)),
    h("section.card", h("h2", t("t_media")),
      secondInspector(inspection, p0.team, seconds[id], async (e) => {
        const valid = certifiedToday(inspection, p0.team).find((m) => String(m.user_id) === e.target.value);
        if (e.target.value && !valid?.valid) { e.target.value = ""; toast(tt("cert_invalid")); return; }
        await store.put("second_inspector", { ...seconds, [id]: e.target.value ? Number(e.target.value) : null });
      }),
      h("label.button.primary", { for: "photo-input" }, t("photo")),
      h("input.hidden", { type: "file", id: "photo-input", accept: "image/*", capture: "environment", multiple: true,
        onchange: (e) => attach(id, [...e.target.files], "photo", mediaList) }),
      h("label.button", { for: "video-input" }, t("video")),
      h("input.hidden", { type: "file", id: "video-input", accept: "video/*", capture: "environment",
        onchange: (e) => attach(id, [...e.target.files], "video", mediaList) }),
      mediaList),
    h("section.card", h("h2", t("t_notes")),
      h("ul", { id: "notes" }, [...p.notesList.map((n) => h("li", n.text)),
        ...p.pending.filter((op) => op.entity === "note").map((op) => h("li.unsent", op.data.text))]),
      h("textarea", { id: "note-text", rows: 3, placeholder: t("note_placeholder") }),
      h("button", { id: "add-note", onclick: async () => {
        const el = document.getElementById("note-text");
        if (!el.value.trim()) return;
        await outbox.note(id, el.value.trim()); toast(t("saved")); route();
      } }, tt("add_note"))),
    dossier(target),
    teamSection(inspection, p0.team),
    checklist ? h("details.card", h("summary", h("h2", `${t("checklist")} · ${checklist.name_zh}`)),
      h("ol", checklist.items.map((it) => h("li", it.text_zh)))) : null,
    h("section.card", h("h2", t("doc_numbers")),
      h("p.muted", { id: "doc-numbers" }, mine.filter((n) => !used.has(n.text)).map((n) => n.text).slice(0, 3).join("；") || "—"),
      h("button", { id: "use-number", onclick: async () => {
        const next = mine.find((n) => !used.has(n.text));
        if (!next) return;
        await outbox.useDocumentNumber(id, next.text); toast(next.text); route();
      } }, t("use_number"))),
    h("section.card",
      inspection.status === "assigned" ? h("button", { id: "start", onclick: async () => { await outbox.setStatus(id, "in_progress"); await setLocalStatus(inspection, "in_progress"); route(); } }, tt("start")) : null,
      inspection.status !== "completed" ? h("button", { id: "complete", onclick: async () => { await outbox.setStatus(id, "completed"); await setLocalStatus(inspection, "completed"); route(); } }, tt("complete")) : null,
      p.pending.length ? h("p.muted", { id: "pending-here" }, `${t("pending_here")}: ${p.pending.length}`) : null),
  ];
  page(target.name || t("t_record"), "#/", body, "list");
}

async function setLocalStatus(inspection, status) {
  await store.storeEntities([["inspection", inspection.id, inspection.id, { ...inspection, status }]]);
}

function mediaRow(m) {
  const state = m.state === "uploading" ? `${Math.floor((100 * (m.offset || 0)) / m.size)}%`
    : m.state === "hashing" && media.active.has(m.id) ? t("hashing") : t(`m_${m.state}`);
  return h("div.kv.media", { "data-id": m.id, "data-sha": m.sha256 || "" },
    h("span", `${t(m.kind === "video" ? "video" : m.kind === "signature" ? "t_signature" : "photo")} · ${fmtBytes(m.size)} · ${(m.sha256 || "").slice(0, 10)}`),
    h("b", { class: "mstate", "data-id": m.id }, state));
}

async function currentPosition() {
  return new Promise((resolve, reject) => navigator.geolocation.getCurrentPosition(
    (pos) => resolve({ lat: pos.coords.latitude, lon: pos.coords.longitude, accuracy: pos.coords.accuracy }),
    reject, { enableHighAccuracy: true, timeout: 20000, maximumAge: 30000 }));
}

async function doCheckIn(inspectionId, box) {
  box.textContent = t("locating");
  try {
    const pos = await currentPosition();
    await outbox.checkIn(inspectionId, pos);
    box.textContent = `✓ ${t("checked_in")} · ${pos.lat.toFixed(6)}, ${pos.lon.toFixed(6)} (${t("accuracy")} ${Math.round(pos.accuracy)} m, WGS-84)`;
    document.getElementById("todo-checkin")?.classList.add("ok");
  } catch (exc) {
    box.textContent = `${tt("geo_failed")}: ${exc.message || exc.code}`;
    box.className = "error";
  }
}

let lastPosition = null;
async function attach(inspectionId, files, kind, list) {
  if (!lastPosition) lastPosition = await currentPosition().catch(() => null);
  for (const file of files) {
    const row = h("div.kv.media", h("span", `${kind} · ${fmtBytes(file.size)}`), h("b", { class: "mstate hashing" }, t("hashing")));
    list.append(row);
    const second = ((await store.get("second_inspector")) || {})[inspectionId];
    const extra = lastPosition ? { lat: Math.round(lastPosition.lat * 1e7) / 1e7, lon: Math.round(lastPosition.lon * 1e7) / 1e7,
      accuracy_m: Math.round(lastPosition.accuracy * 10) / 10 } : {};
    if (second) extra.second_inspector_id = second;
    const result = await media.capture(file, { inspectionId, kind, deviceId: app.device.device_id, extra });
    row.replaceWith(mediaRow({ id: result.id, kind, size: result.size, sha256: result.sha256, state: "queued" }));
  }
  document.getElementById("media-list").dataset.count = String((await media.list(inspectionId)).length);
  refreshBadge();
}

// ---- the record form, from the template data ------------------------------------------------

const pad = (n) => String(n).padStart(2, "0");
function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(new Date(iso).getTime() + 8 * 3600000); // Beijing time
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}
const fromLocalInput = (v) => (v ? `${v}:00+08:00` : null);

function control(spec, value, checklist) {
  const id = `r-${spec.name}`;
  const label = h("span", pick(spec.label_zh, spec.label_en), spec.required ? h("i.req", " *") : null);
  if (spec.type === "boolean") {
    return h("label.check.field", { "data-field": spec.name }, h("input", { type: "checkbox", id, name: spec.name, checked: value === true }), label);
  }
  if (spec.type === "text") return h("label.field", { "data-field": spec.name }, label, h("textarea", { id, name: spec.name, rows: 4 }, value || ""));
  if (spec.type === "datetime") return h("label.field", { "data-field": spec.name }, label, h("input", { id, name: spec.name, type: "datetime-local", value: toLocalInput(value) }));
  if (spec.type === "object" && spec.name === "checklist" && checklist) {
    const v = value || {};
    return h("fieldset.field", { "data-field": spec.name, id }, h("legend", label), checklist.items.map((it) =>
      h("label.field", h("span", it.text_zh), h("select", { name: `checklist.${it.id}` },
        h("option", { value: "" }, "—"),
        [["c_ok", "符合"], ["c_bad", "不符合"], ["c_na", "不适用"]].map(([k, val]) =>
          h("option", { value: val, selected: v[it.id] === val }, t(k)))))));
  }
  if (spec.type === "sha256") return h("div.field.muted", { "data-field": spec.name }, label, h("code", value || "—"));
  return h("label.field", { "data-field": spec.name }, label, h("input", { id, name: spec.name, value: value || "", maxlength: spec.max_length || null }));
}

function readForm(form, template) {
  const values = {};
  for (const spec of template.fields) {
    if (spec.type === "boolean") values[spec.name] = form.elements[spec.name]?.checked ?? false;
    else if (spec.type === "datetime") values[spec.name] = fromLocalInput(form.elements[spec.name]?.value);
    else if (spec.type === "object" && spec.name === "checklist") {
      const obj = {};
      for (const el of form.querySelectorAll("select[name^='checklist.']")) if (el.value) obj[el.name.slice(10)] = el.value;
      values[spec.name] = Object.keys(obj).length ? obj : null;
    } else if (spec.type === "sha256") continue;
    else { const v = form.elements[spec.name]?.value ?? ""; values[spec.name] = v === "" ? null : v; }
  }
  return values;
}

function validate(template, values) {
  const problems = {};
  for (const spec of template.fields) {
    const v = values[spec.name];
    if (spec.required && (v === null || v === undefined || v === "" || v === false && spec.type !== "boolean")) problems[spec.name] = t("required");
    if (spec.required && spec.type === "boolean" && v !== true) problems[spec.name] = t("required");
    if (typeof v === "string" && spec.max_length && v.length > spec.max_length) problems[spec.name] = `${t("too_long")} (≤ ${spec.max_length})`;
  }
  return problems;
}

let openForm = null; // {inspectionId, template, form} while the record form is on screen

/** Keep what is typed but not yet saved (sealed), e.g. before the idle lock forgets the key. */
export async function saveDraft() {
  if (!openForm || !document.body.contains(openForm.form)) return;
  const drafts = (await store.get("drafts")) || {};
  drafts[openForm.inspectionId] = readForm(openForm.form, openForm.template);
  await store.put("drafts", drafts);
}

async function takeDraft(inspectionId, clear = false) {
  const drafts = (await store.get("drafts")) || {};
  const draft = drafts[inspectionId] || null;
  if (clear && draft) { delete drafts[inspectionId]; await store.put("drafts", drafts); }
  return draft;
}

export async function recordPage(inspectionId, templateCode = "on_site_record") {
  const p0 = await pkg();
  const template = p0.templates.find((x) => x.code === templateCode);
  const inspection = await store.entity("inspection", inspectionId);
  const target = p0.targets.find((x) => x.id === inspection?.target_id) || {};
  const rid = await outbox.recordId(inspectionId, templateCode);
  const record = await store.entity("inspection_record", rid);
  const draft = await takeDraft(inspectionId);
  const fields = { party_name: target.name, place: target.address, ...(record?.fields || {}),
    ...Object.fromEntries(Object.entries(draft || {}).filter(([, v]) => v !== null && v !== false)) };
  const error = h("p.error", { id: "form-error", role: "alert" });
  const form = h("form", { id: "record-form", novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    const values = readForm(form, template);
    const problems = validate(template, values);
    form.querySelectorAll(".invalid").forEach((el) => el.classList.remove("invalid"));
    form.querySelectorAll(".msg").forEach((el) => el.remove());
    if (Object.keys(problems).length) {
      for (const [name, msg] of Object.entries(problems)) {
        const el = form.querySelector(`[data-field="${name}"]`);
        el?.classList.add("invalid"); el?.append(h("span.msg", msg));
      }
      error.textContent = tt("fix_errors");
      return;
    }
    const before = record?.fields || {};
    const changed = Object.fromEntries(Object.entries(values).filter(([k, v]) => JSON.stringify(before[k] ?? null) !== JSON.stringify(v ?? null)));
    if (Object.keys(changed).length) await outbox.editRecord(inspectionId, changed, templateCode);
    await takeDraft(inspectionId, true);
    if (inspection.status === "assigned") { await outbox.setStatus(inspectionId, "in_progress"); await setLocalStatus(inspection, "in_progress"); }
    toast(t("saved"));
    location.hash = `#/i/${inspectionId}`;
  } },
  template.fields.map((spec) => control(spec, fields[spec.name], p0.checklists[0])),
  error,
  h("button.primary.sticky", { type: "submit", id: "record-save" }, tt("save")));
  openForm = { inspectionId, template, form };
  page(pick(template.name_zh, template.name_en), `#/i/${inspectionId}`, [
    record?.open_conflicts ? h("p.error", `${t("open_conflicts")}: ${record.open_conflicts}`) : null, form]);
}

// ---- signature pad ----------------------------------------------------------------------------

export async function signaturePage(inspectionId) {
  const canvas = h("canvas", { id: "sigpad", width: 700, height: 350 });
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.lineWidth = 4; ctx.lineCap = "round"; ctx.strokeStyle = "#000";
  let drawing = false, strokes = 0;
  const at = (e) => { const r = canvas.getBoundingClientRect(); return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height]; };
  canvas.addEventListener("pointerdown", (e) => { drawing = true; strokes++; ctx.beginPath(); ctx.moveTo(...at(e)); canvas.setPointerCapture(e.pointerId); });
  canvas.addEventListener("pointermove", (e) => { if (drawing) { ctx.lineTo(...at(e)); ctx.stroke(); } });
  canvas.addEventListener("pointerup", () => { drawing = false; });
  const state = h("p", { id: "sig-state" });
  page(tt("t_signature"), `#/i/${inspectionId}`, [
    h("section.card", h("p", t("sign_here")), canvas,
      h("div.row", h("button", { id: "sig-clear", onclick: () => { ctx.fillRect(0, 0, canvas.width, canvas.height); strokes = 0; } }, t("clear")),
        h("button.primary", { id: "sig-save", onclick: async () => {
          if (!strokes) return;
          const blob = await new Promise((r) => canvas.toBlob(r, "image/png"));
          const file = new File([blob], "signature.png", { type: "image/png" });
          const result = await media.capture(file, { inspectionId, kind: "signature", deviceId: app.device.device_id,
            extra: { step: "party_signature" } });
          await outbox.editRecord(inspectionId, { party_signature_sha256: result.sha256, party_refused_to_sign: false });
          state.textContent = `✓ ${t("signed")} · ${result.sha256.slice(0, 16)}…`;
        } }, tt("sign_save"))), state),
    h("section.card", h("h2", t("refused")),
      h("label.field", h("span", t("witness")), h("input", { id: "witness" })),
      h("button", { id: "refusal-save", onclick: async () => {
        const witness = document.getElementById("witness").value.trim();
        if (!witness) return;
        await outbox.editRecord(inspectionId, { party_refused_to_sign: true,
          party_statement: `当事人拒绝签名，见证人：${witness} / The party refused to sign; witness: ${witness}` });
        state.textContent = `✓ ${t("refused")}`;
      } }, t("refusal_save"))),
  ]);
}

// ---- 亮证: the inspector's certificate, with a QR code to check it on the public portal ----------

export async function certificatePage() {
  const device = app.device;
  const p0 = await pkg();
  const me = p0.team.find((m) => m.user_id === device.user_id) || { certificates: device.certificates || [] };
  const day = today();
  const certs = (me.certificates || []).filter((c) => c.status === "active");
  page(tt("credentials"), null, certs.length ? certs.map((c) => {
    const valid = c.valid_from <= day && day <= c.valid_until;
    const url = `${location.origin}/public/staff?certificate=${encodeURIComponent(c.number)}`;
    const qr = qrcode(0, "M"); qr.addData(unescape(encodeURIComponent(url))); qr.make();
    const holder = h("div.qr", { id: "cert-qr" }); holder.innerHTML = qr.createSvgTag({ cellSize: 6, margin: 4, scalable: true });
    return h("section.card.cert", h("h2", t("my_cert")), h("p.big", device.display_name), h("p.big", { id: "cert-number" }, c.number),
      h("div.kv", h("span", t("valid_until")), h("b", c.valid_until)),
      h("p", { class: valid ? "okay" : "error" }, valid ? `✓ ${t("cert_valid")}` : `✗ ${t("cert_invalid")}`),
      holder, h("p.muted", t("scan_hint")));
  }) : h("p.card.error", t("cert_invalid")), "cert");
}

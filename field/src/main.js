// App shell: boot, enrolment, PIN lock, routing, sync triggers, service worker and updates.
import { h, mount, fmtBytes, fmtTime, toast } from "./ui.js";
import { t, tt, current as lang, setLang } from "./i18n.js";
import * as vault from "./vault.js";
import * as store from "./db.js";
import * as api from "./api.js";
import * as outbox from "./outbox.js";
import * as sync from "./sync.js";
import * as media from "./media.js";
import { createDeviceKey } from "./keys.js";
import { APP_VERSION } from "./version.js";
import { inspectionPage, recordPage, signaturePage, worklist, certificatePage, saveDraft } from "./screens.js";

const root = document.getElementById("app");
const IDLE_LOCK_MS = 5 * 60 * 1000;
export const app = { device: null, lastInput: Date.now(), updateReady: null };

// ---- chrome ------------------------------------------------------------------------------

function topbar(title, back = null) {
  return h("header.top",
    back ? h("a.back", { href: back, "aria-label": t("back") }, "‹") : null,
    h("h1", title),
    h("a.badge", { href: "#/sync", id: "sync-badge" }, ""));
}

function tabs(active) {
  const item = (href, key, id) => h("a", { href, class: active === id ? "on" : "", id: `tab-${id}` }, t(key));
  return h("nav.tabs", item("#/", "worklist", "list"), item("#/sync", "sync", "sync"),
    item("#/cert", "credentials", "cert"), item("#/settings", "settings", "settings"));
}

export async function refreshBadge() {
  const el = document.getElementById("sync-badge");
  if (!el || !vault.isUnlocked()) return;
  const depth = await outbox.depth();
  const waiting = await media.pendingBytes();
  el.textContent = `${navigator.onLine ? "●" : "○"} ${depth}${waiting ? ` · ${fmtBytes(waiting)}` : ""}`;
  el.className = `badge ${navigator.onLine ? "up" : "down"}`;
  el.title = `${t("outbox")}: ${depth}; ${t("media_waiting")}: ${fmtBytes(waiting)}`;
}

export function page(title, back, body, active = null) {
  mount(root, topbar(title, back), h("main", { id: "main" }, body),
    app.updateReady ? h("button.update", { id: "update", onclick: applyUpdate }, tt("update")) : null,
    tabs(active));
  refreshBadge();
  window.scrollTo(0, 0);
}

// ---- enrolment and lock ------------------------------------------------------------------

function enrolScreen(error = "") {
  const form = h("form.card", { id: "enrol", onsubmit: async (e) => {
    e.preventDefault();
    const f = new FormData(form);
    const pin = String(f.get("pin"));
    if (!/^\d{6,}$/.test(pin)) return enrolScreen(t("pin_short"));
    if (pin !== String(f.get("pin2"))) return enrolScreen(t("pin_differ"));
    mount(root, h("main.center", h("p.big", tt("enrolling"))));
    try {
      await enrol(String(f.get("username")), String(f.get("password")), String(f.get("label")), pin);
      location.hash = "#/";
      await route();
    } catch (exc) {
      await store.wipe();
      vault.lock();
      enrolScreen(exc.body?.message_zh ? `${exc.body.message_zh} / ${exc.body.message_en}` : String(exc.message || exc));
    }
  } },
  h("p", t("enrol_hint")),
  field("username", "username", { autocomplete: "username", required: true, autocapitalize: "off" }),
  field("password", "password", { type: "password", autocomplete: "current-password", required: true }),
  field("label", "device_label", { value: `${navigator.platform || "phone"} ${new Date().toISOString().slice(0, 10)}`, required: true }),
  field("pin", "pin", { type: "password", inputmode: "numeric", autocomplete: "new-password", required: true }),
  field("pin2", "pin2", { type: "password", inputmode: "numeric", autocomplete: "new-password", required: true }),
  error ? h("p.error", { role: "alert" }, error) : null,
  h("button.primary", { type: "submit", id: "enrol-submit" }, tt("enrol_btn")));
  mount(root, h("header.top", h("h1", tt("app"))), h("main", h("h2", tt("enrol_title")), form, langSwitch()));
}

function field(name, key, attrs = {}) {
  return h("label.field", h("span", t(key)), h("input", { name, id: `f-${name}`, ...attrs }));
}

async function enrol(username, password, label, pin) {
  const wrapped = await vault.createVault(pin);
  const publicKey = await createDeviceKey();
  const tokens = await api.raw("POST", "/mobile/v1/devices/enrol", { body: {
    username, password, public_key: publicKey, label: label.slice(0, 100), platform: "web",
    app_version: APP_VERSION } });
  await store.put("tokens", { ...tokens, obtained_at: Date.now() });
  const me = await api.call("GET", "/mobile/v1/me");
  await store.put("device", { device_id: tokens.device_id, user_id: me.user_id, display_name: me.display_name,
    role: me.role, certificates: me.certificates, public_key: publicKey });
  await store.setMeta("enrolment", { ...wrapped, device_id: tokens.device_id, enrolled_at: new Date().toISOString() });
  app.device = await store.get("device");
  if (navigator.storage?.persist) await navigator.storage.persist().catch(() => false);
  await sync.syncNow("enrol");
}

function lockScreen(error = "") {
  const form = h("form.card", { id: "unlock", onsubmit: async (e) => {
    e.preventDefault();
    const pin = String(new FormData(form).get("pin"));
    const stored = await store.meta("enrolment");
    mount(root, h("main.center", h("p.big", "…")));
    if (!(await vault.unlock(pin, stored))) return lockScreen(tt("pin_wrong"));
    app.device = await store.get("device");
    app.lastInput = Date.now();
    await route();
    sync.syncNow("unlock");
  } },
  h("label.field", h("span", t("pin_enter")),
    h("input", { name: "pin", id: "f-pin", type: "password", inputmode: "numeric", autocomplete: "current-password", autofocus: true })),
  error ? h("p.error", { role: "alert", id: "pin-error" }, error) : null,
  h("button.primary", { type: "submit", id: "unlock-submit" }, tt("unlock")));
  mount(root, h("header.top", h("h1", `${tt("app")} · ${t("locked")}`)), h("main", form, langSwitch()));
}

export async function lockNow() {
  await saveDraft().catch(() => {}); // what was typed survives the lock (sealed before the key goes)
  vault.lock();
  lockScreen();
}

function langSwitch() {
  return h("button.link", { id: "lang", onclick: async () => { setLang(lang() === "zh" ? "en" : "zh"); await route(); } }, t("language"));
}

async function wipeAndSay(message) {
  vault.lock();
  await store.wipe();
  mount(root, h("header.top", h("h1", tt("app"))), h("main", h("p.error.big", { id: "wiped", role: "alert" }, message),
    h("button.primary", { onclick: () => enrolScreen() }, tt("enrol_title"))));
}

// ---- sync screen and settings --------------------------------------------------------------

async function syncScreen() {
  const depth = await outbox.depth();
  const waiting = await media.pendingBytes();
  const clock = await store.get("clock");
  const last = await store.get("last_sync");
  const contact = await store.get("last_contact");
  const problems = (await store.get("problems")) || [];
  const records = await store.entitiesOf("inspection_record");
  const openConflicts = records.reduce((n, r) => n + (r.open_conflicts || 0), 0);
  const rows = (await media.list()).filter((m) => m.state !== "done");
  const settings = (await store.get("settings")) || {};
  const row = (key, value, id) => h("div.kv", h("span", t(key)), h("b", { id }, value));
  const body = [
    h("section.card",
      row("status", navigator.onLine ? t("online") : t("offline"), "s-online"),
      row("outbox", String(depth), "s-depth"),
      row("media_waiting", `${fmtBytes(waiting)} (${rows.length})`, "s-bytes"),
      row("last_contact", fmtTime(contact), "s-contact"),
      row("clock_offset", clock ? `${(clock.offset_ms / 1000).toFixed(1)} s (RTT ${clock.rtt_ms} ms)` : "—", "s-clock"),
      row("last_sync", last ? `${fmtTime(last.at)} ↑${last.pushed} ↓${last.pulled}` : "—", "s-last"),
      row("open_conflicts", String(openConflicts), "s-conflicts"),
      sync.status.last_error ? h("p.error", { id: "s-error" }, sync.status.last_error) : null,
      h("button.primary", { id: "sync-now", disabled: sync.status.running, onclick: async () => { await sync.syncNow("manual"); route(); } },
        sync.status.running ? t("syncing") : tt("sync_now"))),
    rows.length ? h("section.card", h("h2", t("media_waiting")), rows.map((m) => h("div.kv",
      h("span", `${t(m.kind === "video" ? "video" : m.kind === "signature" ? "t_signature" : "photo")} · ${fmtBytes(m.size)}`),
      h("b", { class: "mstate", "data-id": m.id }, m.state === "uploading" ? `${Math.floor(100 * (m.offset || 0) / m.size)}%`
        : m.state === "hashing" && media.active.has(m.id) ? t("hashing") : t(`m_${m.state}`))))) : null,
    h("section.card", { id: "problems" }, h("h2", tt("problems")),
      problems.length ? problems.slice().reverse().map((p) => problemCard(p)) : h("p", t("none"))),
    h("section.card", h("label.check", h("input", { type: "checkbox", id: "video-wifi", checked: settings.videoOnWifiOnly,
      onchange: async (e) => store.put("settings", { ...settings, videoOnWifiOnly: e.target.checked }) }), t("video_wifi"))),
  ];
  page(tt("sync"), null, body, "sync");
}

function problemCard(p) {
  const op = p.op || {};
  if (p.status === "conflict") {
    return h("div.problem.conflict", h("b", `${t("t_record")} · ${p.conflicts?.length || 0}`), h("p", t("conflict_help")),
      (p.conflicts || []).map((c) => h("div.values", h("code", c.field),
        h("div", h("span", `${t("current_value")}: `), h("b.cur", JSON.stringify(c.current))),
        h("div", h("span", `${t("your_value")}: `), h("b.yours", JSON.stringify(c.yours))))));
  }
  const e = p.error || {};
  return h("div.problem.rejected", h("b", `${t("rejected")} · ${op.entity || ""}/${op.action || ""}`),
    h("p", `${e.message_zh || ""} / ${e.message_en || ""}`), h("code", e.code || ""));
}

async function settingsScreen() {
  const estimate = navigator.storage?.estimate ? await navigator.storage.estimate() : null;
  const persisted = navigator.storage?.persisted ? await navigator.storage.persisted() : false;
  page(tt("settings"), null, [
    h("section.card",
      h("div.kv", h("span", t("inspector")), h("b", app.device?.display_name || "")),
      h("div.kv", h("span", "Device"), h("b", { id: "device-id" }, (app.device?.device_id || "").slice(0, 8))),
      h("div.kv", h("span", "App"), h("b", APP_VERSION)),
      h("div.kv", h("span", t("storage")), h("b", { id: "storage" }, estimate ? `${fmtBytes(estimate.usage || 0)} / ${fmtBytes(estimate.quota || 0)}` : "—")),
      h("p", persisted ? t("persisted") : t("not_persisted"))),
    h("section.card", langSwitch(), h("button", { id: "lock-now", onclick: lockNow }, tt("lock_now"))),
    h("section.card", h("button.danger", { id: "wipe", onclick: async () => {
      if (confirm(t("wipe_confirm"))) await wipeAndSay(tt("wipe"));
    } }, tt("wipe"))),
  ], "settings");
}

// ---- routing -------------------------------------------------------------------------------

export async function route() {
  const enrolment = await store.meta("enrolment");
  if (!enrolment) return enrolScreen();
  if (!vault.isUnlocked()) return lockScreen();
  const parts = (location.hash.replace(/^#\/?/, "") || "").split("/").filter(Boolean);
  try {
    if (parts[0] === "i" && parts[2] === "record") return await recordPage(parts[1]);
    if (parts[0] === "i" && parts[2] === "sign") return await signaturePage(parts[1]);
    if (parts[0] === "i") return await inspectionPage(parts[1]);
    if (parts[0] === "sync") return await syncScreen();
    if (parts[0] === "cert") return await certificatePage();
    if (parts[0] === "settings") return await settingsScreen();
    return await worklist();
  } catch (exc) {
    if (String(exc.message) === "locked") return lockScreen();
    throw exc;
  }
}

// ---- triggers: online, focus, timer; idle lock; revoked wipe --------------------------------

function trySync(reason) {
  if (vault.isUnlocked() && navigator.onLine) sync.syncNow(reason).then(() => {
    if (location.hash.startsWith("#/sync") || location.hash === "" || location.hash === "#/") route();
    refreshBadge();
  });
}

api.on("revoked", () => wipeAndSay(tt("revoked")));
api.on("contact", (at) => { if (vault.isUnlocked()) store.put("last_contact", at).catch(() => {}); });
outbox.onChange(() => {
  refreshBadge();
  // Background Sync where the browser has it: the service worker tells the open app when the
  // connection is back (the data key is only in the app's memory, so the app does the work)
  if (!navigator.onLine) navigator.serviceWorker?.ready.then((reg) => reg.sync?.register("qf-sync")).catch(() => {});
});
media.onProgress((p) => {
  refreshBadge();
  const el = document.querySelector(`.mstate[data-id="${p.id}"]`);
  if (el && p.size) el.textContent = `${p.phase === "hash" ? "#" : "↑"} ${Math.floor((100 * p.done) / p.size)}%`;
  if (el && p.phase === "done") el.textContent = t("m_done");
});
sync.onStatus(refreshBadge);
addEventListener("online", () => { refreshBadge(); trySync("online"); });
addEventListener("offline", refreshBadge);
document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") trySync("focus"); });
addEventListener("hashchange", route);
for (const name of ["pointerdown", "keydown", "touchstart"]) addEventListener(name, () => { app.lastInput = Date.now(); }, { passive: true });
setInterval(() => {
  if (vault.isUnlocked() && Date.now() - app.lastInput > (Number(localStorage.getItem("qf-idle-ms")) || IDLE_LOCK_MS)) lockNow();
}, 5000);
setInterval(() => trySync("timer"), 60000);

// ---- service worker: offline boot, and updates offered, never forced -------------------------

function applyUpdate() {
  if (app.updateReady) app.updateReady.postMessage({ type: "skip-waiting" });
}

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/field/sw.js", { scope: "/field/" }).then((reg) => {
    const offer = (w) => { app.updateReady = w; if (vault.isUnlocked() && !location.hash.includes("/record")) route(); };
    if (reg.waiting && navigator.serviceWorker.controller) offer(reg.waiting);
    reg.addEventListener("updatefound", () => {
      const w = reg.installing;
      w?.addEventListener("statechange", () => { if (w.state === "installed" && navigator.serviceWorker.controller) offer(w); });
    });
  }).catch(() => {});
  navigator.serviceWorker.addEventListener("message", (event) => { if (event.data?.type === "sync") trySync("background-sync"); });
  let reloading = false;
  navigator.serviceWorker.addEventListener("controllerchange", () => {
    if (app.updateReady && !reloading) { reloading = true; location.reload(); }
  });
}

setLang(lang());
window.__qf = { store, outbox, sync, media, vault, api, route };  // for the tests and the benchmark
route().then(() => { window.__qf.ready = true; document.body.dataset.ready = "1"; });

// The device API client: bearer token, refresh within the offline grace period, the error
// contract, and the remote wipe of a revoked device.
import { get, put } from "./db.js";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.message_en || body.code)) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    this.code = this.body.code || "";
  }
}
export class Offline extends Error {}

const listeners = { revoked: [], contact: [] };
export const on = (name, fn) => listeners[name].push(fn);
const emit = (name, arg) => listeners[name].forEach((fn) => fn(arg));

const GZIP_FROM = 1024; // sync/PROTOCOL.md: bodies may be gzip-compressed (the server inflates them under a cap)

async function encodeBody(body, h) {
  if (body === undefined) return undefined;
  h["Content-Type"] = "application/json";
  const text = JSON.stringify(body);
  if (text.length < GZIP_FROM || typeof CompressionStream === "undefined") return text;
  h["Content-Encoding"] = "gzip";
  return new Response(new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer();
}

export async function raw(method, path, { body, token, headers = {} } = {}) {
  const h = { Accept: "application/json", ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  // only the sync endpoints inflate request bodies
  const payload = path.startsWith("/mobile/v1/sync/") ? await encodeBody(body, h)
    : body === undefined ? undefined : (h["Content-Type"] = "application/json", JSON.stringify(body));
  let response;
  try {
    response = await fetch(path, { method, headers: h, body: payload, cache: "no-store", credentials: "omit" });
  } catch (exc) {
    throw new Offline(String(exc));
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { raw: text }; }
  if (!response.ok) throw new ApiError(response.status, data);
  emit("contact", new Date().toISOString());
  return data;
}

let refreshing = null;
async function refresh() {
  const tokens = await get("tokens");
  if (!tokens) throw new ApiError(401, { code: "device.not_enrolled" });
  const fresh = await raw("POST", "/mobile/v1/auth/refresh", { body: { refresh_token: tokens.refresh_token } });
  const next = { ...tokens, ...fresh, obtained_at: Date.now() };
  await put("tokens", next);
  return next;
}

export async function accessToken(force = false) {
  let tokens = await get("tokens");
  const stale = !tokens || Date.now() - (tokens.obtained_at || 0) > (tokens.expires_in - 60) * 1000;
  if (force || stale) {
    refreshing = refreshing || refresh().finally(() => { refreshing = null; });
    tokens = await refreshing;
  }
  return tokens.access_token;
}

function revokedError(exc) {
  return exc instanceof ApiError && exc.code === "device.revoked";
}

/** An authenticated call; a revoked device is told so here and wipes itself. */
export async function call(method, path, body) {
  try {
    try {
      return await raw(method, path, { body, token: await accessToken() });
    } catch (exc) {
      if (exc instanceof ApiError && exc.status === 401 && !revokedError(exc)) {
        return await raw(method, path, { body, token: await accessToken(true) });
      }
      throw exc;
    }
  } catch (exc) {
    if (revokedError(exc)) emit("revoked", exc);
    throw exc;
  }
}

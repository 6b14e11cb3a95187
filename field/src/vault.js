// Encryption at rest: a random AES-GCM data key, itself encrypted under a key derived from the
// inspector's PIN (PBKDF2-SHA-256). Only the unlocked, non-extractable data key lives in memory.
const enc = new TextEncoder();
const dec = new TextDecoder();
export const PBKDF2_ITERATIONS = 310000;

let dataKey = null; // CryptoKey (AES-GCM, non-extractable) while unlocked

export const isUnlocked = () => dataKey !== null;
export const currentKey = () => dataKey;
export function lock() { dataKey = null; }

async function pinKey(pin, salt, iterations) {
  const base = await crypto.subtle.importKey("raw", enc.encode(pin), "PBKDF2", false, ["deriveKey"]);
  return crypto.subtle.deriveKey({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, base,
    { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
}

/** A new data key wrapped under the PIN; returns what is stored (no secret in clear). */
export async function createVault(pin) {
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const raw = crypto.getRandomValues(new Uint8Array(32));
  const kek = await pinKey(pin, salt, PBKDF2_ITERATIONS);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const wrapped = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv }, kek, raw));
  dataKey = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
  raw.fill(0);
  return { salt, iv, wrapped, iterations: PBKDF2_ITERATIONS };
}

/** Unlock with the PIN; a wrong PIN fails authentication (AES-GCM tag) and opens nothing. */
export async function unlock(pin, stored) {
  const kek = await pinKey(pin, stored.salt, stored.iterations);
  let raw;
  try {
    raw = new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: stored.iv }, kek, stored.wrapped));
  } catch {
    return false;
  }
  dataKey = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
  raw.fill(0);
  return true;
}

export async function sealBytes(bytes, key = dataKey) {
  if (!key) throw new Error("locked");
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, bytes);
  return { iv, ct };
}

export async function openBytes(box, key = dataKey) {
  if (!key) throw new Error("locked");
  return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: box.iv }, key, box.ct));
}

export const seal = (value) => sealBytes(enc.encode(JSON.stringify(value)));
export const open = async (box) => JSON.parse(dec.decode(await openBytes(box)));

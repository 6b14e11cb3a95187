// The device key (Ed25519). Preferred: a non-extractable WebCrypto key, kept in IndexedDB as a
// CryptoKey (the browser never reveals its private bytes). Fallback for browsers without
// WebCrypto Ed25519: @noble/ed25519 with a random seed sealed by the vault key.
import * as noble from "@noble/ed25519";
import canonicalize from "canonicalize";
import { meta, setMeta, get, put } from "./db.js";

const b64 = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)));

async function webCryptoEd25519() {
  try {
    return await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  } catch {
    return null;
  }
}

/** Make the device key; returns the raw public key, base64 (what /mobile/v1/devices takes). */
export async function createDeviceKey() {
  const pair = await webCryptoEd25519();
  if (pair) {
    const pub = await crypto.subtle.exportKey("raw", pair.publicKey);
    await setMeta("device_key", { kind: "webcrypto", privateKey: pair.privateKey, public: b64(pub) });
    return b64(pub);
  }
  const seed = noble.utils.randomSecretKey();
  const pub = await noble.getPublicKeyAsync(seed);
  await put("device_seed", b64(seed));
  await setMeta("device_key", { kind: "noble", public: b64(pub) });
  return b64(pub);
}

/**
 * The bytes the device signs: RFC 8785 (JCS) canonical JSON of the object. For the values the app
 * signs (strings, integers, booleans, decimal coordinates rounded to 7 places, never an integral
 * float) this is byte-identical to the server's sort_keys/compact json.dumps, so it verifies both
 * with today's server and with a JCS one.
 */
export function canonicalBytes(value) {
  return new TextEncoder().encode(canonicalize(value));
}

export async function sign(value) {
  const key = await meta("device_key");
  const bytes = canonicalBytes(value);
  if (key.kind === "webcrypto") return b64(await crypto.subtle.sign({ name: "Ed25519" }, key.privateKey, bytes));
  const seed = Uint8Array.from(atob(await get("device_seed")), (c) => c.charCodeAt(0));
  return b64(await noble.signAsync(bytes, seed));
}

/** Sign a capture manifest: every field but `signature` (sync/PROTOCOL.md §4.1). */
export async function signManifest(manifest) {
  const body = Object.fromEntries(Object.entries(manifest).filter(([k, v]) => k !== "signature" && v !== null && v !== undefined));
  return { ...body, signature: await sign(body) };
}

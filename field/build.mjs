// Builds the field app into ../server/web/static/field/ (committed; Flask serves it at /field/).
// Deterministic: same sources + same locked packages → same bytes (content-hashed names, no
// timestamps). `node build.mjs --check` builds into a temporary folder and fails if the committed
// build differs (CI).
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const committed = join(here, "..", "server", "web", "static", "field");
const check = process.argv.includes("--check");
const out = check ? mkdtempSync(join(tmpdir(), "field-build-")) : committed;

const hash8 = (data) => createHash("sha256").update(data).digest("hex").slice(0, 10);
const common = { bundle: true, write: false, format: "esm", target: "es2022", minify: true, legalComments: "eof",
  platform: "browser", charset: "utf8", logLevel: "warning" };

async function bundle(entry, define = {}) {
  const result = await build({ ...common, entryPoints: [join(here, "src", entry)], define, outfile: "out.js" });
  return result.outputFiles[0].contents;
}

const files = {};
const worker = await bundle("hash.worker.js");
const workerName = `hash-worker-${hash8(worker)}.js`;
files[workerName] = worker;
const app = await bundle("main.js", { __WORKER_URL__: JSON.stringify(`/field/${workerName}`) });
const appName = `app-${hash8(app)}.js`;
files[appName] = app;
const css = readFileSync(join(here, "src", "app.css"));
const cssName = `app-${hash8(css)}.css`;
files[cssName] = css;
files["index.html"] = readFileSync(join(here, "src", "index.html"), "utf8").replace("__CSS__", cssName).replace("__JS__", appName);
files["icon.svg"] = readFileSync(join(here, "src", "icon.svg"));
files["manifest.webmanifest"] = readFileSync(join(here, "src", "manifest.webmanifest"));
const shell = ["index.html", appName, cssName, workerName, "icon.svg", "manifest.webmanifest"];
const version = hash8(shell.map((f) => files[f]).map((x) => Buffer.from(x)).reduce((a, b) => Buffer.concat([a, b])));
files["sw.js"] = readFileSync(join(here, "src", "sw.js"), "utf8").replace("__BUILD_HASH__", version).replace("__SHELL_FILES__", JSON.stringify(shell));
files["version.json"] = JSON.stringify({ version, shell }) + "\n";

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
for (const [name, data] of Object.entries(files)) writeFileSync(join(out, name), data);

if (check) {
  const list = (dir) => readdirSync(dir).sort();
  let same = JSON.stringify(list(out)) === JSON.stringify(list(committed));
  if (same) for (const name of list(out)) if (!readFileSync(join(out, name)).equals(readFileSync(join(committed, name)))) { same = false; console.error(`differs: ${name}`); }
  rmSync(out, { recursive: true, force: true });
  if (!same) { console.error("The committed field app build (server/web/static/field/) differs from the sources: run `make field` and commit."); process.exit(1); }
  console.log("field app build: up to date");
} else {
  console.log(`field app built: ${Object.keys(files).sort().join(", ")} (version ${version})`);
}

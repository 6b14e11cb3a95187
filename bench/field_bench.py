"""The field app (/field/) in headless Chromium on this machine: shell size, offline boot, in-browser
hashing speed and memory, and outbox push throughput.

A scratch SQLite instance with the demo data is served by gunicorn on a free 127.0.0.1 port; the
app is driven by Playwright with Debian's Chromium at 390×844. Prints ``name: number unit`` lines:

* ``field_shell_kib_gz``: index.html + JS (app and hashing worker) + CSS, gzipped (target ≤ 250)
* ``field_offline_boot_ms``: reload with the network off until the work list is painted, PIN
  unlock (PBKDF2, 310,000 rounds) included (target ≤ 1,000)
* ``field_hash_mib_per_s``: SHA-256 of a 1 GiB file in the app's worker (target ≥ 300)
* ``field_memory_mib``: JS heap of the page + the worker, highest sample while hashing it (≤ 150)
* ``field_outbox_push_ops_per_s``: 5,000 operations from IndexedDB through push to the server's
  acknowledgement (target ≥ 1,000)

    .venv/bin/python bench/field_bench.py [--hash-mib 1024] [--ops 5000]
"""
from __future__ import annotations

import argparse
import gzip
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "server" / "web" / "static" / "field"
BIN = Path(sys.executable).parent
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
PIN = "246810"


def shell_kib_gz() -> float:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    names = ["index.html"] + [p.name for p in STATIC.iterdir() if p.suffix in (".js", ".css") and p.name != "sw.js"]
    assert all(n in html or n.startswith("hash-worker") or n == "index.html" for n in names)
    return sum(len(gzip.compress((STATIC / n).read_bytes(), 9)) for n in names) / 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(instance: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {**os.environ, "ENFORCE_INSTANCE_PATH": str(instance), "ENFORCE_DATABASE_URL": f"sqlite:///{instance}/bench.db",
           "ENFORCE_LOG_LEVEL": "WARNING", "ENFORCE_BROKER_URL": "memory://"}
    subprocess.run([str(BIN / "enforce"), "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run([str(BIN / "enforce"), "demo", "load", "--targets", "200", "--inspectors", "20"], env=env,
                   check=True, capture_output=True)
    port = free_port()
    proc = subprocess.Popen([str(BIN / "gunicorn"), "--workers", "2", "--threads", "4", "--bind", f"127.0.0.1:{port}",
                             "server:create_app()"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.2)
    return proc, url


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hash-mib", type=int, default=1024)
    parser.add_argument("--ops", type=int, default=5000)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    print(f"field_shell_kib_gz: {shell_kib_gz():.1f} KiB")
    with tempfile.TemporaryDirectory(prefix="field-bench-") as tmp:
        instance = Path(tmp)
        proc, url = serve(instance)
        try:
            with sync_playwright() as p:
                ctx = p.chromium.launch_persistent_context(
                    str(instance / "profile"), executable_path="/usr/bin/chromium", headless=True, args=ARGS,
                    viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
                page = ctx.pages[0] if ctx.pages else ctx.new_page()
                page.goto(url + "/field/")
                page.fill("#f-username", "inspector01")
                page.fill("#f-password", "Qinling-2026")
                page.fill("#f-pin", PIN)
                page.fill("#f-pin2", PIN)
                page.click("#enrol-submit")
                page.wait_for_selector("#worklist", timeout=60000)
                page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=30000)

                # offline boot: reload → PIN → work list painted
                ctx.set_offline(True)
                samples = []
                for _ in range(5):
                    start = time.perf_counter()
                    page.reload()
                    page.wait_for_selector("#f-pin")
                    page.fill("#f-pin", PIN)
                    page.click("#unlock-submit")
                    page.wait_for_selector("#worklist .card")
                    samples.append((time.perf_counter() - start) * 1000)
                print(f"field_offline_boot_ms: {sorted(samples)[len(samples) // 2]:.0f} ms "
                      f"(median of 5; fastest {min(samples):.0f})")

                # hashing in the worker, with the page's and the worker's heap sampled meanwhile
                big = instance / "big.bin"
                with big.open("wb") as fh:
                    block = os.urandom(1 << 20)
                    for _ in range(args.hash_mib):
                        fh.write(block)
                page.evaluate("""() => { const i = document.createElement('input'); i.type = 'file'; i.id = 'bench-file';
                                  document.body.append(i); }""")
                page.set_input_files("#bench-file", str(big))
                cdp = ctx.new_cdp_session(page)
                cdp.send("Performance.enable")
                page.evaluate("""() => { window.__hash = null; const f = document.getElementById('bench-file').files[0];
                    const t0 = performance.now();
                    window.__qf.media.hashOnly(f).then((r) => { window.__hash = {ms: performance.now() - t0, sha: r.sha256}; }); }""")
                peak = 0.0
                while True:
                    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
                    heap = metrics.get("JSHeapUsedSize", 0)
                    for worker in page.workers:
                        try:
                            heap += worker.evaluate("self.performance && performance.memory ? performance.memory.usedJSHeapSize : 0")
                        except Exception:  # noqa: BLE001 - the worker may be between messages
                            pass
                    peak = max(peak, heap)
                    done = page.evaluate("window.__hash")
                    if done:
                        break
                    time.sleep(0.1)
                print(f"field_hash_mib_per_s: {args.hash_mib / (done['ms'] / 1000):.0f} MiB/s ({args.hash_mib} MiB)")
                print(f"field_memory_mib: {peak / 2**20:.1f} MiB (page + worker JS heap, peak while hashing)")
                big.unlink()

                # outbox push: N operations sealed in IndexedDB → push → acknowledged
                inspection = page.evaluate("""async () => { const me = await window.__qf.store.get('device');
                    const all = (await window.__qf.store.entitiesOf('inspection')).filter((i) =>
                        (i.members || []).some((m) => m.user_id === me.user_id));
                    return all[0].id; }""")
                page.evaluate(f"""async () => {{ const items = [];
                    for (let i = 0; i < {args.ops}; i++) items.push(['note', 'append', {{id: crypto.randomUUID(),
                        inspection_id: '{inspection}', text: 'bench ' + i}}]);
                    await window.__qf.outbox.enqueueMany(items); }}""")
                local = page.evaluate("""async () => { const t0 = performance.now();
                    for (let i = 0; i < 5; i++) await window.__qf.outbox.pending(1000); return performance.now() - t0; }""")
                print(f"field_outbox_read_ops_per_s: {args.ops / (local / 1000):.0f} ops/s (IndexedDB read + decrypt only)")
                ctx.set_offline(False)
                ms = page.evaluate("""async () => { const t0 = performance.now(); await window.__qf.sync.push();
                    if (await window.__qf.outbox.depth()) throw new Error('not all answered');
                    return performance.now() - t0; }""")
                print(f"field_outbox_push_ops_per_s: {args.ops / (ms / 1000):.0f} ops/s ({args.ops} ops, {ms / 1000:.2f} s)")
                ctx.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1, 5, 15 min)")


if __name__ == "__main__":
    main()

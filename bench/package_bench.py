"""Evidence package benchmark: a transferred case with 2,000 photos and 5 GiB of video.

Prints ``name: number unit`` lines:

  package_build_s                 ``enforce transfers package`` (a subprocess) end to end
  package_build_peak_rss_mib      its peak RSS (ru_maxrss from wait4)
  package_verify_s                ``python3 -I verify.py package.zip`` (a subprocess) end to end
  package_verify_peak_rss_mib     its peak RSS
  package_sha256_mib_s            plain hashlib SHA-256 over the same archive, one thread, this run
  package_verify_sha256_ratio     (archive bytes / verify time) ÷ plain SHA-256 throughput (target ≥ 0.7)

Data are generated in a temp dir (SQLite file, local blob store, the archive) and removed at the
end. Photos are ~64 KiB of random bytes behind a JPEG header; videos are 5 × 1 GiB. The demo loader
makes the people, the case and the transfer; the bench adds the evidence through the real
``evidence.announce`` with device signatures. ``--photos`` / ``--video-gib`` shrink it for a try.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENFORCE = ROOT / ".venv" / "bin" / "enforce"


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "ENFORCE_INSTANCE_PATH": str(tmp / "instance"),
            "ENFORCE_DATABASE_URL": f"sqlite:///{tmp / 'instance' / 'bench.db'}",
            "ENFORCE_STORAGE_URL": (tmp / "blobs").as_uri(), "ENFORCE_LOG_JSON": "false"}


def _run(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[float, float, str]:
    """Run a child; returns (seconds, peak RSS MiB, output)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read().decode(errors="replace")  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-4000:]}")
    return elapsed, usage.ru_maxrss / 1024, out


def _generate(tmp: Path, photos: int, video_gib: int) -> list[tuple[str, int, str, str]]:
    """Blob files named by their digest, moved into the local store layout; (digest, size, media, kind)."""
    blobs = tmp / "blobs"
    made = []

    def put(digest: str, path: Path) -> None:
        target = blobs / digest[:2] / digest[2:4] / digest
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)

    header = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
    for _ in range(photos):
        data = header + os.urandom(64 * 1024)
        digest = hashlib.sha256(data).hexdigest()
        path = tmp / "incoming"
        path.write_bytes(data)
        put(digest, path)
        made.append((digest, len(data), "image/jpeg", "photo"))
    block = bytearray(os.urandom(1 << 20))
    for v in range(video_gib):
        path, sha = tmp / "incoming", hashlib.sha256()
        with open(path, "wb") as out:
            head = b"\x00\x00\x00\x18ftypmp42" + bytes(4)
            for n in range(1024):
                block[:16] = head if n == 0 else (v * 1024 + n).to_bytes(16, "big")
                sha.update(block)
                out.write(block)
        put(sha.hexdigest(), path)
        made.append((sha.hexdigest(), 1 << 30, "video/mp4", "video"))
    return made


def _seed(tmp: Path, blobs: list[tuple[str, int, str, str]]) -> str:
    """Demo people and transfer, then the evidence through ``evidence.announce`` (signed manifests).
    Runs in its own process (``--seed``): a child forked from a large parent would report the
    parent's RSS as its own peak (Linux keeps the pre-exec high-water mark)."""
    os.environ.update(_env(tmp))
    sys.path.insert(0, str(ROOT))
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    import sqlalchemy as sa

    from server import create_app
    from server.core.canonical import canonical_json
    from server.extensions import db
    from server.modules.demo import operations as demo
    from server.modules.devices.models import Device
    from server.modules.evidence import operations as evidence
    from server.modules.evidence.models import Blob
    from server.modules.transfers.models import Transfer
    from server.modules.users.models import User

    app = create_app()
    with app.app_context():
        from flask_migrate import upgrade

        from server.extensions import init_migrations

        init_migrations(app)
        upgrade()
        demo.load(db.session, targets=10, inspectors=10)
        db.session.commit()
        transfer = db.session.scalar(sa.select(Transfer))
        a = db.session.scalar(sa.select(User).where(User.username == "inspector01"))
        b = db.session.scalar(sa.select(User).where(User.username == "inspector09"))
        key = Ed25519PrivateKey.generate()
        device = Device(user_id=a.id, public_key=key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
                        label="bench bodycam dock")
        db.session.add(device)
        db.session.flush()
        for n, (digest, size, media, kind) in enumerate(blobs):
            db.session.add(Blob(sha256=digest, size=size, media_type=media))
            manifest = {"id": str(uuid.uuid4()), "sha256": digest, "size": size, "media_type": media,
                        "kind": kind, "case_id": transfer.case_id, "captured_at": "2026-11-20T10:00:00+08:00",
                        "lat": 33.87 + n * 1e-5, "lon": 109.94, "accuracy_m": 5.0, "second_inspector_id": b.id,
                        "app_version": "1.0.0", "acquisition_method": "app_camera", "step": "on_site"}
            manifest["signature"] = base64.b64encode(key.sign(canonical_json(manifest))).decode()
            db.session.flush()
            evidence.announce(db.session, device=device, user=a, inspection_id=None, manifest=manifest)
            if n % 200 == 199:
                db.session.commit()
        db.session.commit()
        return transfer.id


def _sha256_rate(path: Path) -> float:
    sha, size = hashlib.sha256(), 0
    start = time.perf_counter()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            sha.update(chunk)
            size += len(chunk)
    return size / (1 << 20) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--video-gib", type=int, default=5)
    parser.add_argument("--dir", default=None, help="parent of the temp dir (needs ~2.2× the data size free)")
    parser.add_argument("--seed", help=argparse.SUPPRESS)
    parser.add_argument("--python", default="/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable,
                        help="the plain python3 that runs verify.py")
    args = parser.parse_args()
    if args.seed:
        seed_dir = Path(args.seed)
        print(_seed(seed_dir, [tuple(b) for b in json.loads((seed_dir / "blobs.json").read_text())]))
        return
    tmp = Path(tempfile.mkdtemp(prefix="package-bench-", dir=args.dir))
    try:
        (tmp / "instance").mkdir()
        started = time.perf_counter()
        blobs = _generate(tmp, args.photos, args.video_gib)
        (tmp / "blobs.json").write_text(json.dumps(blobs))
        seeded = subprocess.run([sys.executable, __file__, "--seed", str(tmp)], capture_output=True, text=True,
                                env=_env(tmp), check=True)
        transfer_id = seeded.stdout.strip().splitlines()[-1]
        print(f"# data ready in {time.perf_counter() - started:.0f} s: {args.photos} photos, {args.video_gib} GiB video",
              flush=True)
        out = tmp / "out" / "package.zip"
        build_s, build_rss, build_out = _run([str(ENFORCE), "transfers", "package", transfer_id, "--out", str(out)],
                                             _env(tmp))
        shutil.rmtree(tmp / "blobs")  # disk: the archive holds the data now
        check = tmp / "check"
        check.mkdir()
        with zipfile.ZipFile(out) as zf:
            zf.extract("verify.py", check)
            zf.extract("verifier.py", check)
        os.replace(out, check / "package.zip")
        rate = _sha256_rate(check / "package.zip")  # also leaves the archive in the page cache for both
        size_mib = (check / "package.zip").stat().st_size / (1 << 20)
        verify_s, verify_rss, verify_out = _run([args.python, "-I", "verify.py", "package.zip"], {"PATH": "/usr/bin"},
                                                cwd=check)
        if "RESULT: PASSED" not in verify_out:
            raise SystemExit(verify_out[-4000:])
        print(f"package_bytes: {size_mib:.0f} MiB")
        print(f"package_build_s: {build_s:.1f} s")
        print(f"package_build_peak_rss_mib: {build_rss:.0f} MiB")
        print(f"package_verify_s: {verify_s:.1f} s")
        print(f"package_verify_peak_rss_mib: {verify_rss:.0f} MiB")
        print(f"package_sha256_mib_s: {rate:.0f} MiB/s")
        print(f"package_verify_sha256_ratio: {size_mib / verify_s / rate:.2f} ratio")
        impl = next((line for line in verify_out.splitlines() if "Ed25519 implementation" in line), "")
        print(f"# verifier: {args.python}; {impl.split('/')[-1].strip()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Sync throughput over real HTTP: push a 5,000-operation offline backlog, replay it (the
responses were lost), and pull 5,000 changes on a teammate's device.

The Flask app runs under gunicorn as deployed (``server/gunicorn_conf.py``: 2 gthread workers,
keep-alive; ``--werkzeug`` for the old in-process server thread) on a free 127.0.0.1 port, against a scratch PostgreSQL database
(``--pg-url``, default the local trust server) and then a scratch SQLite file; the client is
``sync/client.py`` with its default batch size and zstd bodies. Prints ``name: number unit`` lines. ``--profile`` adds a cProfile of one
push (in-process, same code path) to show where the time goes.

    .venv/bin/python bench/sync_bench.py [--ops 5000] [--pg-url postgresql://postgres@127.0.0.1:5432/postgres]
"""
from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import logging
import os
import pstats
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

TEXT = ("现场检查发现该企业污水处理设施运行正常，在线监测设备联网，危险废物贮存间标识规范；"
        "but the rain-water outlet showed traces of grey water after 14:20, sample QL-2026-") * 1


def settings(url: str, instance: Path) -> dict[str, str]:
    return {"ENV": "test", "DATABASE_URL": url, "SECRET_KEY": "bench-secret-key-0123456789",
            "STORAGE_URL": (instance / "blobs").as_uri(), "LOG_JSON": "false", "LOG_LEVEL": "WARNING",
            "AUDIT_LOG_KEY": str(instance / "audit-log-key.pem")}


def make_app(url: str, instance: Path):  # type: ignore[no-untyped-def]
    os.environ.setdefault("ENFORCE_INSTANCE_PATH", str(instance))
    from flask_migrate import upgrade

    from server import create_app
    from server.extensions import init_migrations

    config: dict[str, object] = dict(settings(url, instance))
    config["LOG_JSON"] = False
    app = create_app(config)
    init_migrations(app)
    with app.app_context():
        upgrade()
    return app


class Gunicorn:
    """The app under gunicorn with the deployed settings (server/gunicorn_conf.py: 2 gthread workers,
    keep-alive connections), configured through ENFORCE_* like a deployment."""

    def __init__(self, url: str, instance: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("ENFORCE_")},
               "ENFORCE_INSTANCE_PATH": str(instance),
               **{f"ENFORCE_{k}": v for k, v in settings(url, instance).items()}}
        root = Path(__file__).resolve().parent.parent
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "-c", "python:server.gunicorn_conf", "--no-control-socket",
             "--bind", f"127.0.0.1:{self.port}", "--log-level", "warning", "server:create_app()"],
            cwd=root, env=env)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.2)

    def shutdown(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def scratch_pg(base: str) -> tuple[str, sa.Engine, str]:
    url = make_url(base.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"enforce_sync_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return url.set(database=name).render_as_string(hide_password=False), admin, name


def enqueue_backlog(client, inspection_id: str, n: int, rng: random.Random) -> None:  # type: ignore[no-untyped-def]
    """The 3-day offline backlog: notes, check-ins, signed media manifests, record edits."""
    for i in range(n):
        kind = rng.random()
        if kind < 0.60:
            client.note(inspection_id, f"{TEXT}{i:05d}")
        elif kind < 0.80:
            client.check_in(inspection_id, 33.8 + rng.random() / 10, 109.9 + rng.random() / 10, 5.0)
        elif kind < 0.95:
            client.manifest(inspection_id, kind=rng.choice(["photo", "bodycam", "video"]),
                            sha256=hashlib.sha256(str(i).encode()).hexdigest(), size=rng.randint(10**5, 10**9),
                            media_type="image/jpeg", lat=33.87, lon=109.94)
        else:
            client.edit_record(inspection_id, {"findings": f"第{i}次补充：{TEXT}"})


def run(label: str, url: str, n: int, profile: bool, werkzeug: bool = False) -> dict[str, float]:
    from server.extensions import db
    from sync import demo
    from sync.client import FlaskTransport, HttpTransport, SyncClient

    instance = Path(tempfile.mkdtemp(prefix=f"sync-bench-{label}-"))
    app = make_app(url, instance)
    with app.app_context():
        team = demo.make_team(db.session, inspectors=2, tag=uuid.uuid4().hex[:8])
        db.session.commit()
        db.session.remove()
    if werkzeug:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}"
    else:
        server = Gunicorn(url, instance)
        base = f"http://127.0.0.1:{server.port}"
    a_dev, b_dev = team.devices
    inspection = team.inspection_ids[0]
    try:
        a = SyncClient(str(instance / "a.db"), HttpTransport(base), a_dev.access_token, a_dev.device_id,
                       private_key=a_dev.private_key)
        b = SyncClient(str(instance / "b.db"), HttpTransport(base), b_dev.access_token, b_dev.device_id,
                       private_key=b_dev.private_key)
        a.full_resync()
        b.full_resync()
        enqueue_backlog(a, inspection, n, random.Random(611000))
        a.hello()
        sent0, recv0 = a.stats.bytes_sent, a.stats.bytes_received
        t = time.perf_counter()
        results = a.push()
        push_s = time.perf_counter() - t
        assert len(results) == n and all(r["status"] in ("applied", "merged") for r in results), \
            {r["status"] for r in results}
        push_bytes = a.stats.bytes_sent - sent0 + a.stats.bytes_received - recv0
        # The responses were lost: the device sends the very same batches again.
        a.db.execute("UPDATE outbox SET state = 'pending', result = NULL")
        t = time.perf_counter()
        replayed = a.push()
        replay_s = time.perf_counter() - t
        assert replayed == results, "a replay must return the first results"
        recv0 = b.stats.bytes_received
        t = time.perf_counter()
        pulled = b.pull(limit=1000)
        pull_s = time.perf_counter() - t
        assert pulled >= n, pulled
        pull_bytes = b.stats.bytes_received - recv0
        if profile:
            c = SyncClient(str(instance / "p.db"), FlaskTransport(app.test_client()), a_dev.access_token,
                           a_dev.device_id, private_key=a_dev.private_key)
            c._set_meta("device_seq", str(10 * n))
            enqueue_backlog(c, inspection, 1000, random.Random(1))
            profiler = cProfile.Profile()
            profiler.enable()
            c.push()
            profiler.disable()
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("tottime").print_stats(25)
            stats.sort_stats("cumulative").print_stats(r"sync/|audit/", 30)
            print(f"# profile of one 1,000-op push ({label}, in-process)\n" + out.getvalue(), file=sys.stderr)
    finally:
        server.shutdown()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    return {
        f"sync_push_records_per_s_{label}": n / push_s,
        f"sync_replay_records_per_s_{label}": n / replay_s,
        f"sync_pull_records_per_s_{label}": pulled / pull_s,
        f"_wire_{label}": (push_bytes + pull_bytes) / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=5000)
    parser.add_argument("--pg-url", default=os.environ.get("ENFORCE_BENCH_PG_URL",
                                                           "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--werkzeug", action="store_true", help="serve from a thread of this process")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    figures: dict[str, float] = {}
    if not args.skip_postgres:
        url, admin, name = scratch_pg(args.pg_url)
        try:
            figures.update(run("postgres", url, args.ops, args.profile, args.werkzeug))
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    sqlite_dir = Path(tempfile.mkdtemp(prefix="sync-bench-sqlite-"))
    figures.update(run("sqlite", f"sqlite:///{sqlite_dir / 'bench.db'}", args.ops, args.profile, args.werkzeug))
    wire = [v for k, v in figures.items() if k.startswith("_wire_")]
    for name, value in figures.items():
        if not name.startswith("_"):
            print(f"{name}: {value:.0f} records/s")
    print(f"sync_wire_bytes_per_record: {sum(wire) / len(wire):.0f} bytes")


if __name__ == "__main__":
    main()

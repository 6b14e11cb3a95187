"""Evidence upload benchmark: a large tus upload to a real gunicorn server, on local disk and on S3.

Prints ``name: number unit`` lines:

  upload_chunk_bytes              bytes per PATCH (the client's chunk size; 8 MiB by default)
  upload_socket_limit_mib_per_s   the real limit here: a bare Python socket server on loopback receives
                                  the same bytes, hashes them (SHA-256), writes them, one fsync at the end
  upload_mib_per_s_local          the same bytes through tuspy to the local blob store (fsync per PATCH,
                                  hash, commit; completion included)
  upload_limit_ratio_local        upload ÷ socket limit, both measured in this run (target ≥ 0.6)
  upload_patch_overhead_ms        median time of a 1-byte PATCH on a keep-alive connection (target ≤ 5)
  plain_loop_mib_per_s            (older figure) SHA-256 + write + fsync per chunk, no network
  upload_mib_per_s_s3             the same through tus to S3 (moto_server as a separate process)
  upload_peak_rss_mib             largest peak RSS (VmHWM) of any gunicorn process (target < 100, flat in size)
  upload_resent_bytes_after_drop  bytes sent twice after the connection was reset mid-PATCH (target ≤ 1 chunk)

The server runs as deployed: ``gunicorn -c python:server.gunicorn_conf`` (gthread, 2 workers x 32 threads) on
SQLite in a temporary instance folder. Usage:
.venv/bin/python bench/upload_bench.py [--size-mib 1024] [--chunk-mib 8] [--skip-s3]
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MIB = 1 << 20
BIN = Path(sys.executable).parent  # the venv running this script
MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Data:
    """Deterministic, incompressible bytes: a random block, stamped with a seed and the chunk number."""

    def __init__(self, size: int, chunk: int, seed: int) -> None:
        self.size, self.chunk, self.seed = size, chunk, seed
        self.block = bytearray(random.Random(seed).randbytes(chunk))

    def chunks(self) -> Iterator[bytes]:
        for index, start in enumerate(range(0, self.size, self.chunk)):
            block = self.block
            block[:16] = struct.pack(">QQ", self.seed, index)
            piece = bytes(block[: min(self.chunk, self.size - start)])
            if index == 0:
                piece = MP4_HEAD + piece[len(MP4_HEAD):]
            yield piece

    def sha256(self) -> str:
        h = hashlib.sha256()
        for piece in self.chunks():
            h.update(piece)
        return h.hexdigest()


def seed_database(instance: Path, env: dict[str, str]) -> str:
    """Migrate, create one inspector with a device; return a device access token."""
    os.environ.update(env)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    from flask_migrate import upgrade

    from server import create_app
    from server.core.access import Role
    from server.extensions import db, init_migrations
    from server.modules.devices.models import Device
    from server.modules.devices.operations import issue_tokens
    from server.modules.users.models import Agency, AgencyKind, Unit, UnitKind, User

    app = create_app()
    init_migrations(app)
    with app.app_context():
        upgrade()
        agency = Agency(kind=AgencyKind.ECOLOGY_BUREAU, name_zh="基准测试局", name_en="Bench bureau", region_code="611000")
        unit = Unit(agency=agency, kind=UnitKind.BRIGADE, name_zh="基准测试大队", name_en="Bench brigade",
                    region_code="611002")
        user = User(username="bench", display_name="基准", role=Role.INSPECTOR, unit=unit, region_code="611002")
        db.session.add_all([agency, unit, user])
        db.session.flush()
        raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        device = Device(user_id=user.id, public_key=raw, label="bench")
        db.session.add(device)
        db.session.flush()
        token = str(issue_tokens(db.session, device)["access_token"])
        db.session.commit()
        db.engine.dispose()
    return token


class Server:
    def __init__(self, env: dict[str, str], port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "python:server.gunicorn_conf", "--timeout", "300",
             "--bind", f"127.0.0.1:{port}"],
            cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120  # a busy machine starts slowly
        while time.time() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                return
            except OSError:
                time.sleep(0.2)
        self.proc.terminate()  # never leave a half-started server behind
        self.proc.wait(timeout=30)
        raise RuntimeError("gunicorn did not start")

    def peak_rss_mib(self) -> float:
        pids = [self.proc.pid]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                    pids.append(int(stat.parent.name))
            except (OSError, IndexError, ValueError):
                continue
        peaks = []
        for pid in pids:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        return max(peaks)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


class Client:
    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        self.sent = 0

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {self.token}", **extra}

    def request(self, method: str, path: str, body: bytes | None = None, **headers: str) -> http.client.HTTPResponse:
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=self.headers(**headers))
                response = self.conn.getresponse()
                response.read()
                return response
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
                if attempt:
                    raise
        raise AssertionError

    def create(self, data: Data, digest: str) -> str:
        meta = f"sha256 {base64.b64encode(digest.encode()).decode()},filename {base64.b64encode(b'bench.mp4').decode()}"
        response = self.request("POST", "/mobile/v1/uploads/", **{"Upload-Length": str(data.size),
                                                                   "Upload-Metadata": meta})
        assert response.status == 201, response.status
        return response.getheader("Location")

    def offset(self, location: str) -> int:
        response = self.request("HEAD", location)
        assert response.status == 200, response.status
        return int(response.getheader("Upload-Offset"))

    def patch(self, location: str, offset: int, body: bytes) -> http.client.HTTPResponse:
        self.sent += len(body)
        return self.request("PATCH", location, body, **{"Upload-Offset": str(offset),
                                                         "Content-Type": "application/offset+octet-stream"})

    def upload(self, data: Data, digest: str) -> float:
        location = self.create(data, digest)
        start, offset = time.perf_counter(), 0
        for piece in data.chunks():
            response = self.patch(location, offset, piece)
            assert response.status == 204, (response.status, response.getheader("Upload-Offset"))
            offset = int(response.getheader("Upload-Offset"))
        elapsed = time.perf_counter() - start
        assert offset == data.size
        return data.size / MIB / elapsed

    def upload_with_drop(self, data: Data, digest: str, rng: random.Random) -> int:
        """Reset the connection (RST) at a random point of a random PATCH, then resume like a tus client."""
        location = self.create(data, digest)
        pieces = list(data.chunks())
        drop_at = rng.randrange(1, len(pieces))
        offset = 0
        for index, piece in enumerate(pieces):
            if index == drop_at:
                self._send_partial(location, offset, piece, rng.randrange(1, len(piece)))
                break
            assert self.patch(location, offset, piece).status == 204
            offset += len(piece)
        stream = b"".join(pieces)
        while True:
            offset = self.offset(location)
            if offset == data.size:
                break
            response = self.patch(location, offset, stream[offset:offset + data.chunk - offset % data.chunk])
            if response.status in (409, 423):  # the dropped request is still being finished: ask again
                time.sleep(0.05)
                continue
            assert response.status == 204, response.status
        return self.sent - data.size

    def _send_partial(self, location: str, offset: int, piece: bytes, cut: int) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port))
        head = (f"PATCH {location} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n"
                f"Authorization: Bearer {self.token}\r\nUpload-Offset: {offset}\r\n"
                f"Content-Type: application/offset+octet-stream\r\nContent-Length: {len(piece)}\r\n\r\n")
        sock.sendall(head.encode() + piece[:cut])
        self.sent += cut
        time.sleep(0.2)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, as a dropped link
        sock.close()


def write_file(data: Data, path: Path) -> Path:
    with open(path, "wb") as out:
        for piece in data.chunks():
            out.write(piece)
    return path


def tuspy_upload(port: int, token: str, source: Path, digest: str, chunk: int) -> float:
    """The official Python client, as a phone app's uploader would run it (completion included)."""
    from tusclient import client as tus_client

    client = tus_client.TusClient(f"http://127.0.0.1:{port}/mobile/v1/uploads/",
                                  headers={"Authorization": f"Bearer {token}"})
    uploader = client.uploader(file_path=str(source), chunk_size=chunk,
                               metadata={"sha256": digest, "filename": "bench.mp4"})
    start = time.perf_counter()
    uploader.upload()
    elapsed = time.perf_counter() - start
    assert uploader.offset == source.stat().st_size
    return source.stat().st_size / MIB / elapsed


def socket_limit(source: Path, folder: Path, chunk: int) -> float:
    """A bare socket server on loopback: recv, SHA-256, write, one fsync at the end. The client sends
    the file in ``chunk``-sized pieces on one connection."""
    size = source.stat().st_size
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    result: dict[str, float] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        buffer = bytearray(1 << 20)
        view = memoryview(buffer)
        h = hashlib.sha256()
        received = 0
        with conn, open(folder / "socket-limit.bin", "wb", buffering=0) as out:
            while received < size:
                got = conn.recv_into(buffer)
                if not got:
                    break
                h.update(view[:got])
                out.write(view[:got])
                received += got
            os.fsync(out.fileno())
            result["end"] = time.perf_counter()
            conn.sendall(h.hexdigest().encode())

    thread = threading.Thread(target=serve)
    thread.start()
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock, open(source, "rb") as src:
        while piece := src.read(chunk):
            sock.sendall(piece)
        sock.recv(64)
    thread.join()
    listener.close()
    (folder / "socket-limit.bin").unlink()
    return size / MIB / (result["end"] - start)


def patch_overhead_ms(port: int, token: str, count: int = 200) -> float:
    """Median time of a 1-byte PATCH on one keep-alive connection (auth, lock, write, fsync, commit)."""
    client = Client(port, token)
    data = Data(count + 1, count + 1, seed=9)
    location = client.create(data, "0" * 64)
    times = []
    for offset in range(count):
        start = time.perf_counter()
        response = client.patch(location, offset, b"x")
        times.append(time.perf_counter() - start)
        assert response.status == 204, response.status
    return statistics.median(times) * 1000


def plain_loop(data: Data, folder: Path) -> float:
    """The ceiling: receive nothing, hash and write the same chunks with fsync per chunk."""
    path = folder / "plain.bin"
    h = hashlib.sha256()
    start = time.perf_counter()
    with open(path, "wb", buffering=0) as out:
        for piece in data.chunks():
            h.update(piece)
            out.write(piece)
            os.fsync(out.fileno())
    elapsed = time.perf_counter() - start
    path.unlink()
    return data.size / MIB / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--chunk-mib", type=int, default=8)
    parser.add_argument("--skip-s3", action="store_true")
    args = parser.parse_args()
    size, chunk = args.size_mib * MIB, args.chunk_mib * MIB

    with tempfile.TemporaryDirectory(prefix="upload-bench-", dir=os.environ.get("BENCH_TMP")) as tmp:
        instance = Path(tmp)
        env = {"ENFORCE_INSTANCE_PATH": str(instance), "ENFORCE_ENV": "development", "ENFORCE_LOG_LEVEL": "WARNING",
               "ENFORCE_DATABASE_URL": f"sqlite:///{instance / 'bench.db'}",
               "ENFORCE_STORAGE_URL": (instance / "blobs").as_uri(), "ENFORCE_DEVICE_TOKEN_TTL_S": "86400"}
        token = seed_database(instance, env)
        print(f"upload_chunk_bytes: {chunk} bytes", flush=True)

        port = free_port()
        server = Server(env, port)
        try:
            local = Data(size, chunk, seed=1)
            source = write_file(local, instance / "source.bin")
            limit = socket_limit(source, instance, chunk)
            rate = tuspy_upload(port, token, source, local.sha256(), chunk)
            source.unlink()
            print(f"upload_socket_limit_mib_per_s: {limit:.0f} MiB/s", flush=True)
            print(f"upload_mib_per_s_local: {rate:.0f} MiB/s", flush=True)
            print(f"upload_limit_ratio_local: {rate / limit:.2f} ratio", flush=True)
            print(f"upload_patch_overhead_ms: {patch_overhead_ms(port, token):.1f} ms", flush=True)
            ceiling = plain_loop(Data(min(size, 256 * MIB), chunk, seed=1), instance)
            print(f"plain_loop_mib_per_s: {ceiling:.0f} MiB/s", flush=True)
            dropped = Data(256 * MIB, chunk, seed=2)
            resent = Client(port, token).upload_with_drop(dropped, dropped.sha256(), random.Random(7))
            print(f"upload_resent_bytes_after_drop: {resent} bytes", flush=True)
            print(f"upload_peak_rss_mib: {server.peak_rss_mib():.0f} MiB", flush=True)
        finally:
            server.stop()

        if args.skip_s3:
            return
        moto_port = free_port()
        aws = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
        moto = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                                env={**os.environ, **aws}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            import boto3

            endpoint = f"http://127.0.0.1:{moto_port}"
            for _ in range(100):
                try:
                    boto3.client("s3", endpoint_url=endpoint, **{k.lower(): v for k, v in aws.items()
                                                                   if k != "AWS_DEFAULT_REGION"},
                                 region_name="us-east-1").create_bucket(Bucket="bench-evidence")
                    break
                except Exception:  # noqa: BLE001 - moto still starting
                    time.sleep(0.2)
            s3_env = {**env, **aws, "ENFORCE_STORAGE_URL": f"s3://bench-evidence/qf?endpoint_url={endpoint}&region=us-east-1"}
            port = free_port()
            server = Server(s3_env, port)
            try:
                remote = Data(size, chunk, seed=3)
                rate = Client(port, token).upload(remote, remote.sha256())
                print(f"upload_mib_per_s_s3: {rate:.0f} MiB/s", flush=True)
                print(f"upload_peak_rss_mib_s3: {server.peak_rss_mib():.0f} MiB", flush=True)
            finally:
                server.stop()
        finally:
            moto.terminate()
            moto.wait(timeout=30)


if __name__ == "__main__":
    main()

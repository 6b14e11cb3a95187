"""Reference offline client: a SQLite outbox that speaks ``sync/PROTOCOL.md``.

* Every local action is an operation in the outbox, with its op id (UUID) and device seq
  assigned **at enqueue time** in the same SQLite transaction, so a crash before, during or
  after a push never renumbers anything: the next run resends the same operations, and the
  server answers the ones it already has with their first result.
* Requests are retried with exponential backoff and full jitter; a lost response is just a
  retry. A ``sync.cursor_expired`` (410) triggers a full resync from the offline package that
  keeps the outbox.
* The client holds the server's view (entities by type and id) and a cursor.

It does not import the server: tests, ``bench/sync_bench.py`` and ``enforce simulate`` use it
over real HTTP (``HttpTransport``) or against a Flask test client (``FlaskTransport``).
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import random
import re
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import rfc8785

from sync import codec

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY, op_id TEXT NOT NULL UNIQUE, body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')), result TEXT);
CREATE TABLE IF NOT EXISTS entity (
    kind TEXT NOT NULL, id TEXT NOT NULL, inspection_id TEXT, body TEXT NOT NULL,
    wrapped INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (kind, id));
"""
# entity.body is the entity's JSON; wrapped = 1: the whole change as the server sent it (its
# ``data`` is the entity), stored as received so that a pull never encodes JSON again.

_decoder = json.JSONDecoder()
_WS = re.compile(r"[ \t\n\r]*")


def walk_page(text: str) -> tuple[list[tuple[dict[str, Any], str]], dict[str, Any]]:
    """A pull page, ``{"changes": [...], "cursor": …, "more": …}``, parsed with each change's own
    JSON text kept beside it (keys in any order, any whitespace). Returns (changes, other members)."""
    decode, ws = _decoder.raw_decode, _WS.match
    changes: list[tuple[dict[str, Any], str]] = []
    members: dict[str, Any] = {}
    i = ws(text, 0).end()
    if text[i] != "{":
        raise ValueError("a page is a JSON object")
    i = ws(text, i + 1).end()
    while text[i] != "}":
        key, i = decode(text, i)
        i = ws(text, i).end()
        if text[i] != ":":
            raise ValueError(f"':' expected at {i}")
        i = ws(text, i + 1).end()
        if key == "changes":
            if text[i] != "[":
                raise ValueError("changes is an array")
            i = ws(text, i + 1).end()
            while text[i] != "]":
                start = i
                change, i = decode(text, i)
                changes.append((change, text[start:i]))
                i = ws(text, i).end()
                if text[i] == ",":
                    i = ws(text, i + 1).end()
            i += 1
        else:
            members[key], i = decode(text, i)
        i = ws(text, i).end()
        if text[i] == ",":
            i = ws(text, i + 1).end()
    return changes, members


def _unwrap(body: str, wrapped: int) -> dict[str, Any]:
    value = json.loads(body)
    return (value.get("data") or {}) if wrapped else value


class TransportError(Exception):
    """The request may or may not have reached the server (drop, timeout, lost response)."""


class Transport(Protocol):
    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str],
                ) -> tuple[int, dict[str, str], bytes]: ...


@dataclass
class Stats:
    requests: int = 0
    retries: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    resyncs: int = 0


class HttpTransport:
    """requests over real HTTP, with explicit timeouts (a stalled mountain link must fail fast)."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        import requests

        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()
        # No proxy or netrc look-up in the environment on every request (a tenth of a pull's client
        # time in the bench); set ``transport.http.trust_env = True`` to honour HTTP(S)_PROXY.
        self.http.trust_env = False
        self._errors = (requests.ConnectionError, requests.Timeout)

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str],
                ) -> tuple[int, dict[str, str], bytes]:
        try:
            response = self.http.request(method, self.base_url + path, data=body, headers=headers,
                                         timeout=self.timeout, stream=True)
            raw = response.raw.read(decode_content=False)
        except self._errors as exc:
            raise TransportError(str(exc)) from exc
        return response.status_code, dict(response.headers), raw


class FlaskTransport:
    """A Flask test client as the network (for tests)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str],
                ) -> tuple[int, dict[str, str], bytes]:
        response = self.client.open(path, method=method, data=body, headers=headers)
        return response.status_code, dict(response.headers), response.get_data()


class LossyTransport:
    """A mountain link: requests dropped before they arrive, responses lost after the server
    committed, and requests delivered twice."""

    def __init__(self, inner: Transport, rng: random.Random, *, drop: float = 0.1, lose: float = 0.1,
                 duplicate: float = 0.05) -> None:
        self.inner, self.rng = inner, rng
        self.drop, self.lose, self.duplicate = drop, lose, duplicate
        self.dropped = self.lost = self.duplicated = 0

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str],
                ) -> tuple[int, dict[str, str], bytes]:
        if self.rng.random() < self.drop:
            self.dropped += 1
            raise TransportError("dropped before arrival")
        if self.rng.random() < self.duplicate:
            self.duplicated += 1
            self.inner.request(method, path, body, headers)
        answer = self.inner.request(method, path, body, headers)
        if self.rng.random() < self.lose:
            self.lost += 1
            raise TransportError("response lost")
        return answer


class SyncFailed(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {body}")
        self.status, self.body = status, body


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


@dataclass
class SyncClient:
    path: str
    transport: Transport
    token: str
    device_id: str
    private_key: bytes | None = None  # raw Ed25519 seed, to sign media manifests
    batch_size: int = 500
    encoding: str | None = "zstd"
    max_attempts: int = 8
    backoff_base: float = 0.2
    backoff_cap: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], str] = now_iso
    stats: Stats = field(default_factory=Stats)

    def __post_init__(self) -> None:
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.executescript(SCHEMA)
        if "wrapped" not in {row[1] for row in self.db.execute("PRAGMA table_info(entity)")}:  # a store of 1.4
            self.db.execute("ALTER TABLE entity ADD COLUMN wrapped INTEGER NOT NULL DEFAULT 0")
        self.db.execute("PRAGMA journal_mode=WAL")

    def close(self) -> None:
        self.db.close()

    # ---- local state ---------------------------------------------------------------------------

    def _meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = ?",
                        (key, value, value))

    def entities(self, kind: str) -> dict[str, dict[str, Any]]:
        return {i: _unwrap(b, w) for i, b, w in self.db.execute(
            "SELECT id, body, wrapped FROM entity WHERE kind = ?", (kind,))}

    def entity(self, kind: str, entity_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT body, wrapped FROM entity WHERE kind = ? AND id = ?", (kind, entity_id)).fetchone()
        return _unwrap(*row) if row else None

    def outbox_depth(self) -> int:
        return self.db.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()[0]

    def results(self) -> dict[str, dict[str, Any]]:
        return {op_id: json.loads(r) for op_id, r in self.db.execute(
            "SELECT op_id, result FROM outbox WHERE state = 'done'")}

    # ---- enqueueing (offline) -------------------------------------------------------------------

    def enqueue(self, entity: str, action: str, data: dict[str, Any], device_time: str | None = None,
                ) -> dict[str, Any]:
        """Assign op id and device seq now, durably, in one local transaction."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            seq = int(self._meta("device_seq", "0") or 0) + 1
            op = {"op_id": str(uuid.uuid4()), "seq": seq, "entity": entity, "action": action, "data": data,
                  "device_time": device_time or self.clock()}
            self._set_meta("device_seq", str(seq))
            self.db.execute("INSERT INTO outbox (seq, op_id, body) VALUES (?, ?, ?)",
                            (seq, op["op_id"], json.dumps(op, ensure_ascii=False)))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return op

    def note(self, inspection_id: str, text: str) -> dict[str, Any]:
        return self.enqueue("note", "append", {"id": str(uuid.uuid4()), "inspection_id": inspection_id, "text": text})

    def check_in(self, inspection_id: str, lat: float, lon: float, accuracy_m: float | None = None) -> dict[str, Any]:
        return self.enqueue("check_in", "append", {"id": str(uuid.uuid4()), "inspection_id": inspection_id,
                                                   "lat": lat, "lon": lon, "accuracy_m": accuracy_m})

    def set_status(self, inspection_id: str, status: str) -> dict[str, Any]:
        return self.enqueue("inspection", "set_status", {"inspection_id": inspection_id, "status": status})

    def record_id(self, inspection_id: str, template: str) -> str:
        namespace = uuid.UUID("6f1c2a4e-5b0d-4c55-9a51-7e2f3c1d9b10")
        return str(uuid.uuid5(namespace, f"{inspection_id}/{template}"))

    def edit_record(self, inspection_id: str, fields: dict[str, Any], template: str = "on_site_record",
                    ) -> dict[str, Any]:
        """Changed fields only, against the version this device last pulled."""
        known = self.entity("inspection_record", self.record_id(inspection_id, template))
        return self.enqueue("inspection_record", "edit", {
            "inspection_id": inspection_id, "template": template,
            "base_version": known["version"] if known else 0, "fields": fields})

    def use_document_number(self, inspection_id: str, text: str) -> dict[str, Any]:
        return self.enqueue("document_number", "use", {"inspection_id": inspection_id, "text": text})

    def manifest(self, inspection_id: str, *, kind: str, sha256: str, size: int, media_type: str,
                 captured_at: str | None = None, lat: float | None = None, lon: float | None = None,
                 **extra: Any) -> dict[str, Any]:
        """Hash before bytes: the signed capture manifest goes first; the bytes follow by upload later.

        The manifest is the one signed form of ``sync/PROTOCOL.md`` (also what
        ``server.modules.evidence.operations.announce`` takes): the device signs the canonical JSON
        of every field but ``signature``. ``extra``: optional fields such as ``second_inspector_id``,
        ``accuracy_m``, ``step``, ``witness``, ``app_version``, ``acquisition_method``.
        """
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if self.private_key is None:
            raise ValueError("a manifest needs the device key")
        data: dict[str, Any] = {"id": str(uuid.uuid4()), "inspection_id": inspection_id, "kind": kind,
                                "sha256": sha256, "size": size, "media_type": media_type,
                                "captured_at": captured_at or self.clock(), "lat": lat, "lon": lon, **extra}
        data = {k: v for k, v in data.items() if v is not None}
        # the signed bytes are RFC 8785 (JCS) of every field but the signature (sync/PROTOCOL.md §4.1)
        signature = Ed25519PrivateKey.from_private_bytes(self.private_key).sign(rfc8785.dumps(data))
        data["signature"] = base64.b64encode(signature).decode()
        return self.enqueue("media_manifest", "append", data)

    # ---- wire ----------------------------------------------------------------------------------

    def _call(self, method: str, path: str, payload: Any = None, *, text: bool = False) -> Any:
        """The decoded JSON answer (``text``: the answer's text, not decoded)."""
        body = None
        headers = {"Authorization": f"Bearer {self.token}", "Accept-Encoding": "zstd, gzip"}
        if payload is not None:
            body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
            if self.encoding and len(body) >= codec.MIN_COMPRESS:
                body = codec.compress(body, self.encoding)
                headers["Content-Encoding"] = self.encoding
        for attempt in range(self.max_attempts):
            self.stats.requests += 1
            try:
                status, answer_headers, raw = self.transport.request(method, path, body, headers)
            except TransportError:
                status, answer_headers, raw = 0, {}, b""
            if status and status < 500 and status != 429:
                self.stats.bytes_sent += len(body or b"") + len(path)
                self.stats.bytes_received += len(raw)
                encoding = {k.lower(): v for k, v in answer_headers.items()}.get("content-encoding", "")
                plain = codec.decompress(raw, encoding, 1 << 30)
                if status >= 400:
                    raise SyncFailed(status, json.loads(plain) if plain else None)
                if text:
                    return plain.decode("utf-8")
                return json.loads(plain) if plain else None
            self.stats.retries += 1
            # Exponential backoff with full jitter: the township's link is shared by the team.
            self.sleep(self.rng.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** attempt)))
        raise TransportError(f"{method} {path}: gave up after {self.max_attempts} attempts")

    # ---- protocol ------------------------------------------------------------------------------

    def hello(self, pending_media_bytes: int = 0) -> dict[str, Any]:
        """Clock exchange (NTP-style); the measured offset goes with the next hello."""
        previous = self._meta("clock")
        payload: dict[str, Any] = {"client_time": self.clock(),
                                   "report": {"outbox_depth": self.outbox_depth(),
                                              "pending_media_bytes": pending_media_bytes}}
        if previous:
            payload["previous"] = json.loads(previous)
        answer = self._call("POST", "/mobile/v1/sync/hello", payload)

        def parse(text: str) -> dt.datetime:
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))

        t0, t3 = parse(payload["client_time"]), parse(self.clock())  # both on the device clock
        t1, t2 = parse(answer["server_receive"]), parse(answer["server_send"])
        theta = ((t1 - t0) + (t2 - t3)) / 2  # server − device
        rtt = (t3 - t0) - (t2 - t1)
        self._set_meta("clock", json.dumps({"offset_ms": -int(theta.total_seconds() * 1000),
                                            "rtt_ms": max(0, int(rtt.total_seconds() * 1000))}))
        return answer

    def push(self) -> list[dict[str, Any]]:
        """Send the outbox oldest first in batches; every answered item leaves the outbox."""
        answered: list[dict[str, Any]] = []
        while True:
            rows = self.db.execute("SELECT body FROM outbox WHERE state = 'pending' ORDER BY seq LIMIT ?",
                                   (self.batch_size,)).fetchall()
            if not rows:
                return answered
            ops = [json.loads(r[0]) for r in rows]
            answer = self._call("POST", "/mobile/v1/sync/push",
                                {"device_id": self.device_id, "ops": ops,
                                 "report": {"outbox_depth": self.outbox_depth()}})
            self.db.execute("BEGIN")
            by_id = {r.get("op_id"): r for r in answer["results"]}  # a relay may have reordered the batch
            for op in ops:
                result = by_id.get(op["op_id"])
                if result is not None:
                    self.db.execute("UPDATE outbox SET state = 'done', result = ? WHERE op_id = ?",
                                    (json.dumps(result, ensure_ascii=False), op["op_id"]))
            self.db.execute("COMMIT")
            answered.extend(answer["results"])

    def pull(self, limit: int = 1000) -> int:
        """Changes after the cursor, page by page; the cursor moves after each applied page."""
        count = 0
        while True:
            cursor = self._meta("cursor")
            path = f"/mobile/v1/sync/changes?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
            try:
                changes, page = walk_page(self._call("GET", path, text=True))
            except SyncFailed as exc:
                if exc.status == 410:  # sync.cursor_expired: start over from the package
                    self.full_resync()
                    continue
                raise
            # A page is fetched again if lost, so its commit need not wait for the disk (WAL keeps
            # the file consistent); the outbox is written with full sync.
            self.db.execute("PRAGMA synchronous=NORMAL")
            try:
                self.db.execute("BEGIN")
                rows: list[tuple[str, str, str, str]] = []
                for change, raw_change in changes:
                    if change["op"] in ("append", "upsert") and change["entity"] != "inspection":
                        rows.append((change["entity"], str(change["id"]), change["inspection_id"], raw_change))
                        continue
                    self._store_many(rows)
                    self._apply(change)
                self._store_many(rows)
                self._set_meta("cursor", page["cursor"])
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
            finally:
                self.db.execute("PRAGMA synchronous=FULL")
            count += len(changes)
            for inspection_id in self._meta_list("fetch"):
                self.full_resync(inspection_id)
            if not page["more"]:
                return count

    def _meta_list(self, key: str) -> list[str]:
        value = json.loads(self._meta(key, "[]") or "[]")
        self._set_meta(key, "[]")
        return value

    def _apply(self, change: dict[str, Any]) -> None:
        kind, entity_id, inspection_id = change["entity"], change["id"], change["inspection_id"]
        if change["op"] == "tombstone":
            if kind == "inspection":  # unassigned or cancelled: forget it and everything under it
                self.db.execute("DELETE FROM entity WHERE inspection_id = ? OR (kind = 'inspection' AND id = ?)",
                                (inspection_id, inspection_id))
            else:
                self.db.execute("DELETE FROM entity WHERE kind = ? AND id = ?", (kind, entity_id))
            return
        if kind == "inspection" and self.entity("inspection", entity_id) is None and self._meta("cursor"):
            # newly assigned: its earlier history is in the package, not in the log after our cursor
            pending = json.loads(self._meta("fetch", "[]") or "[]")
            self._set_meta("fetch", json.dumps(sorted(set(pending) | {entity_id})))
        self._store(kind, entity_id, inspection_id, change.get("data") or {})

    def _store_many(self, rows: list[tuple[str, str, str, str]]) -> None:
        """Consecutive plain upserts of a page in one executemany (the pull's hot path), each stored as
        the change's text as received (``wrapped``)."""
        if rows:
            self.db.executemany(
                "INSERT INTO entity (kind, id, inspection_id, body, wrapped) VALUES (?, ?, ?, ?, 1) "
                "ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body, inspection_id = excluded.inspection_id, "
                "wrapped = 1", rows)
            rows.clear()

    def _store(self, kind: str, entity_id: str, inspection_id: str | None, data: dict[str, Any]) -> None:
        self.db.execute("INSERT INTO entity (kind, id, inspection_id, body, wrapped) VALUES (?, ?, ?, ?, 0) "
                        "ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body, inspection_id = excluded.inspection_id, "
                        "wrapped = 0", (kind, str(entity_id), inspection_id, json.dumps(data, ensure_ascii=False)))

    def full_resync(self, inspection_id: str | None = None) -> dict[str, Any]:
        """Replace the server view from the offline package; the outbox is never touched."""
        path = "/mobile/v1/sync/package" + (f"?inspection_id={inspection_id}" if inspection_id else "")
        pkg = self._call("GET", path)
        self.stats.resyncs += 1
        self.db.execute("BEGIN")
        if inspection_id:
            self.db.execute("DELETE FROM entity WHERE inspection_id = ? OR (kind = 'inspection' AND id = ?)",
                            (inspection_id, inspection_id))
        else:
            self.db.execute("DELETE FROM entity")
            self._set_meta("cursor", pkg["cursor"])
            self._set_meta("package", json.dumps({k: pkg[k] for k in ("templates", "checklists", "team",
                                                                       "targets", "document_numbers")},
                                                 ensure_ascii=False))
        for inspection in pkg["inspections"]:
            self._store("inspection", inspection["id"], inspection["id"], inspection)
        for record in pkg["records"]:
            self._store("inspection_record", record["id"], record["inspection_id"], record)
        for kind, key in (("note", "notes"), ("check_in", "check_ins"), ("media_manifest", "media_manifests")):
            for row in pkg[key]:
                self._store(kind, row["id"], row["inspection_id"], row)
        self.db.execute("COMMIT")
        return pkg

    def sync(self) -> dict[str, Any]:
        """One sync session: handshake, push the outbox, pull the changes."""
        if self._meta("cursor") is None:
            self.full_resync()
        self.hello()
        results = self.push()
        pulled = self.pull()
        return {"pushed": len(results), "pulled": pulled}

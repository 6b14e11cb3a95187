"""``enforce backup DEST`` and ``enforce restore SRC``: a consistent copy of an installation.

Layout of DEST (one folder per installation; run the backup into the same DEST every night)::

    DEST/blobs/ab/cd/<sha256>          content-addressed blobs, shared by every snapshot: only the
                                       blobs DEST lacks are copied, each checked against its name
    DEST/snapshots/<UTC time>/
        database.sqlite | database.pgdump    SQLite's online backup API, or pg_dump -Fc
        manifest.json                        every blob with its SHA-256 and size, the database file's
                                             SHA-256, the schema revision, the audit head and the
                                             last signed checkpoint
        checkpoint.txt                       that checkpoint as served to the public
    DEST/LATEST                         the newest snapshot's name

The database copy, the audit head and the checkpoint are read in one snapshot of the database
(PostgreSQL: an exported REPEATABLE READ snapshot that pg_dump shares). Blobs are write-once, so
copying them after the database copy keeps every blob it references.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from server.core import errors
from server.core.storage import BlobStore

FORMAT = 1

ToolMissing = errors.error_code("backup.tool_missing", 500, "找不到 PostgreSQL 工具（请安装 postgresql-client）",
                                "A PostgreSQL tool is not on PATH (install postgresql-client)")
NotABackup = errors.error_code("backup.not_a_backup", 422, "该目录不是备份", "The folder is not a backup")
TargetNotEmpty = errors.error_code("backup.target_not_empty", 409, "只能恢复到空数据库",
                                   "A backup is restored into an empty database only")
BackupDamaged = errors.error_code("backup.damaged", 422, "备份文件已损坏", "The backup is damaged")


@dataclass
class BackupResult:
    snapshot: Path
    audit_size: int
    checkpoint_size: int | None
    blobs_total: int
    blobs_copied: int


@dataclass
class RestoreResult:
    snapshot: Path
    audit_size: int
    blobs_copied: int
    bad_blobs: list[str] = field(default_factory=list)
    published_sizes: list[int] = field(default_factory=list)
    rollback: Any = None


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _libpq(engine: Engine) -> tuple[str, dict[str, str]]:
    """The database URL for pg_dump/pg_restore, with the password passed in the environment."""
    url = make_url(str(engine.url.render_as_string(hide_password=False))).set(drivername="postgresql")
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return url.set(password=None).render_as_string(hide_password=False), env


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(tool=name)
    return path


# ---- backup ------------------------------------------------------------------------------------

_STATE_SQL = {
    "head": "SELECT size, root_hash FROM audit_head WHERE id = 1",
    "checkpoint": "SELECT id, size, root_hash, note FROM audit_checkpoint ORDER BY id DESC LIMIT 1",
    "revision": "SELECT version_num FROM alembic_version",
}


def _state(execute: Any) -> dict[str, Any]:
    head = execute(_STATE_SQL["head"])
    checkpoint = execute(_STATE_SQL["checkpoint"])
    revision = execute(_STATE_SQL["revision"])
    size, root = head if head else (0, None)
    state: dict[str, Any] = {"revision": revision[0] if revision else None,
                             "audit": {"size": int(size), "root": base64.b64encode(bytes(root)).decode() if root else None},
                             "checkpoint": None, "note": None}
    if checkpoint:
        cp_id, cp_size, cp_root, note = checkpoint
        state["checkpoint"] = {"id": cp_id, "size": int(cp_size), "root": base64.b64encode(bytes(cp_root)).decode()}
        state["note"] = note
    return state


def _copy_sqlite(engine: Engine, target: Path) -> dict[str, Any]:
    source = sqlite3.connect(engine.url.database)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)  # a consistent online copy, page by page
        cursor = copy.cursor()
        state = _state(lambda sql: cursor.execute(sql).fetchone())
    finally:
        copy.close()
        source.close()
    return state


def _dump_postgres(engine: Engine, target: Path) -> dict[str, Any]:
    pg_dump = _tool("pg_dump")
    url, env = _libpq(engine)
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        with conn.begin():
            # The exported snapshot lives as long as this transaction, idle while pg_dump reads.
            conn.execute(sa.text("SET LOCAL idle_in_transaction_session_timeout = 0"))
            conn.execute(sa.text("SET LOCAL statement_timeout = 0"))
            snapshot = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
            state = _state(lambda sql: conn.execute(sa.text(sql)).first())
            done = subprocess.run([pg_dump, "--format=custom", f"--snapshot={snapshot}", "--no-owner",
                                   "--file", str(target), url], env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"pg_dump failed: {done.stderr.strip()}")
    return state


def _blob_path(root: Path, digest: str) -> Path:
    return root / digest[:2] / digest[2:4] / digest


def _copy_blob(store: BlobStore, digest: str, target: Path) -> int:
    """Copy one blob, checking its bytes against its name; returns its size."""
    target.parent.mkdir(parents=True, exist_ok=True)
    hasher, size = hashlib.sha256(), 0
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".partial-")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in store.iter_chunks(digest):
                hasher.update(chunk)
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        if hasher.hexdigest() != digest:
            raise BackupDamaged(f"blob {digest} in the store does not match its SHA-256")
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return size


def backup(engine: Engine, store: BlobStore, dest: Path, *, now: dt.datetime | None = None) -> BackupResult:
    now = now or dt.datetime.now(dt.UTC)
    name = now.strftime("%Y%m%dT%H%M%S%fZ")
    snapshots = dest / "snapshots"
    partial = snapshots / f".partial-{name}"
    partial.mkdir(parents=True)
    try:
        if engine.dialect.name == "sqlite":
            database = partial / "database.sqlite"
            state = _copy_sqlite(engine, database)
        else:
            database = partial / "database.pgdump"
            state = _dump_postgres(engine, database)
        blobs, copied = {}, 0
        for digest in store.digests():
            target = _blob_path(dest / "blobs", digest)
            if target.exists():
                blobs[digest] = target.stat().st_size
                continue
            blobs[digest] = _copy_blob(store, digest, target)
            copied += 1
        note = state.pop("note")
        manifest = {"format": FORMAT, "created_at": now.isoformat(), "dialect": engine.dialect.name,
                    "database": {"file": database.name, "sha256": _sha256_file(database),
                                 "bytes": database.stat().st_size},
                    **state, "blobs": blobs}
        (partial / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
        if note:
            (partial / "checkpoint.txt").write_text(note, encoding="utf-8")
        final = snapshots / name
        os.replace(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    (dest / "LATEST").write_text(name + "\n", encoding="utf-8")
    return BackupResult(final, state["audit"]["size"], (state["checkpoint"] or {}).get("size"), len(blobs), copied)


# ---- restore -----------------------------------------------------------------------------------

def find_snapshot(src: Path) -> Path:
    """SRC is a snapshot folder, or a backup DEST (its LATEST snapshot)."""
    if (src / "manifest.json").is_file():
        return src
    latest = src / "LATEST"
    if latest.is_file():
        snapshot = src / "snapshots" / latest.read_text(encoding="utf-8").strip()
        if (snapshot / "manifest.json").is_file():
            return snapshot
    raise NotABackup(str(src))


def published_notes(snapshot: Path, supplied: list[Path]) -> list[str]:
    """Checkpoints the public may have seen: every snapshot's of the same DEST (newer ones too) and
    any supplied file, largest first."""
    notes = [path.read_text(encoding="utf-8") for path in supplied]
    notes += [path.read_text(encoding="utf-8") for path in sorted(snapshot.parent.glob("*/checkpoint.txt"))]

    def size(note: str) -> int:
        lines = note.split("\n")
        return int(lines[1]) if len(lines) > 1 and lines[1].isdigit() else -1

    return sorted(set(notes), key=size, reverse=True)


def _target_is_empty(engine: Engine) -> bool:
    return not sa.inspect(engine).get_table_names()


def restore_database(engine: Engine, snapshot: Path, manifest: dict[str, Any]) -> None:
    database = snapshot / manifest["database"]["file"]
    if _sha256_file(database) != manifest["database"]["sha256"]:
        raise BackupDamaged(f"{database} does not match the SHA-256 in its manifest")
    if manifest["dialect"] != engine.dialect.name:
        raise NotABackup(f"a {manifest['dialect']} backup cannot be restored into {engine.dialect.name}")
    if not _target_is_empty(engine):
        raise TargetNotEmpty(str(engine.url.render_as_string(hide_password=True)))
    engine.dispose()
    if engine.dialect.name == "sqlite":
        target = Path(engine.url.database)
        target.parent.mkdir(parents=True, exist_ok=True)
        source, copy = sqlite3.connect(database), sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            copy.close()
            source.close()
        return
    url, env = _libpq(engine)
    done = subprocess.run([_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
                           "--single-transaction", "--dbname", url, str(database)],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pg_restore failed: {done.stderr.strip()}")


def restore_blobs(store: BlobStore, snapshot: Path, manifest: dict[str, Any]) -> tuple[int, list[str]]:
    """Put every blob the store lacks, then check every blob's hash in the store."""
    root = snapshot.parent.parent / "blobs"
    copied, bad = 0, []
    for digest in manifest["blobs"]:
        if store.exists(digest):
            continue
        source = _blob_path(root, digest)
        if not source.is_file() or _sha256_file(source) != digest:
            bad.append(digest)
            continue
        store.put_file(digest, source)
        copied += 1
    for digest in manifest["blobs"]:
        if digest in bad:
            continue
        hasher = hashlib.sha256()
        try:
            for chunk in store.iter_chunks(digest):
                hasher.update(chunk)
        except OSError:
            bad.append(digest)
            continue
        if hasher.hexdigest() != digest:
            bad.append(digest)
    return copied, bad

"""The evidence package: one streamed ZIP (or several volumes) that the police, the procuratorate
or a court can check offline with the ``verify.py`` it carries.

Layout (paths inside the archive; every file is listed with its SHA-256 and size in a manifest):

    verify.py, verifier.py          standalone verifier (standard library only, own Ed25519)
    README.txt                      summary in Chinese (and English)
    documents/<file>                transfer letter, investigation report, materials list, other materials
    evidence/NNNN-<sha12>.<ext>     original evidence files, streamed from the blob store (stored, not deflated)
    evidence/index.json             photo / video index: what each proves, who took it, when, where
    custody/events.jsonl            chain of custody of each item (a line each, in package order),
                                    ending with its "exported" event naming this package (recorded in
                                    the seal's transaction)
    devices/captures.jsonl          the device-signed capture manifest bytes and signature (a line each)
    keys/log.vkey, keys/devices.json, keys/receivers.json
    acknowledgements/N.json         receipts (signature / typed / scan)
    audit/entries.jsonl             audit entries (bodies byte-exact, base64) with inclusion proofs, ascending
    audit/checkpoints/<size>.txt    signed checkpoints the proofs are against
    audit/consistency.json          consistency proofs from each checkpoint to the latest one (C1)
    flags.json                      plausibility flags, missing items, missing documents
    manifest.json                   (manifest-volNNN.json per volume when split)
    index.json                      volumes and the SHA-256 of each volume's manifest (last volume)
    seal.json                       tlog-proof of the audit entry sealing index.json under a newer
                                    checkpoint C2, and the consistency proof C1 → C2 (last volume)

The seal entry is written after the content, so the package's integrity chains to the signed log.

Memory stays flat in the number of items: items are read in keyset pages of plain rows, the
members that list every item (index, flags, manifests) are spooled to unnamed temp files entry by
entry and streamed into the archive, and audit entries are read through one ordered query. What
still grows is what the ZIP central directory needs (one ``ZipInfo`` per member: its name, sizes,
CRC and offset) and the item ids (the package's order, for the custody member and the export
events): about 0.75 KiB of peak RSS per item, measured between 2,000 and 6,000 photos.
Per item the archive holds one member, its original; custody and capture signatures are one
JSON Lines member each.
"""
from __future__ import annotations

import base64
import bisect
import collections
import datetime as dt
import hashlib
import json
import os
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from server.core import errors
from server.core.canonical import canonical_json, signed_forms
from server.core.db import utcnow
from server.core.storage import get_store
from server.modules.audit import checkpoints as cp
from server.modules.audit import operations as audit
from server.modules.audit import verifier
from server.modules.audit.models import AuditCheckpoint, AuditEntry, AuditSubject
from server.modules.cases import operations as cases
from server.modules.cases.models import CaseEvidence
from server.modules.devices.models import Device
from server.modules.evidence.models import Blob, CustodyAction, CustodyEvent, EvidenceFlag, EvidenceItem, EvidenceStatus
from server.modules.transfers import operations as ops
from server.modules.transfers.models import EvidencePackage, PackageStatus, ReceiverKey, Transfer
from server.modules.users.models import User

FORMAT = "qinling-field/evidence-package@2"
CUSTODY = "custody/events.jsonl"  # one line per item: {no, item, events}
CAPTURES = "devices/captures.jsonl"  # one line per device-signed item: {no, item, device_id, signed_bytes, signature}
PackageNotFound = errors.error_code("transfer.package_not_found", 404, "证据包不存在", "No such evidence package")
PackageNotReady = errors.error_code("transfer.package_not_ready", 409, "证据包尚未生成完毕", "The package is not built yet")

_CHUNK = 1 << 20
_MEDIA_EXT = {"image/jpeg": ".jpg", "image/png": ".png", "image/heic": ".heic", "video/mp4": ".mp4",
              "video/quicktime": ".mov", "audio/mpeg": ".mp3", "audio/mp4": ".m4a", "application/pdf": ".pdf"}
_HERE = Path(__file__).parent
VERIFY_SOURCES = {"verify.py": _HERE / "verify.py", "verifier.py": _HERE.parent / "audit" / "verifier.py"}


def package_dir() -> Path:
    configured = current_app.config.get("TRANSFER_PACKAGE_DIR")
    return Path(configured) if configured else Path(current_app.instance_path) / "packages"


def iter_file(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


def request(session: Session, *, case_id: str, transfer_id: str | None, by_user_id: int | None,
            max_volume_bytes: int | None = None) -> EvidencePackage:
    package = EvidencePackage(case_id=case_id, transfer_id=transfer_id, requested_by=by_user_id,
                              max_volume_bytes=max_volume_bytes, volumes=[])
    session.add(package)
    session.flush()
    audit.record(session, "web:transfer_package:requested",
                 subjects={"transfer_package": package.id, "case": case_id, **({"transfer": transfer_id} if transfer_id else {})},
                 payload={"max_volume_bytes": max_volume_bytes})
    return package


# ---- writing volumes --------------------------------------------------------------------------

class _HashingFile:
    """Write-only, not seekable: zipfile then writes data descriptors in one pass, and the volume's
    SHA-256 is known when it is closed without reading it back."""

    def __init__(self, path: Path) -> None:
        self.handle = open(path, "wb")
        self.sha = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.handle.write(data)
        self.count += len(data)
        return len(data)

    def tell(self) -> int:
        return self.count

    def seek(self, *_: Any) -> int:
        raise OSError("not seekable")

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        self.handle.flush()

    def close(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()


def _line(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True).encode()


class Spool:
    """Bytes written to an unnamed temp file now and streamed into the archive once, later: what
    grows with the package (manifest rows, index entries, flags, capture signatures) stays on disk."""

    def __init__(self, directory: Path) -> None:
        self.handle = tempfile.TemporaryFile(dir=directory)
        self.count = 0
        self.nbytes = 0

    def write(self, data: bytes) -> None:
        self.handle.write(data)
        self.count += 1
        self.nbytes += len(data)

    def write_line(self, value: Any) -> None:
        self.write(_line(value) + b"\n")

    def body(self) -> Iterator[bytes]:
        self.handle.flush()
        self.handle.seek(0)
        while chunk := self.handle.read(_CHUNK):
            yield chunk

    def close(self) -> None:
        self.handle.close()


class JsonList(Spool):
    """The elements of a JSON array, spooled (see ``json_document``)."""

    def append(self, value: Any) -> None:
        self.write((b",\n" if self.count else b"\n") + _line(value))


def json_document(fields: dict[str, Any], arrays: list[tuple[str, JsonList]]) -> Iterator[bytes]:
    """``{**fields, key: [elements], …}`` as chunks: the spooled arrays last, one element a line."""
    yield _line(fields)[:-1]
    sep = b", " if fields else b""
    for key, rows in arrays:
        yield sep + _line(key) + b": ["
        yield from rows.body()
        yield b"\n]"
        sep = b", "
    yield b"}\n"


@dataclass
class _Volume:
    number: int
    path: Path
    raw: _HashingFile
    zf: zipfile.ZipFile
    rows: JsonList  # the volume manifest's rows: {path, sha256, size}
    bytes: int = 0
    items: list[str] = field(default_factory=list)


class VolumeWriter:
    """ZIP64 volumes of at most ``max_bytes`` (a file larger than that gets a volume of its own);
    every entry's SHA-256 and size is recorded for the volume's manifest."""

    def __init__(self, directory: Path, stem: str, max_bytes: int | None, when: dt.datetime) -> None:
        self.directory, self.stem, self.max_bytes = directory, stem, max_bytes
        self.date_time = when.timetuple()[:6]
        self.volumes: list[_Volume] = []
        self.closed: list[dict[str, Any]] = []
        self._open(1)

    def _open(self, number: int) -> None:
        path = self.directory / f"{self.stem}.vol{number:03d}.zip"
        raw = _HashingFile(path)
        self.volumes.append(_Volume(number, path, raw, zipfile.ZipFile(raw, "w", allowZip64=True),
                                    JsonList(self.directory)))

    @property
    def current(self) -> _Volume:
        return self.volumes[-1]

    def _room(self, size: int) -> None:
        vol = self.current
        if self.max_bytes and vol.rows.count and vol.raw.count + size + 512 > self.max_bytes:
            self._finish_volume(vol, manifest_name=f"manifest-vol{vol.number:03d}.json")
            self._zip_closed(vol)
            self._open(vol.number + 1)

    def _info(self, name: str, stored: bool) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, self.date_time)
        info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        return info

    def _listed(self, name: str, digest: str, size: int) -> dict[str, Any]:
        row = {"path": name, "sha256": digest, "size": size}
        self.current.rows.append(row)
        self.current.bytes += size
        return row

    def add_bytes(self, name: str, data: bytes, *, stored: bool = False) -> dict[str, Any]:
        self._room(len(data))
        self.current.zf.writestr(self._info(name, stored), data)
        return self._listed(name, hashlib.sha256(data).hexdigest(), len(data))

    def _write(self, name: str, chunks: Iterable[bytes], stored: bool,
               progress: Callable[[int], None] | None = None) -> tuple[str, int]:
        sha, written = hashlib.sha256(), 0
        with self.current.zf.open(self._info(name, stored), "w", force_zip64=True) as out:
            for chunk in chunks:
                sha.update(chunk)
                out.write(chunk)
                written += len(chunk)
                if progress:
                    progress(len(chunk))
        return sha.hexdigest(), written

    def add_stream(self, name: str, chunks: Iterable[bytes], size: int, *, stored: bool = True,
                   progress: Callable[[int], None] | None = None, item: str | None = None) -> dict[str, Any]:
        """Stream ``chunks`` into one entry without holding the file in memory (``size``: expected
        bytes, for the volume split)."""
        self._room(size)
        row = self._listed(name, *self._write(name, chunks, stored, progress))
        if item:
            self.current.items.append(item)
        return row

    def add_document(self, name: str, fields: dict[str, Any], arrays: list[tuple[str, JsonList]]) -> dict[str, Any]:
        """A JSON document whose arrays were spooled (see ``json_document``)."""
        return self.add_stream(name, json_document(fields, arrays), sum(rows.nbytes for _, rows in arrays),
                               stored=False)

    def _finish_volume(self, vol: _Volume, *, manifest_name: str) -> None:
        digest, _ = self._write(manifest_name, json_document({"format": FORMAT, "volume": vol.number},
                                                             [("files", vol.rows)]), stored=False)
        self.closed.append({"number": vol.number, "manifest": manifest_name, "manifest_sha256": digest,
                            "files": vol.rows.count, "bytes": vol.bytes, "items": vol.items})
        vol.rows.close()

    def _zip_closed(self, vol: _Volume) -> None:
        vol.zf.close()
        vol.raw.close()

    def finish_manifests(self, package_meta: dict[str, Any]) -> bytes:
        """Write the last volume's manifest and the index; returns the index bytes (to be sealed)."""
        last = self.current
        single = len(self.volumes) == 1
        self._finish_volume(last, manifest_name="manifest.json" if single else f"manifest-vol{last.number:03d}.json")
        index = {**package_meta, "format": FORMAT,
                 "volumes": [{k: v[k] for k in ("number", "manifest", "manifest_sha256", "files", "bytes")}
                             for v in self.closed]}
        body = _json(index)
        last.zf.writestr(self._info("index.json", False), body)
        return body

    def seal_and_close(self, seal: bytes) -> list[dict[str, Any]]:
        last = self.current
        last.zf.writestr(self._info("seal.json", False), seal)
        self._zip_closed(last)
        single = len(self.volumes) == 1
        out = []
        for vol, meta in zip(self.volumes, self.closed, strict=True):
            name = f"{self.stem}.zip" if single else vol.path.name
            if single:
                vol.path.rename(self.directory / name)
            out.append({"number": vol.number, "name": name, "sha256": vol.raw.sha.hexdigest(), "size": vol.raw.count,
                        "items": meta["items"]})
        return out

    def abort(self) -> None:
        for vol in self.volumes:
            try:
                vol.rows.close()
                vol.zf.close()
                vol.raw.close()
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
            vol.path.unlink(missing_ok=True)


# ---- content ----------------------------------------------------------------------------------

def _iso(value: dt.datetime | dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True).encode()


@dataclass
class Built:
    """What the content pass leaves for the seal: the open volumes, the spooled lists and the counts."""

    writer: VolumeWriter
    case: Any
    transfer: Transfer | None
    materials: list[Any]
    checkpoint_size: int
    item_ids: list[str]  # package order: item n is item_ids[n - 1]
    exported: list[str]  # items whose original is in the archive
    index: JsonList  # evidence/index.json items
    flags: JsonList  # plausibility findings
    missing: JsonList  # items without their original
    captures: Spool  # devices/captures.jsonl lines
    kinds: collections.Counter[str] = field(default_factory=collections.Counter)
    entries: int = 0
    index_bytes: bytes = b""
    files: int = 0
    bytes: int = 0

    def close(self) -> None:
        for spool in (self.index, self.flags, self.missing, self.captures):
            spool.close()


_PAGE = 100
_ITEM_COLUMNS = (EvidenceItem.id, EvidenceItem.kind, EvidenceItem.media_type, EvidenceItem.sha256, EvidenceItem.size,
                 EvidenceItem.status, EvidenceItem.step, EvidenceItem.captured_by, EvidenceItem.certificate_number,
                 EvidenceItem.second_inspector_id, EvidenceItem.witness, EvidenceItem.captured_at_device,
                 EvidenceItem.received_at, EvidenceItem.verified_at, EvidenceItem.lat, EvidenceItem.lon,
                 EvidenceItem.accuracy_m, EvidenceItem.device_id, EvidenceItem.acquisition_method,
                 EvidenceItem.signature_valid, EvidenceItem.blob_sha256, EvidenceItem.manifest, EvidenceItem.signature)


def item_pages(session: Session, case_id: str) -> Iterator[list[sa.Row[Any]]]:
    """The case's originals as plain rows, in pages of ``_PAGE`` in package order (received_at, id):
    keyset pages, so progress commits between pages close no cursor and nothing piles up in the
    session's identity map."""
    query = (sa.select(*_ITEM_COLUMNS, Blob.size.label("blob_size"), Blob.media_type.label("blob_media_type"),
                       CaseEvidence.purpose)
             .outerjoin(Blob, Blob.sha256 == EvidenceItem.blob_sha256)
             .outerjoin(CaseEvidence, sa.and_(CaseEvidence.evidence_id == EvidenceItem.id,
                                              CaseEvidence.case_id == case_id))
             .where(ops.evidence_scope(case_id)).order_by(EvidenceItem.received_at, EvidenceItem.id).limit(_PAGE))
    page = session.execute(query).all()
    while page:
        yield page
        if len(page) < _PAGE:
            return
        at, last = page[-1].received_at, page[-1].id
        page = session.execute(query.where(sa.or_(EvidenceItem.received_at > at, sa.and_(
            EvidenceItem.received_at == at, EvidenceItem.id > last)))).all()


def _audit_indices(case_id: str, transfer_id: str | None, size: int) -> sa.CompoundSelect[Any]:
    """Entries about the case, the transfer or any of the case's originals, below ``size``,
    ascending: a UNION of index lookups (the originals joined, so each is one lookup of
    ``ix_audit_subject_lookup``)."""
    def about(kind: str, value: str) -> sa.Select[Any]:
        return sa.select(AuditSubject.entry_idx).where(AuditSubject.subject_type == kind, AuditSubject.subject_id == value,
                                                       AuditSubject.entry_idx < size)

    originals = (sa.select(AuditSubject.entry_idx)
                 .join(EvidenceItem, sa.and_(AuditSubject.subject_type == "evidence",
                                             AuditSubject.subject_id == EvidenceItem.id))
                 .where(ops.evidence_scope(case_id), AuditSubject.entry_idx < size))
    parts = [about("case", case_id), originals] + ([about("transfer", transfer_id)] if transfer_id else [])
    return sa.union(*parts).order_by("entry_idx")


def _write_audit(session: Session, w: VolumeWriter, built: Built, latest: AuditCheckpoint) -> None:
    """Entries with inclusion proofs against the first stored checkpoint that covers each, those
    checkpoints, and consistency proofs from each of them to the latest (C1)."""
    stored = session.execute(sa.select(AuditCheckpoint.size, AuditCheckpoint.id).where(
        AuditCheckpoint.size <= latest.size).order_by(AuditCheckpoint.size, AuditCheckpoint.id)).all()
    sizes = sorted({s for s, _ in stored})
    used: set[int] = set()
    indices = session.execute(_audit_indices(built.case.id, built.transfer.id if built.transfer else None,
                                             latest.size).execution_options(yield_per=_PAGE)).scalars()

    def lines() -> Iterator[bytes]:
        for batch in indices.partitions():
            rows = session.execute(audit.read_entries(audit.EXPORT_READER, AuditEntry.idx, AuditEntry.body)
                                   .where(AuditEntry.idx.in_(batch)).order_by(AuditEntry.idx)).all()
            by_size: dict[int, list[tuple[int, bytes]]] = {}
            for idx, body in rows:
                size = sizes[bisect.bisect_right(sizes, idx)]
                by_size.setdefault(size, []).append((idx, body))
            proofs: dict[int, tuple[int, list[bytes]]] = {}
            for size, group in by_size.items():
                used.add(size)
                ranges = [audit.path_ranges(idx, 0, size) for idx, _ in group]
                hashes = audit.subtree_hashes(session, [r for rs in ranges for r in rs])
                pos = 0
                for (idx, _), rs in zip(group, ranges, strict=True):
                    proofs[idx] = (size, hashes[pos:pos + len(rs)])
                    pos += len(rs)
            built.entries += len(rows)
            for idx, body in rows:
                size, proof = proofs[idx]
                yield canonical_json({"idx": idx, "body": base64.b64encode(body).decode(), "checkpoint": size,
                                      "proof": [base64.b64encode(h).decode() for h in proof]}) + b"\n"

    w.add_stream("audit/entries.jsonl", lines(), 0, stored=False)
    used.add(latest.size)
    for size in sorted(used):
        row = latest if size == latest.size else session.scalar(
            sa.select(AuditCheckpoint).where(AuditCheckpoint.size == size).order_by(AuditCheckpoint.id).limit(1))
        w.add_bytes(f"audit/checkpoints/{size}.txt", cp.served_note(session, row).encode())  # type: ignore[arg-type]
    consistency = [{"from": size, "to": latest.size,
                    "proof": [base64.b64encode(h).decode() for h in audit.consistency_proof_stored(session, size, latest.size)]}
                   for size in sorted(used) if 0 < size < latest.size]
    w.add_bytes("audit/consistency.json", _json({"latest": latest.size, "proofs": consistency}))


def _content_bytes(session: Session, case_id: str) -> int:
    return session.scalar(sa.select(sa.func.coalesce(sa.func.sum(Blob.size), 0))
                          .join(EvidenceItem, EvidenceItem.blob_sha256 == Blob.sha256)
                          .where(ops.evidence_scope(case_id), EvidenceItem.status == EvidenceStatus.VERIFIED)) or 0


def build_content(session: Session, package: EvidencePackage, config: Any, *,
                  progress: Callable[[int, int], None] | None = None) -> Built:
    """Write everything the seal does not change. Reads only (after publishing C1), so progress
    may be committed on the way."""
    case = cases.get(session, package.case_id)
    transfer = session.get(Transfer, package.transfer_id) if package.transfer_id else None
    latest = cp.publish(session, config)  # C1: covers every committed entry about the case
    materials = ops.materials(session, transfer) if transfer else []
    total = _content_bytes(session, case.id) + sum(m.size for m in materials)
    package.total_bytes, package.status = total, PackageStatus.BUILDING
    session.flush()
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress:
            progress(done[0], total)

    directory = package_dir() / package.id
    directory.mkdir(parents=True, exist_ok=True)
    w = VolumeWriter(directory, f"evidence-package-{package.id[:8]}", package.max_volume_bytes, utcnow())
    built = Built(w, case, transfer, materials, latest.size, [], [], JsonList(directory), JsonList(directory),
                  JsonList(directory), Spool(directory))
    try:
        _write_content(session, built, latest, config, tick)
    except BaseException:
        built.close()
        w.abort()
        raise
    return built


def _write_content(session: Session, built: Built, latest: AuditCheckpoint, config: Any,
                   tick: Callable[[int], None]) -> None:
    w, store = built.writer, get_store()
    for name, path in VERIFY_SOURCES.items():
        w.add_bytes(name, path.read_bytes())
    for m in built.materials:
        w.add_stream(f"documents/{m.id:04d}-{m.filename}", store.iter_chunks(m.sha256), m.size, stored=False,
                     progress=tick)
    users: dict[int, Any] = {}
    devices: dict[str, Any] = {}
    for page in item_pages(session, built.case.id):
        _load(session, users, User, {r.captured_by for r in page} | {r.second_inspector_id for r in page},
              User.id, User.display_name)
        _load(session, devices, Device, {r.device_id for r in page if r.signature is not None},
              Device.id, Device.public_key, Device.label, Device.user_id, Device.revoked_at)
        flags: dict[str, list[dict[str, Any]]] = {}
        for item_id, code, detail in session.execute(sa.select(EvidenceFlag.item_id, EvidenceFlag.code, EvidenceFlag.detail)
                                                     .where(EvidenceFlag.item_id.in_([r.id for r in page]))
                                                     .order_by(EvidenceFlag.id)):
            flags.setdefault(item_id, []).append({"code": code, "detail": detail})
        for item in page:
            _write_item(built, item, flags.get(item.id, []), users, tick, devices=devices)
    w.add_stream(CAPTURES, built.captures.body(), built.captures.nbytes, stored=False)
    w.add_bytes("keys/devices.json", _json({d.id: {"public_key": base64.b64encode(d.public_key).decode(),
                                                  "label": d.label, "user_id": d.user_id,
                                                  "revoked_at": _iso(d.revoked_at)} for d in devices.values()}))
    w.add_bytes("keys/log.vkey", (cp.log_verifier_key(config).vkey() + "\n").encode())
    acks = ops.acknowledgements(session, built.transfer) if built.transfer else []
    receivers = {}
    for n, ack in enumerate(acks, 1):
        record: dict[str, Any] = {"method": ack.method.value, "by_user_id": ack.by_user_id, "unit_id": ack.unit_id,
                                  "at": _iso(ack.at), "summary": base64.b64encode(ack.summary).decode(),
                                  "summary_sha256": ack.summary_sha256, "jurisdiction_ok": ack.jurisdiction_ok,
                                  "typed_confirmation": ack.typed_confirmation}
        if ack.signature is not None:
            key = session.get(ReceiverKey, ack.key_id)
            record["public_key"] = base64.b64encode(key.public_key).decode()  # type: ignore[union-attr]
            record["signature"] = base64.b64encode(ack.signature).decode()
            receivers[str(ack.key_id)] = {"user_id": key.user_id, "public_key": record["public_key"]}  # type: ignore[union-attr]
        if ack.scan_sha256:
            record["scan_file"] = f"acknowledgements/{n}-scan.bin"
            w.add_stream(record["scan_file"], store.iter_chunks(ack.scan_sha256), 0, stored=False)
        w.add_bytes(f"acknowledgements/{n}.json", _json(record))
    w.add_bytes("keys/receivers.json", _json(receivers))
    _write_audit(session, w, built, latest)


def _load(session: Session, cache: dict[Any, Any], model: Any, ids: set[Any], *columns: Any) -> None:
    """Rows of a few people or devices, read once per build (there are far fewer than items)."""
    wanted = [i for i in ids if i is not None and i not in cache]
    if wanted:
        cache.update((row[0], row) for row in session.execute(sa.select(*columns).where(columns[0].in_(wanted))))


def _signed_form(item: sa.Row[Any], device: Any) -> bytes:
    """The manifest's bytes as its device signed them: RFC 8785, or the legacy form a protocol-v1
    app signed (accepted until LEGACY_SIGNATURES_END), whichever the signature verifies over."""
    forms = signed_forms(item.manifest)
    if len(forms) > 1 and device is not None:
        for form in forms:
            if verifier.ed25519_verify(device.public_key, form, item.signature):
                return form
    return forms[0]


def _write_item(built: Built, item: sa.Row[Any], flags: list[dict[str, Any]], users: dict[int, Any],
                tick: Callable[[int], None], *, devices: dict[str, Any] | None = None) -> None:
    w = built.writer
    built.item_ids.append(item.id)
    n = len(built.item_ids)
    no = f"{n:04d}"
    built.kinds[item.kind.value] += 1
    entry: dict[str, Any] = {
        "no": n, "id": item.id, "kind": item.kind.value, "media_type": item.media_type, "sha256": item.sha256,
        "size": item.size, "proves": item.purpose, "status": item.status.value, "step": item.step,
        "captured_by": _person(users.get(item.captured_by), item.certificate_number),
        "second_inspector": _person(users.get(item.second_inspector_id)) if item.second_inspector_id else None,
        "witness": item.witness, "captured_at_device": _iso(item.captured_at_device),
        "received_at": _iso(item.received_at), "verified_at": _iso(item.verified_at),
        "location": {"lat": item.lat, "lon": item.lon, "accuracy_m": item.accuracy_m},
        "device_id": item.device_id, "acquisition_method": item.acquisition_method,
        "signature_valid_at_server": item.signature_valid, "file": None, "capture_signature": None,
        "custody": CUSTODY, "flags": flags}
    for f in flags:
        built.flags.append({"item": item.id, "no": n, **f})
    if item.status is EvidenceStatus.VERIFIED and item.blob_sha256 is not None:
        name = f"evidence/{no}-{item.sha256[:12]}{_MEDIA_EXT.get(item.blob_media_type, '.bin')}"
        media = item.kind.value in ("photo", "video", "audio")
        row = w.add_stream(name, get_store().iter_chunks(item.blob_sha256), item.blob_size, stored=media,
                           progress=tick, item=item.id)
        entry["file"] = name
        built.exported.append(item.id)
        if row["sha256"] != item.sha256:
            built.flags.append({"item": item.id, "no": n, "code": "stored_bytes_differ", "detail": {
                "manifest_sha256": item.sha256, "stored_sha256": row["sha256"]}})
    else:
        built.missing.append({"item": item.id, "no": n, "status": item.status.value, "sha256": item.sha256})
    if item.signature is not None and item.device_id:
        built.captures.write_line({
            "no": n, "item": item.id, "device_id": item.device_id,
            "signed_bytes": base64.b64encode(_signed_form(item, (devices or {}).get(item.device_id))).decode(),
            "signature": base64.b64encode(item.signature).decode()})
        entry["capture_signature"] = CAPTURES
    built.index.append(entry)


def _person(user: Any, certificate: str | None = None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.id, "name": user.display_name, "certificate_number": certificate}


def _readme(built: Built, vkey: str) -> str:
    case, transfer = built.case, built.transfer
    lines = [
        "商洛市生态环境局 移送证据包 / Shangluo Ecology and Environment Bureau — evidence package",
        "=" * 72,
        f"案件 / case: {case.title}（案号 {case.number or '—'}）",
        f"当事人 / party: {case.party_name}",
    ]
    if transfer is not None:
        lines += [f"移送 / transfer: {transfer.id}（{transfer.kind.value}）涉嫌 {transfer.suspected_offence}",
                  f"法律依据 / legal basis: {transfer.legal_basis}",
                  f"状态 / state: {transfer.state.value}"]
    lines += [
        f"移送材料 / documents: {len(built.materials)} 份",
        f"证据 / evidence items: {len(built.item_ids)}（" + "，".join(f"{k} {v}" for k, v in sorted(built.kinds.items())) + "）",
        f"执法全过程记录条目 / audit entries: {built.entries}，检查点 / checkpoint size {built.checkpoint_size}",
        f"标记 / flags: {built.flags.count}；缺失原件 / missing originals: {built.missing.count}",
        f"保管链 / custody: {CUSTODY} 每件一行，以本包的“导出 / exported”事件结束（与封存条目同一事务记录）",
        "  one line per item; each chain ends with the \"exported\" event naming this package (recorded with the seal).",
        "",
        "如何校验 / How to verify (no installation, Python 3.9+ only):",
        "  解压后在本目录运行 / in the unzipped folder run:   python3 verify.py",
        "  或直接校验压缩包 / or check the archive(s):          python3 verify.py package.zip [vol2.zip …]",
        "校验内容 / what is checked: 每个文件的 SHA-256 与大小、清单与索引、审计条目的包含证明、",
        "  检查点签名与一致性证明、封存条目、设备采集签名、签收回执签名，并列出全部标记。",
        "  every file's SHA-256 and size, manifests and index, inclusion proofs of the audit entries,",
        "  checkpoint signatures and consistency proofs, the seal entry, device capture signatures,",
        "  receipt signatures; all flags are listed.",
        "",
        "日志公钥（请与本局公布的公钥核对）/ log public key (compare with the key the bureau publishes):",
        f"  {vkey}",
        "  python3 verify.py --key '<公布的公钥 / published key>' 可强制使用指定公钥。",
    ]
    return "\n".join(lines) + "\n"


# ---- seal ---------------------------------------------------------------------------------------

EXPORT_PURPOSE = "移送证据包 / evidence package"


def _record_export(session: Session, package: EvidencePackage, built: Built) -> int:
    """One "exported" custody event per original in the archive, naming the package: set-based
    (an INSERT … SELECT per page of ids, each event numbered after the item's last one in SQL).
    Written in the seal's transaction, before the custody members, so the members hold them."""
    actor = ("user", str(package.requested_by)) if package.requested_by else ("system", "transfers.package")
    detail = {"package": package.id, "transfer": package.transfer_id, "purpose": EXPORT_PURPOSE}
    table = CustodyEvent.__table__
    later = sa.alias(table)
    next_seq = (sa.select(sa.func.coalesce(sa.func.max(later.c.seq), 0) + 1)
                .where(later.c.item_id == EvidenceItem.id).scalar_subquery())
    at = utcnow()
    count = 0
    for start in range(0, len(built.exported), _PAGE):
        ids = built.exported[start:start + _PAGE]
        source = sa.select(EvidenceItem.id, next_seq, sa.literal(CustodyAction.EXPORTED.value),
                           sa.literal(at, table.c.at.type), sa.literal(actor[0]), sa.literal(actor[1]),
                           EvidenceItem.blob_sha256, sa.literal(detail, table.c.detail.type)
                           ).where(EvidenceItem.id.in_(ids))
        count += len(session.execute(table.insert().from_select(
            ["item_id", "seq", "action", "at", "actor_kind", "actor_id", "sha256", "detail"], source)
            .returning(table.c.seq)).all())
    return count


def _custody_lines(session: Session, built: Built) -> Iterator[bytes]:
    """custody/events.jsonl: one line per item in package order, its chain as it stands in the
    seal's transaction."""
    columns = (CustodyEvent.item_id, CustodyEvent.seq, CustodyEvent.action, CustodyEvent.at, CustodyEvent.actor_kind,
               CustodyEvent.actor_id, CustodyEvent.sha256, CustodyEvent.detail)
    for start in range(0, len(built.item_ids), _PAGE):
        ids = built.item_ids[start:start + _PAGE]
        events: dict[str, list[dict[str, Any]]] = {}
        for e in session.execute(sa.select(*columns).where(CustodyEvent.item_id.in_(ids))
                                 .order_by(CustodyEvent.item_id, CustodyEvent.seq)):
            events.setdefault(e.item_id, []).append({
                "seq": e.seq, "action": e.action.value, "at": _iso(e.at), "actor_kind": e.actor_kind,
                "actor_id": e.actor_id, "sha256": e.sha256, "detail": e.detail})
        for n, item_id in enumerate(ids, start + 1):
            yield _line({"no": n, "item": item_id, "events": events.get(item_id, [])}) + b"\n"


def record_seal(session: Session, package: EvidencePackage, built: Built, config: Any) -> audit.PendingEntry:
    """The seal's transaction: the exported custody events, the members that list every item
    (custody, evidence index, flags, README), the manifests and index.json, and the audit entry
    sealing index.json. The caller commits it."""
    w = built.writer
    exported = _record_export(session, package, built)
    w.add_stream(CUSTODY, _custody_lines(session, built), 0, stored=False)
    case, transfer = built.case, built.transfer
    w.add_document("evidence/index.json", {"case": case.id}, [("items", built.index)])
    w.add_document("flags.json", {"missing_documents": ops.missing_documents(session, transfer) if transfer else []},
                   [("missing_items", built.missing), ("plausibility", built.flags)])
    vkey = cp.log_verifier_key(config).vkey()
    w.add_bytes("README.txt", _readme(built, vkey).encode())
    meta = {"package": package.id, "case": case.id, "case_number": case.number, "transfer": transfer.id if transfer else None,
            "created_at": _iso(utcnow()), "log": {"origin": config["AUDIT_LOG_ORIGIN"], "vkey": vkey},
            "checkpoint": built.checkpoint_size}
    built.index_bytes = w.finish_manifests(meta)
    built.close()
    built.files = sum(v["files"] for v in w.closed)
    built.bytes = sum(v["bytes"] for v in w.closed)
    digest = hashlib.sha256(built.index_bytes).hexdigest()
    package.manifest_sha256 = digest
    subjects: list[tuple[str, Any]] = [("transfer_package", package.id), ("case", package.case_id)]
    if package.transfer_id:
        subjects.append(("transfer", package.transfer_id))
    return audit.record(session, "server:transfer_package:sealed", subjects=subjects, payload={
        "package": package.id, "format": FORMAT, "index_sha256": digest, "checkpoint": built.checkpoint_size,
        "volumes": [{"manifest": v["manifest"], "sha256": v["manifest_sha256"]} for v in w.closed],
        "files": built.files, "bytes": built.bytes, "evidence": len(built.item_ids),
        "custody": {"action": CustodyAction.EXPORTED.value, "events": exported}})


def seal_document(session: Session, package: EvidencePackage, built: Built, seal_idx: int, config: Any) -> bytes:
    """After the seal entry is committed: a newer checkpoint C2, the seal's proof, and C1 → C2."""
    latest = cp.publish(session, config)
    proof = cp.proof_file(session, seal_idx, latest, reader=audit.EXPORT_READER)
    consistency = audit.consistency_proof_stored(session, built.checkpoint_size, latest.size)
    return _json({"format": FORMAT, "package": package.id, "index_sha256": package.manifest_sha256,
                  "seal_idx": seal_idx, "proof": proof,
                  "consistency": {"from": built.checkpoint_size, "to": latest.size,
                                  "proof": [base64.b64encode(h).decode() for h in consistency]}})


def finish(session: Session, package: EvidencePackage, built: Built, seal: bytes, seal_idx: int) -> None:
    volumes = built.writer.seal_and_close(seal)
    package.volumes = volumes
    package.seal_idx = seal_idx
    package.status = PackageStatus.DONE
    package.done_bytes = package.total_bytes or 0
    package.finished_at = utcnow()
    session.flush()
    audit.record(session, "server:transfer_package:built", subjects={"transfer_package": package.id,
                                                                     "case": package.case_id},
                 payload={"volumes": [{k: v[k] for k in ("name", "sha256", "size")} for v in volumes],
                          "index_sha256": package.manifest_sha256, "seal_idx": seal_idx})


def build(session: Session, package_id: str, config: Any, *, commit: Callable[[], None],
          progress_every_s: float = 2.0) -> EvidencePackage:
    """Build a requested package. ``commit`` is the boundary's commit: called after the content
    (with the seal entry), after checkpoint C2, and for progress."""
    package = session.get(EvidencePackage, package_id)
    if package is None:
        raise PackageNotFound(package=package_id)
    if package.status is PackageStatus.DONE:
        return package
    last = [time.monotonic()]

    def progress(done: int, total: int) -> None:
        if time.monotonic() - last[0] >= progress_every_s:
            last[0] = time.monotonic()
            session.execute(sa.update(EvidencePackage).where(EvidencePackage.id == package_id).values(done_bytes=done))
            commit()

    built = build_content(session, package, config, progress=progress)
    try:
        entry = record_seal(session, package, built, config)
        commit()
        package = session.get(EvidencePackage, package_id)  # type: ignore[assignment]
        seal = seal_document(session, package, built, entry.idx, config)  # type: ignore[arg-type]
        finish(session, package, built, seal, entry.idx)  # type: ignore[arg-type]
        commit()
    except BaseException:
        built.close()
        built.writer.abort()
        raise
    return package

"""The evidence package: one streamed ZIP (or several volumes) that the police, the procuratorate
or a court can check offline with the ``verify.py`` it carries.

Layout (paths inside the archive; every file is listed with its SHA-256 and size in a manifest):

    verify.py, verifier.py          standalone verifier (standard library only, own Ed25519)
    README.txt                      summary in Chinese (and English)
    documents/<file>                transfer letter, investigation report, materials list, other materials
    evidence/NNNN-<sha12>.<ext>     original evidence files, streamed from the blob store (stored, not deflated)
    evidence/index.json             photo / video index: what each proves, who took it, when, where
    custody/NNNN.json               chain of custody of each item
    devices/captures/NNNN.json      the device-signed capture manifest bytes and signature
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
"""
from __future__ import annotations

import base64
import bisect
import datetime as dt
import hashlib
import json
import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from server.core import errors
from server.core.canonical import canonical_json
from server.core.db import utcnow
from server.core.storage import get_store
from server.modules.audit import checkpoints as cp
from server.modules.audit import operations as audit
from server.modules.audit.models import AuditCheckpoint, AuditEntry, AuditSubject
from server.modules.cases import operations as cases
from server.modules.devices.models import Device
from server.modules.evidence.models import CustodyEvent, EvidenceFlag, EvidenceStatus
from server.modules.transfers import operations as ops
from server.modules.transfers.models import EvidencePackage, PackageStatus, ReceiverKey, Transfer
from server.modules.users.models import User

FORMAT = "qinling-field/evidence-package@1"
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


@dataclass
class _Volume:
    number: int
    path: Path
    raw: _HashingFile
    zf: zipfile.ZipFile
    files: list[dict[str, Any]] = field(default_factory=list)
    items: list[str] = field(default_factory=list)


class VolumeWriter:
    """ZIP64 volumes of at most ``max_bytes`` (a file larger than that gets a volume of its own);
    every entry's SHA-256 and size is recorded for the volume's manifest."""

    def __init__(self, directory: Path, stem: str, max_bytes: int | None, when: dt.datetime) -> None:
        self.directory, self.stem, self.max_bytes = directory, stem, max_bytes
        self.date_time = when.timetuple()[:6]
        self.volumes: list[_Volume] = []
        self.closed: list[dict[str, Any]] = []
        self.manifest_names: list[str] = []
        self._open(1)

    def _open(self, number: int) -> None:
        path = self.directory / f"{self.stem}.vol{number:03d}.zip"
        raw = _HashingFile(path)
        self.volumes.append(_Volume(number, path, raw, zipfile.ZipFile(raw, "w", allowZip64=True)))

    @property
    def current(self) -> _Volume:
        return self.volumes[-1]

    def _room(self, size: int) -> None:
        vol = self.current
        if self.max_bytes and vol.files and vol.raw.count + size + 512 > self.max_bytes:
            self._finish_volume(vol, manifest_name=f"manifest-vol{vol.number:03d}.json")
            self._open(vol.number + 1)

    def _info(self, name: str, stored: bool) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, self.date_time)
        info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        return info

    def add_bytes(self, name: str, data: bytes, *, stored: bool = False) -> dict[str, Any]:
        self._room(len(data))
        self.current.zf.writestr(self._info(name, stored), data)
        row = {"path": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        self.current.files.append(row)
        return row

    def add_stream(self, name: str, chunks: Iterable[bytes], size: int, *, stored: bool = True,
                   progress: Callable[[int], None] | None = None, item: str | None = None) -> dict[str, Any]:
        """Stream ``chunks`` into one entry without holding the file in memory."""
        self._room(size)
        sha, written = hashlib.sha256(), 0
        with self.current.zf.open(self._info(name, stored), "w", force_zip64=True) as out:
            for chunk in chunks:
                sha.update(chunk)
                out.write(chunk)
                written += len(chunk)
                if progress:
                    progress(len(chunk))
        row = {"path": name, "sha256": sha.hexdigest(), "size": written}
        self.current.files.append(row)
        if item:
            self.current.items.append(item)
        return row

    def _finish_volume(self, vol: _Volume, *, manifest_name: str, extra: Callable[[], None] | None = None) -> None:
        manifest = {"format": FORMAT, "volume": vol.number, "files": vol.files}
        body = json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True).encode()
        vol.zf.writestr(self._info(manifest_name, False), body)
        self.manifest_names.append(manifest_name)
        self.closed.append({"number": vol.number, "manifest": manifest_name,
                            "manifest_sha256": hashlib.sha256(body).hexdigest(), "files": len(vol.files),
                            "bytes": sum(f["size"] for f in vol.files), "items": vol.items})
        if extra is None:
            self._close_zip(vol)

    def _close_zip(self, vol: _Volume) -> None:
        vol.zf.close()
        vol.raw.close()

    def finish_manifests(self, package_meta: dict[str, Any]) -> bytes:
        """Write the last volume's manifest and the index; returns the index bytes (to be sealed)."""
        last = self.current
        single = len(self.volumes) == 1
        self._finish_volume(last, manifest_name="manifest.json" if single else f"manifest-vol{last.number:03d}.json",
                            extra=lambda: None)
        index = {**package_meta, "format": FORMAT,
                 "volumes": [{k: v[k] for k in ("number", "manifest", "manifest_sha256", "files", "bytes")}
                             for v in self.closed]}
        body = json.dumps(index, ensure_ascii=False, indent=1, sort_keys=True).encode()
        last.zf.writestr(self._info("index.json", False), body)
        return body

    def seal_and_close(self, seal: bytes) -> list[dict[str, Any]]:
        last = self.current
        last.zf.writestr(self._info("seal.json", False), seal)
        self._close_zip(last)
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
    writer: VolumeWriter
    index: bytes
    checkpoint_size: int
    item_ids: list[str]
    files: int
    bytes: int


def _entry_indices(session: Session, case_id: str, transfer_id: str | None, item_ids: list[str],
                   size: int) -> list[int]:
    subjects = [("case", case_id)] + ([("transfer", transfer_id)] if transfer_id else [])
    found: set[int] = set()
    for kind, value in subjects:
        found.update(session.scalars(sa.select(AuditSubject.entry_idx).where(
            AuditSubject.subject_type == kind, AuditSubject.subject_id == value, AuditSubject.entry_idx < size)))
    for start in range(0, len(item_ids), 500):
        found.update(session.scalars(sa.select(AuditSubject.entry_idx).where(
            AuditSubject.subject_type == "evidence", AuditSubject.subject_id.in_(item_ids[start:start + 500]),
            AuditSubject.entry_idx < size)))
    return sorted(found)


def _write_audit(session: Session, w: VolumeWriter, indices: list[int], latest: AuditCheckpoint) -> None:
    """Entries with inclusion proofs against the first stored checkpoint that covers each, those
    checkpoints, and consistency proofs from each of them to the latest (C1)."""
    stored = session.execute(sa.select(AuditCheckpoint.size, AuditCheckpoint.id).where(
        AuditCheckpoint.size <= latest.size).order_by(AuditCheckpoint.size, AuditCheckpoint.id)).all()
    sizes = sorted({s for s, _ in stored})
    used: set[int] = set()

    def lines() -> Iterator[bytes]:
        for start in range(0, len(indices), 500):
            batch = indices[start:start + 500]
            rows = session.execute(sa.select(AuditEntry.idx, AuditEntry.body).where(AuditEntry.idx.in_(batch))
                                   .order_by(AuditEntry.idx)).all()
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
            for idx, body in rows:
                size, proof = proofs[idx]
                yield canonical_json({"idx": idx, "body": base64.b64encode(body).decode(), "checkpoint": size,
                                      "proof": [base64.b64encode(h).decode() for h in proof]}) + b"\n"

    w.add_stream("audit/entries.jsonl", lines(), 0, stored=False)
    used.add(latest.size)
    notes = {}
    for size in sorted(used):
        row = latest if size == latest.size else session.scalar(
            sa.select(AuditCheckpoint).where(AuditCheckpoint.size == size).order_by(AuditCheckpoint.id).limit(1))
        notes[size] = cp.served_note(session, row)  # type: ignore[arg-type]
        w.add_bytes(f"audit/checkpoints/{size}.txt", notes[size].encode())
    consistency = [{"from": size, "to": latest.size,
                    "proof": [base64.b64encode(h).decode() for h in audit.consistency_proof_stored(session, size, latest.size)]}
                   for size in sorted(used) if 0 < size < latest.size]
    w.add_bytes("audit/consistency.json", _json({"latest": latest.size, "proofs": consistency}))


def build_content(session: Session, package: EvidencePackage, config: Any, *,
                  progress: Callable[[int, int], None] | None = None) -> Built:
    """Write everything but the seal. Reads only (after publishing C1), so progress may be committed."""
    case = cases.get(session, package.case_id)
    transfer = session.get(Transfer, package.transfer_id) if package.transfer_id else None
    latest = cp.publish(session, config)  # C1: covers every committed entry about the case
    materials = ops.materials(session, transfer) if transfer else []
    rows = ops.evidence_items(session, case.id)
    total = sum(i.blob.size if i.blob is not None else 0 for i, _ in rows) + sum(m.size for m in materials)
    package.total_bytes, package.status = total, PackageStatus.BUILDING
    session.flush()
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress:
            progress(done[0], total)

    directory = package_dir()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / package.id).mkdir(exist_ok=True)
    w = VolumeWriter(directory / package.id, f"evidence-package-{package.id[:8]}", package.max_volume_bytes, utcnow())
    try:
        built = _write_all(session, w, package, case, transfer, latest, materials, rows, config, tick)
    except BaseException:
        w.abort()
        raise
    return built


def _write_all(session: Session, w: VolumeWriter, package: EvidencePackage, case: Any, transfer: Transfer | None,
               latest: AuditCheckpoint, materials: list[Any], rows: list[Any], config: Any,
               tick: Callable[[int], None]) -> Built:
    store = get_store()
    for name, path in VERIFY_SOURCES.items():
        w.add_bytes(name, path.read_bytes())
    for m in materials:
        w.add_stream(f"documents/{m.id:04d}-{m.filename}", store.iter_chunks(m.sha256), m.size, stored=False,
                     progress=tick)
    users = {u.id: u for u in session.scalars(sa.select(User).where(User.id.in_(
        {i.captured_by for i, _ in rows} | {i.second_inspector_id for i, _ in rows if i.second_inspector_id})))}
    devices: dict[str, Any] = {}
    index, flags, missing = [], [], []
    item_ids = []
    for n, (item, purpose) in enumerate(rows, 1):
        item_ids.append(item.id)
        no = f"{n:04d}"
        entry: dict[str, Any] = {
            "no": n, "id": item.id, "kind": item.kind.value, "media_type": item.media_type, "sha256": item.sha256,
            "size": item.size, "proves": purpose, "status": item.status.value, "step": item.step,
            "captured_by": _person(users.get(item.captured_by), item.certificate_number),
            "second_inspector": _person(users.get(item.second_inspector_id)) if item.second_inspector_id else None,
            "witness": item.witness, "captured_at_device": _iso(item.captured_at_device),
            "received_at": _iso(item.received_at), "verified_at": _iso(item.verified_at),
            "location": {"lat": item.lat, "lon": item.lon, "accuracy_m": item.accuracy_m},
            "device_id": item.device_id, "acquisition_method": item.acquisition_method,
            "signature_valid_at_server": item.signature_valid, "file": None, "capture_signature": None,
            "custody": f"custody/{no}.json",
            "flags": [{"code": f.code, "detail": f.detail} for f in item.flags]}
        for f in item.flags:
            flags.append({"item": item.id, "no": n, "code": f.code, "detail": f.detail})
        if item.status is EvidenceStatus.VERIFIED and item.blob is not None:
            name = f"evidence/{no}-{item.sha256[:12]}{_MEDIA_EXT.get(item.blob.media_type, '.bin')}"
            media = item.kind.value in ("photo", "video", "audio")
            row = w.add_stream(name, store.iter_chunks(item.blob_sha256), item.blob.size, stored=media,  # type: ignore[arg-type]
                               progress=tick, item=item.id)
            entry["file"] = name
            if row["sha256"] != item.sha256:
                flags.append({"item": item.id, "no": n, "code": "stored_bytes_differ", "detail": {
                    "manifest_sha256": item.sha256, "stored_sha256": row["sha256"]}})
        else:
            missing.append({"item": item.id, "no": n, "status": item.status.value, "sha256": item.sha256})
        if item.signature is not None and item.device_id:
            device = devices.get(item.device_id) or session.get(Device, item.device_id)
            devices[item.device_id] = device
            signed = canonical_json(item.manifest)
            w.add_bytes(f"devices/captures/{no}.json", _json({
                "item": item.id, "device_id": item.device_id, "signed_bytes": base64.b64encode(signed).decode(),
                "signature": base64.b64encode(item.signature).decode()}))
            entry["capture_signature"] = f"devices/captures/{no}.json"
        custody = session.scalars(sa.select(CustodyEvent).where(CustodyEvent.item_id == item.id)
                                  .order_by(CustodyEvent.seq)).all()
        w.add_bytes(f"custody/{no}.json", _json({"item": item.id, "events": [
            {"seq": e.seq, "action": e.action.value, "at": _iso(e.at), "actor_kind": e.actor_kind, "actor_id": e.actor_id,
             "sha256": e.sha256, "detail": e.detail} for e in custody]}))
        index.append(entry)
    w.add_bytes("evidence/index.json", _json({"case": case.id, "items": index}))
    w.add_bytes("keys/devices.json", _json({d.id: {"public_key": base64.b64encode(d.public_key).decode(),
                                                  "label": d.label, "user_id": d.user_id,
                                                  "revoked_at": _iso(d.revoked_at)} for d in devices.values()}))
    log_key = cp.log_verifier_key(config)
    w.add_bytes("keys/log.vkey", (log_key.vkey() + "\n").encode())
    acks = ops.acknowledgements(session, transfer) if transfer else []
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
    indices = _entry_indices(session, case.id, transfer.id if transfer else None, item_ids, latest.size)
    _write_audit(session, w, indices, latest)
    missing_docs = ops.missing_documents(session, transfer) if transfer else []
    w.add_bytes("flags.json", _json({"plausibility": flags, "missing_items": missing,
                                     "missing_documents": missing_docs}))
    w.add_bytes("README.txt", _readme(session, case, transfer, index, flags, missing, materials, len(indices),
                                      latest, log_key.vkey()).encode())
    meta = {"package": package.id, "case": case.id, "case_number": case.number, "transfer": transfer.id if transfer else None,
            "created_at": _iso(utcnow()), "log": {"origin": config["AUDIT_LOG_ORIGIN"], "vkey": log_key.vkey()},
            "checkpoint": latest.size}
    index_bytes = w.finish_manifests(meta)
    files = sum(v["files"] for v in w.closed)
    size = sum(v["bytes"] for v in w.closed)
    return Built(w, index_bytes, latest.size, item_ids, files, size)


def _person(user: User | None, certificate: str | None = None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.id, "name": user.display_name, "certificate_number": certificate}


def _readme(session: Session, case: Any, transfer: Transfer | None, index: list[dict[str, Any]],
            flags: list[Any], missing: list[Any], materials: list[Any], entries: int, latest: AuditCheckpoint,
            vkey: str) -> str:
    kinds: dict[str, int] = {}
    for item in index:
        kinds[item["kind"]] = kinds.get(item["kind"], 0) + 1
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
        f"移送材料 / documents: {len(materials)} 份",
        f"证据 / evidence items: {len(index)}（" + "，".join(f"{k} {v}" for k, v in sorted(kinds.items())) + "）",
        f"执法全过程记录条目 / audit entries: {entries}，检查点 / checkpoint size {latest.size}",
        f"标记 / flags: {len(flags)}；缺失原件 / missing originals: {len(missing)}",
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

def record_seal(session: Session, package: EvidencePackage, built: Built) -> audit.PendingEntry:
    digest = hashlib.sha256(built.index).hexdigest()
    package.manifest_sha256 = digest
    subjects = {"transfer_package": package.id, "case": package.case_id}
    if package.transfer_id:
        subjects["transfer"] = package.transfer_id
    return audit.record(session, "server:transfer_package:sealed", subjects=subjects, payload={
        "package": package.id, "format": FORMAT, "index_sha256": digest, "checkpoint": built.checkpoint_size,
        "volumes": [{"manifest": v["manifest"], "sha256": v["manifest_sha256"]} for v in built.writer.closed],
        "files": built.files, "bytes": built.bytes, "evidence": len(built.item_ids)})


def seal_document(session: Session, package: EvidencePackage, built: Built, seal_idx: int, config: Any) -> bytes:
    """After the seal entry is committed: a newer checkpoint C2, the seal's proof, and C1 → C2."""
    latest = cp.publish(session, config)
    proof = cp.proof_file(session, seal_idx, latest)
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
        entry = record_seal(session, package, built)
        commit()
        package = session.get(EvidencePackage, package_id)  # type: ignore[assignment]
        seal = seal_document(session, package, built, entry.idx, config)  # type: ignore[arg-type]
        finish(session, package, built, seal, entry.idx)  # type: ignore[arg-type]
        commit()
    except BaseException:
        built.writer.abort()
        raise
    return package

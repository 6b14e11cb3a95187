#!/usr/bin/env python3
"""Offline verifier of a Qinling Field evidence package (秦岭移动执法 移送证据包 离线校验工具).

Standard library only (Python 3.9+), shipped inside every package next to ``verifier.py`` (the
audit-log verifier with its own Ed25519). Nothing needs installing:

    python3 verify.py                       # in the unzipped folder (all volumes unzipped together)
    python3 verify.py package.zip           # the archive itself
    python3 verify.py vol001.zip vol002.zip # a package split into volumes (or a folder holding them)
    python3 verify.py --key '<vkey>'        # pin the log key the bureau publishes

It checks every file's SHA-256 and size against the volume manifests, the manifests against
index.json, index.json against the seal entry in the audit log (inclusion proof under a signed
checkpoint, consistency from the package's checkpoint), every audit entry's inclusion proof and
the order of the entries, every checkpoint signature and consistency proof, the device capture
signatures, the receipt signatures, that every evidence file's hash is recorded in the log, that
every item's custody chain is gap-free and records its export in this package, and lists the flags
(plausibility findings, missing items). Exit status 0 when everything holds.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import struct
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

sys.dont_write_bytecode = True  # running the verifier must not add files to the package folder
try:  # inside the project
    from server.modules.audit import verifier as V  # type: ignore[import-not-found]
except ImportError:  # shipped: verifier.py sits next to this file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import verifier as V  # type: ignore[import-not-found,no-redef]

FORMAT = "qinling-field/evidence-package@2"
SEAL_TAG = "server:transfer_package:sealed"
_CHUNK = 1 << 20
_CONTROL = {"index.json", "seal.json"}


# ---- a faster pure-Python Ed25519 verification (same maths as verifier.ed25519_verify) -----------
# A package carries one device signature per photo; this check is ~2.5x faster than the reference
# one: a table of 2^i·B for the fixed base point, a 4-bit window for the key, dedicated doubling.

_BASE_TABLE: List[tuple] = []


def _double(p: tuple) -> tuple:
    """RFC 8032 §5.1.4 doubling in extended coordinates (a = -1)."""
    P = V._P  # noqa: N806
    x1, y1, z1 = p[0], p[1], p[2]
    a, b, c = x1 * x1 % P, y1 * y1 % P, 2 * z1 * z1 % P
    h = a + b
    e = h - (x1 + y1) * (x1 + y1) % P
    g = a - b
    f = c + g
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _base_multiple(s: int) -> tuple:
    if not _BASE_TABLE:
        point = V._G
        for _ in range(256):
            _BASE_TABLE.append(point)
            point = _double(point)
    result, i = (0, 1, 1, 0), 0
    while s:
        if s & 1:
            result = V._point_add(result, _BASE_TABLE[i])
        s >>= 1
        i += 1
    return result


def _window_multiple(k: int, point: tuple) -> tuple:
    table = [(0, 1, 1, 0), point]
    for _ in range(14):
        table.append(V._point_add(table[-1], point))
    result = (0, 1, 1, 0)
    for shift in range(252, -1, -4):
        result = _double(_double(_double(_double(result))))
        nibble = (k >> shift) & 15
        if nibble:
            result = V._point_add(result, table[nibble])
    return result


def ed25519_verify_pure(public_key: bytes, message: bytes, signature: bytes) -> bool:
    if len(public_key) != 32 or len(signature) != 64:
        return False
    a = V._decompress(public_key)
    r = V._decompress(signature[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= V._Q:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public_key + message).digest(), "little") % V._Q
    return V._point_equal(_base_multiple(s), V._point_add(r, _window_multiple(h, a)))


def _ed25519_verify() -> Tuple[Callable[[bytes, bytes, bytes], bool], str]:
    """The built-in pure-Python Ed25519, or the C one from ``cryptography`` when it happens to be
    installed (same answers, faster); ``QF_VERIFY_PURE=1`` forces the built-in one."""
    if not os.environ.get("QF_VERIFY_PURE"):
        try:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

            def fast(public_key: bytes, message: bytes, signature: bytes) -> bool:
                try:
                    Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
                    return True
                except (InvalidSignature, ValueError):
                    return False
            return fast, "cryptography (C)"
        except ImportError:
            pass
    return ed25519_verify_pure, "built-in (pure Python)"


# ---- reading files from folders and ZIP volumes ------------------------------------------------

class Source:
    """Files of the package by path, from unzipped folders or ZIP archives (read in place)."""

    def __init__(self) -> None:
        self.files: Dict[str, Tuple[Callable[[], Iterator[bytes]], int, str]] = {}
        self.duplicates: List[str] = []
        self.ignored: List[str] = []
        self.zips: List[zipfile.ZipFile] = []

    def _add(self, name: str, opener: Callable[[], Iterator[bytes]], size: int, where: str) -> None:
        if name in self.files:
            self.duplicates.append(name)
        self.files[name] = (opener, size, where)

    def add_dir(self, root: str) -> None:
        for folder, dirs, names in os.walk(root):
            dirs.sort()
            for name in sorted(names):
                full = os.path.join(folder, name)
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                if "/__pycache__/" in "/" + rel or rel.endswith(".zip"):
                    self.ignored.append(rel)
                    continue
                self._add(rel, lambda p=full: _read_path(p), os.path.getsize(full), root)

    def add_zip(self, path: str) -> None:
        zf = zipfile.ZipFile(path)
        self.zips.append(zf)
        for info in zf.infolist():
            if info.is_dir():
                continue
            self._add(info.filename, lambda p=path, i=info, z=zf: _read_member(p, z, i), info.file_size,
                      os.path.basename(path))

    def size(self, name: str) -> int:
        return self.files[name][1]

    def chunks(self, name: str) -> Iterator[bytes]:
        return self.files[name][0]()

    def read(self, name: str) -> bytes:
        return b"".join(self.chunks(name))


def _read_path(path: str) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(_CHUNK)
            if not chunk:
                return
            yield chunk


def _read_member(path: str, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """Stored entries are read straight from the archive (no CRC pass: the SHA-256 is the check)."""
    if info.compress_type != zipfile.ZIP_STORED:
        with zf.open(info) as member:
            while True:
                chunk = member.read(_CHUNK)
                if not chunk:
                    return
                yield chunk
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        header = handle.read(30)
        if header[:4] != b"PK\x03\x04":
            raise ValueError(f"bad local header for {info.filename}")
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        handle.seek(info.header_offset + 30 + name_len + extra_len)
        left = info.compress_size
        while left > 0:
            chunk = handle.read(min(_CHUNK, left))
            if not chunk:
                raise ValueError(f"{info.filename} is truncated")
            left -= len(chunk)
            yield chunk


def _sha256(source: Source, name: str) -> Tuple[str, int]:
    sha, size = hashlib.sha256(), 0
    for chunk in source.chunks(name):
        sha.update(chunk)
        size += len(chunk)
    return sha.hexdigest(), size


# ---- the report --------------------------------------------------------------------------------

class Report:
    def __init__(self) -> None:
        self.failures: List[Tuple[str, str]] = []
        self.warnings: List[Tuple[str, str]] = []
        self.passed: List[Tuple[str, str]] = []

    def fail(self, zh: str, en: str) -> None:
        self.failures.append((zh, en))

    def warn(self, zh: str, en: str) -> None:
        self.warnings.append((zh, en))

    def ok(self, zh: str, en: str) -> None:
        self.passed.append((zh, en))

    def print(self, out: Any = None) -> None:
        out = out or sys.stdout
        for zh, en in self.passed:
            print(f"  通过 / OK      {zh} / {en}", file=out)
        for zh, en in self.warnings:
            print(f"  标记 / FLAG    {zh} / {en}", file=out)
        for zh, en in self.failures:
            print(f"  失败 / FAILED  {zh} / {en}", file=out)
        print("", file=out)
        if self.failures:
            print(f"结论：校验失败，{len(self.failures)} 项不符。", file=out)
            print(f"RESULT: FAILED, {len(self.failures)} problem(s).", file=out)
        else:
            print(f"结论：校验通过（{len(self.warnings)} 项标记需人工关注）。", file=out)
            print(f"RESULT: PASSED ({len(self.warnings)} flag(s) for human attention).", file=out)


def _json(source: Source, name: str, report: Report) -> Any:
    if name not in source.files:
        report.fail(f"缺少文件 {name}", f"file {name} is missing")
        return None
    try:
        return json.loads(source.read(name).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        report.fail(f"{name} 不是有效的 JSON", f"{name} is not valid JSON")
        return None


# ---- checks ------------------------------------------------------------------------------------

def verify(source: Source, pinned_key: Optional[str] = None, threads: int = 0) -> Report:
    report = Report()
    ed_verify, ed_impl = _ed25519_verify()
    for name in source.duplicates:
        report.fail(f"文件 {name} 在多个卷中重复出现", f"file {name} appears more than once")
    index = _json(source, "index.json", report)
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        report.fail("index.json 缺失或格式不符", "index.json is missing or not an evidence-package index")
        return report
    # 1. manifests against the index, files against the manifests
    listed: Dict[str, Dict[str, Any]] = {}
    for volume in index.get("volumes", []):
        name = volume.get("manifest")
        if name not in source.files:
            report.fail(f"缺少第 {volume.get('number')} 卷的清单 {name}（缺卷？）",
                        f"manifest {name} of volume {volume.get('number')} is missing (missing volume?)")
            continue
        digest, _ = _sha256(source, name)
        if digest != volume.get("manifest_sha256"):
            report.fail(f"清单 {name} 的哈希与 index.json 不符", f"manifest {name} does not match its hash in index.json")
        manifest = _json(source, name, report) or {}
        for row in manifest.get("files", []):
            if row["path"] in listed:
                report.fail(f"文件 {row['path']} 在清单中重复", f"file {row['path']} is listed twice")
            listed[row["path"]] = row
    manifests = {v.get("manifest") for v in index.get("volumes", [])}
    for name in sorted(source.files):
        if name not in listed and name not in _CONTROL and name not in manifests:
            report.fail(f"多出未列入清单的文件：{name}", f"extra file not in any manifest: {name}")
    names = [p for p in listed if p in source.files]
    for path in listed:
        if path not in source.files:
            report.fail(f"清单中的文件缺失：{path}", f"file listed in the manifest is missing: {path}")
    workers = threads or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:  # hashlib releases the GIL: files hash in parallel
        hashed = dict(zip(names, pool.map(lambda n: _sha256(source, n), names)))
    bad_files = 0
    for path, (digest, size) in hashed.items():
        row = listed[path]
        if size != row["size"] or digest != row["sha256"]:
            bad_files += 1
            report.fail(f"文件内容被改动：{path}（SHA-256 或大小与清单不符）",
                        f"file content changed: {path} (SHA-256 or size differs from the manifest)")
    if not bad_files:
        report.ok(f"{len(hashed)} 个文件的 SHA-256 与大小均与清单一致",
                  f"all {len(hashed)} files match the manifest (SHA-256 and size)")
    # 2. the log key
    key_text = pinned_key or (source.read("keys/log.vkey").decode().strip() if "keys/log.vkey" in source.files else "")
    try:
        key = V.parse_key(key_text)
    except V.VerificationError as exc:
        report.fail(f"日志公钥无效：{exc.zh}", f"the log public key is invalid: {exc.en}")
        return report
    if pinned_key is None and index.get("log", {}).get("vkey") != key_text:
        report.fail("keys/log.vkey 与 index.json 记载的日志公钥不一致（公钥被替换？）",
                    "keys/log.vkey differs from the log key recorded in index.json (swapped key?)")
    report.ok(f"日志公钥 {key.name}+{key.key_hash.hex()}（请与本局公布的公钥核对）",
              f"log key {key.name}+{key.key_hash.hex()} (compare with the key the bureau publishes)")
    # 3. checkpoints and consistency
    checkpoints = _checkpoints(source, key, report)
    latest_size = index.get("checkpoint")
    consistency = _json(source, "audit/consistency.json", report) or {}
    latest = checkpoints.get(latest_size)
    if latest is None:
        report.fail(f"缺少包所依据的检查点（大小 {latest_size}）", f"the package's checkpoint (size {latest_size}) is missing")
    else:
        proven = {latest_size}
        for row in consistency.get("proofs", []):
            old = checkpoints.get(row.get("from"))
            proof = [base64.b64decode(h) for h in row.get("proof", [])]
            if old is None or row.get("to") != latest_size or not V.verify_consistency(
                    old.size, latest.size, old.root, latest.root, proof):
                report.fail(f"检查点 {row.get('from')} → {latest_size} 的一致性证明不成立",
                            f"consistency proof {row.get('from')} → {latest_size} does not hold")
            else:
                proven.add(old.size)
        unproven = sorted(set(checkpoints) - proven)
        if unproven:
            report.fail(f"检查点 {unproven} 缺少到最新检查点的一致性证明",
                        f"checkpoints {unproven} lack a consistency proof to the latest one")
        elif checkpoints:
            report.ok(f"{len(checkpoints)} 个检查点签名有效，且都与最新检查点（大小 {latest_size}）一致",
                      f"{len(checkpoints)} checkpoint signatures valid and consistent with the latest (size {latest_size})")
    # 4. audit entries
    entries = _entries(source, checkpoints, report)
    # 5. the seal
    _seal(source, index, key, latest, report)
    # 6. evidence: hashes in the log, device signatures, custody chains
    _evidence(source, index, listed, hashed, entries, ed_verify, report)
    # 7. receipts
    _acknowledgements(source, ed_verify, report)
    # 8. flags
    flags = _json(source, "flags.json", report) or {}
    for flag in flags.get("plausibility", []):
        report.warn(f"证据 {flag.get('no')} 标记 {flag.get('code')}：{json.dumps(flag.get('detail'), ensure_ascii=False)}",
                    f"evidence {flag.get('no')} flagged {flag.get('code')}")
    for item in flags.get("missing_items", []):
        report.warn(f"证据 {item.get('no')} 原件未到或已删除（状态 {item.get('status')}）",
                    f"evidence {item.get('no')} original missing (status {item.get('status')})")
    for doc in flags.get("missing_documents", []):
        report.warn(f"缺少移送材料：{doc.get('name_zh')}（{doc.get('source')}）",
                    f"missing transfer document: {doc.get('code')}")
    report.ok(f"Ed25519 实现：{ed_impl}", f"Ed25519 implementation: {ed_impl}")
    return report


def _checkpoints(source: Source, key: Any, report: Report) -> Dict[int, Any]:
    found = {}
    for name in sorted(n for n in source.files if n.startswith("audit/checkpoints/")):
        try:
            checkpoint = V.verify_checkpoint(source.read(name).decode("utf-8"), key)
        except (V.VerificationError, UnicodeDecodeError) as exc:
            zh, en = (exc.zh, exc.en) if isinstance(exc, V.VerificationError) else ("编码错误", "bad encoding")
            report.fail(f"检查点 {name} 无效：{zh}", f"checkpoint {name} is invalid: {en}")
            continue
        if name != f"audit/checkpoints/{checkpoint.size}.txt":
            report.fail(f"检查点文件名 {name} 与其大小 {checkpoint.size} 不符",
                        f"checkpoint file {name} does not match its size {checkpoint.size}")
        found[checkpoint.size] = checkpoint
    return found


def _entries(source: Source, checkpoints: Dict[int, Any], report: Report) -> Dict[int, Dict[str, Any]]:
    entries: Dict[int, Dict[str, Any]] = {}
    if "audit/entries.jsonl" not in source.files:
        report.fail("缺少审计条目文件 audit/entries.jsonl", "audit/entries.jsonl is missing")
        return entries
    previous, bad, count = -1, 0, 0
    for number, line in enumerate(_lines(source, "audit/entries.jsonl"), 1):
        count += 1
        try:
            row = json.loads(line)
            body = base64.b64decode(row["body"], validate=True)
            proof = [base64.b64decode(h, validate=True) for h in row["proof"]]
            idx, size = int(row["idx"]), int(row["checkpoint"])
            entry = json.loads(body.decode("utf-8"))
        except (ValueError, KeyError, TypeError):
            report.fail(f"审计条目第 {number} 行格式错误", f"audit entry line {number} is malformed")
            bad += 1
            continue
        if idx <= previous:
            report.fail(f"审计条目顺序被改动：第 {number} 行序号 {idx} 不大于前一条 {previous}",
                        f"audit entries reordered: line {number} has idx {idx} after {previous}")
            bad += 1
        previous = max(previous, idx)
        if entry.get("idx") != idx:
            report.fail(f"审计条目 {idx} 的内容序号为 {entry.get('idx')}", f"audit entry {idx} says idx {entry.get('idx')}")
            bad += 1
        checkpoint = checkpoints.get(size)
        if checkpoint is None or not V.verify_inclusion(V.leaf_hash(body), idx, checkpoint.size, proof, checkpoint.root):
            report.fail(f"审计条目 {idx} 的包含证明不成立（条目或证明被改动）",
                        f"inclusion proof of audit entry {idx} fails (entry or proof altered)")
            bad += 1
            continue
        entries[idx] = entry
    if not bad:
        report.ok(f"{count} 条审计条目按序排列，包含证明全部成立", f"{count} audit entries in order, every inclusion proof holds")
    return entries


def _lines(source: Source, name: str) -> Iterator[str]:
    """The file's lines, read in chunks (memory stays flat however many entries there are)."""
    rest = b""
    for chunk in source.chunks(name):
        rest += chunk
        *lines, rest = rest.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", errors="replace")
    if rest:
        yield rest.decode("utf-8", errors="replace")


def _seal(source: Source, index: Dict[str, Any], key: Any, latest: Any, report: Report) -> None:
    seal = _json(source, "seal.json", report)
    if not isinstance(seal, dict):
        return
    try:
        result = V.verify_inclusion_proof_file(seal["proof"], key)
    except (V.VerificationError, KeyError) as exc:
        zh, en = (exc.zh, exc.en) if isinstance(exc, V.VerificationError) else ("缺少证明", "no proof")
        report.fail(f"封存条目的证明无效：{zh}", f"the seal entry's proof is invalid: {en}")
        return
    entry = result.entry or {}
    payload = entry.get("payload", {})
    index_sha = hashlib.sha256(source.read("index.json")).hexdigest()
    if entry.get("tag") != SEAL_TAG or payload.get("package") != index.get("package"):
        report.fail("封存条目不是本包的封存记录", "the seal entry is not this package's seal")
    elif payload.get("index_sha256") != index_sha:
        report.fail("index.json 与审计日志中封存的哈希不符（清单或索引被改动）",
                    "index.json does not match the hash sealed in the audit log (manifest or index altered)")
    else:
        report.ok(f"index.json 已封存于审计条目 {result.index}（检查点大小 {result.checkpoint.size}）",
                  f"index.json is sealed by audit entry {result.index} (checkpoint size {result.checkpoint.size})")
    c = seal.get("consistency", {})
    proof = [base64.b64decode(h) for h in c.get("proof", [])]
    if latest is None or c.get("from") != latest.size or c.get("to") != result.checkpoint.size or \
            not V.verify_consistency(latest.size, result.checkpoint.size, latest.root, result.checkpoint.root, proof):
        report.fail("包检查点到封存检查点的一致性证明不成立", "consistency from the package checkpoint to the seal checkpoint fails")


def _jsonl_by_item(source: Source, name: str, report: Report) -> Dict[str, Any]:
    """A JSON Lines member keyed by each line's ``item`` (custody chains, capture signatures)."""
    found: Dict[str, Any] = {}
    if name not in source.files:
        return found
    for number, line in enumerate(_lines(source, name), 1):
        if not line:
            continue
        try:
            row = json.loads(line)
            found[row["item"]] = row
        except (ValueError, KeyError, TypeError):
            report.fail(f"{name} 第 {number} 行格式错误", f"{name} line {number} is malformed")
    return found


def _custody_problem(row: Any, path: Optional[str], package: Any) -> Optional[Tuple[str, str]]:
    """A gap in the chain, or an archived original whose chain does not record this export."""
    events = row.get("events") if isinstance(row, dict) else None
    if not isinstance(events, list):
        return ("缺少保管链记录", "custody history missing")
    if [e.get("seq") for e in events] != list(range(1, len(events) + 1)):
        return ("保管链序号不连续", "custody chain is not numbered 1, 2, 3… without gaps")
    if path and not any(e.get("action") == "exported" and (e.get("detail") or {}).get("package") == package
                        for e in events):
        return ("保管链未记录本包的导出事件", "custody history does not record its export in this package")
    return None


def _evidence(source: Source, package: Dict[str, Any], listed: Dict[str, Any], hashed: Dict[str, Tuple[str, int]],
              entries: Dict[int, Dict[str, Any]], ed_verify: Callable[[bytes, bytes, bytes], bool],
              report: Report) -> None:
    index = _json(source, "evidence/index.json", report) or {}
    devices = _json(source, "keys/devices.json", report) or {}
    custody: Dict[str, Dict[str, Any]] = {}
    captures: Dict[str, Dict[str, Any]] = {}
    for member in {i.get("custody") for i in index.get("items", []) if i.get("custody") in listed}:
        custody.update(_jsonl_by_item(source, member, report))
    for member in {i.get("capture_signature") for i in index.get("items", []) if i.get("capture_signature") in listed}:
        captures.update(_jsonl_by_item(source, member, report))
    logged: Dict[str, set] = {}
    for entry in entries.values():
        digest = entry.get("payload", {}).get("sha256")
        for subject in entry.get("subjects", []):
            if subject.startswith("evidence:") and digest:
                logged.setdefault(subject[9:], set()).add(digest)
    items, bad = index.get("items", []), 0
    for item in items:
        no = item.get("no")
        path = item.get("file")
        if path:
            digest = hashed.get(path, (None, 0))[0]
            if digest is not None and digest != item.get("sha256"):
                report.fail(f"证据 {no} 的文件哈希与采集清单不符", f"evidence {no}: file hash differs from its capture manifest")
                bad += 1
            if item.get("sha256") not in logged.get(item.get("id"), set()):
                report.fail(f"证据 {no} 的哈希未记录在审计日志中", f"evidence {no}: its hash is not recorded in the audit log")
                bad += 1
        problem = _custody_problem(custody.get(item.get("id")), path, package.get("package"))
        if problem:
            report.fail(f"证据 {no}：{problem[0]}", f"evidence {no}: {problem[1]}")
            bad += 1
        if item.get("capture_signature"):
            capture = captures.get(item.get("id")) or {}
            try:
                signed = base64.b64decode(capture["signed_bytes"], validate=True)
                signature = base64.b64decode(capture["signature"], validate=True)
                public = base64.b64decode(devices[capture["device_id"]]["public_key"], validate=True)
                manifest = json.loads(signed.decode("utf-8"))
            except (KeyError, ValueError, TypeError):
                report.fail(f"证据 {no} 的设备签名记录不完整", f"evidence {no}: device signature record incomplete")
                bad += 1
                continue
            if not ed_verify(public, signed, signature):
                report.fail(f"证据 {no} 的设备采集签名无效", f"evidence {no}: device capture signature invalid")
                bad += 1
            elif manifest.get("sha256") != item.get("sha256"):
                report.fail(f"证据 {no} 的签名清单哈希与证据不符", f"evidence {no}: signed manifest is for other bytes")
                bad += 1
        elif path:
            report.warn(f"证据 {no} 没有设备采集签名", f"evidence {no} has no device capture signature")
    if not bad:
        report.ok(f"{len(items)} 件证据：哈希已入审计日志，设备签名有效，保管链齐全并记录本包导出",
                  f"{len(items)} evidence items: hashes in the audit log, device signatures valid, custody chains "
                  "complete and recording this export")


def _acknowledgements(source: Source, ed_verify: Callable[[bytes, bytes, bytes], bool], report: Report) -> None:
    for name in sorted(n for n in source.files if n.startswith("acknowledgements/") and n.endswith(".json")):
        try:
            ack = json.loads(source.read(name).decode("utf-8"))
            summary = base64.b64decode(ack["summary"], validate=True)
        except (KeyError, ValueError):
            report.fail(f"回执 {name} 格式错误", f"receipt {name} is malformed")
            continue
        if hashlib.sha256(summary).hexdigest() != ack.get("summary_sha256"):
            report.fail(f"回执 {name} 的摘要哈希不符", f"receipt {name}: summary hash differs")
        elif ack.get("method") == "signature":
            ok = ed_verify(base64.b64decode(ack.get("public_key", "")), summary, base64.b64decode(ack.get("signature", "")))
            if ok:
                report.ok(f"签收回执 {name} 的签名有效", f"receipt {name}: signature valid")
            else:
                report.fail(f"签收回执 {name} 的签名无效", f"receipt {name}: signature invalid")
        else:
            report.ok(f"签收回执 {name}（{ack.get('method')}）已记录", f"receipt {name} ({ack.get('method')}) recorded")


# ---- command line -----------------------------------------------------------------------------

def open_source(paths: List[str]) -> Source:
    source = Source()
    if not paths:
        here = os.path.dirname(os.path.abspath(__file__))
        paths = [here]
    for path in paths:
        if os.path.isdir(path):
            zips = sorted(n for n in os.listdir(path) if n.endswith(".zip"))
            if "index.json" in os.listdir(path) or "manifest.json" in os.listdir(path) or not zips:
                source.add_dir(path)
            else:
                for name in zips:
                    source.add_zip(os.path.join(path, name))
        else:
            source.add_zip(path)
    return source


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="校验移送证据包 / Verify an evidence package offline")
    parser.add_argument("paths", nargs="*", help="解压目录或 ZIP 分卷 / unzipped folder or ZIP volume(s)")
    parser.add_argument("--key", help="指定日志公钥（vkey）/ pin the log public key (vkey)")
    parser.add_argument("--threads", type=int, default=0, help="哈希线程数 / hashing threads")
    args = parser.parse_args(argv)
    print("秦岭移动执法 移送证据包校验 / Qinling Field evidence package verification")
    try:
        source = open_source(args.paths)
    except (OSError, zipfile.BadZipFile) as exc:
        print(f"失败：无法读取 {exc}\nFAILED: cannot read {exc}")
        return 1
    report = verify(source, args.key, args.threads)
    report.print()
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Offline verifier of the Qinling Field audit log (秦岭移动执法 执法全过程记录 离线校验工具).

One file, Python standard library only, so it can ship inside export packages and run on any
machine with Python 3.9+:

    python3 verifier.py entry-42.tlog-proof --key 'shangluo.qinling-field/audit+1a2b3c4d+AaBb…'

Exit code 0 when the proof holds, 1 when it does not (or the file is malformed); the report is
printed in Chinese and English. Functions for programs: ``verify_checkpoint``,
``verify_inclusion_proof_file``, ``verify_consistency`` (and ``verify_cosignature``).

Formats (https://c2sp.org): the checkpoint is a tlog-checkpoint signed note

    <origin>\\n<size>\\n<base64 root hash>\\n\\n— <key name> <base64(4-byte key hash || signature)>\\n

signed by the log's Ed25519 key, whose key name is the origin and whose key hash is
SHA-256(name || 0x0A || 0x01 || public key)[:4] (signed-note). Witness cosignatures are extra
signature lines per tlog-cosignature/v1: key hash with algorithm byte 0x04 and signature bytes
timestamp (u64 big-endian) || Ed25519 over "cosignature/v1\\ntime <t>\\n" + checkpoint body.
The proof file is tlog-proof@v1 with one choice of ours: the ``extra`` line carries the entry's
canonical JSON body, so the leaf hash SHA-256(0x00 || body) is recomputed here rather than taken
on trust, and the body's ``idx`` must equal the ``index`` line. Keys are given as vkeys
(``<name>+<hex key hash>+<base64(0x01 || 32-byte key)>``) or as the bare base64 public key.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import sys
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

PROOF_HEADER = "c2sp.org/tlog-proof@v1"
COSIGNATURE_HEADER = "cosignature/v1"
ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
EM_DASH = "\u2014"


class VerificationError(Exception):
    """Verification failed; ``zh`` and ``en`` say why, ``code`` is stable for programs."""

    def __init__(self, code: str, zh: str, en: str) -> None:
        super().__init__(en)
        self.code, self.zh, self.en = code, zh, en


def _fail(code: str, zh: str, en: str) -> VerificationError:
    return VerificationError(code, zh, en)


# ---- Ed25519 verification (RFC 8032 §6 reference style; verify only, no secrets here) ---------

_P = 2 ** 255 - 19
_Q = 2 ** 252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _point_add(a: tuple, b: tuple) -> tuple:
    x1 = (a[1] - a[0]) * (b[1] - b[0]) % _P
    x2 = (a[1] + a[0]) * (b[1] + b[0]) % _P
    c = 2 * a[3] * b[3] * _D % _P
    d = 2 * a[2] * b[2] % _P
    e, f, g, h = x2 - x1, d - c, d + c, x2 + x1
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _point_mul(s: int, point: tuple) -> tuple:
    result = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            result = _point_add(result, point)
        point = _point_add(point, point)
        s >>= 1
    return result


def _point_equal(a: tuple, b: tuple) -> bool:
    return (a[0] * b[2] - b[0] * a[2]) % _P == 0 and (a[1] * b[2] - b[1] * a[2]) % _P == 0


def _recover_x(y: int, sign: int) -> Optional[int]:
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P != 0:
        return None
    if (x & 1) != sign:
        x = _P - x
    return x


def _decompress(data: bytes) -> Optional[tuple]:
    if len(data) != 32:
        return None
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % _P)


_GY = 4 * pow(5, _P - 2, _P) % _P
_GX = _recover_x(_GY, 0)
_G = (_GX, _GY, 1, _GX * _GY % _P)


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    if len(public_key) != 32 or len(signature) != 64:
        return False
    a = _decompress(public_key)
    r = _decompress(signature[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= _Q:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public_key + message).digest(), "little") % _Q
    return _point_equal(_point_mul(s, _G), _point_add(r, _point_mul(h, a)))


# ---- RFC 9162 Merkle verification -------------------------------------------------------------

def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(leaf: bytes, index: int, size: int, proof: List[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: List[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: the tree of ``new_size`` leaves extends the tree of ``old_size``."""
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = ([old_root] if old_size & (old_size - 1) == 0 else []) + list(proof)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = _node(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


# ---- signed notes, keys, checkpoints ----------------------------------------------------------

def key_hash(name: str, alg: int, public_key: bytes) -> bytes:
    """signed-note key hash: SHA-256(name || "\\n" || alg || key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public_key).digest()[:4]


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _fail("malformed", f"{what} 不是有效的 base64", f"{what} is not valid base64") from None


def _valid_name(name: str) -> bool:
    return bool(name) and not any(c.isspace() or c == "+" for c in name)


@dataclass(frozen=True)
class VerifierKey:
    name: str
    public_key: bytes
    alg: int = ALG_ED25519

    @property
    def key_hash(self) -> bytes:
        return key_hash(self.name, self.alg, self.public_key)

    def vkey(self) -> str:
        raw = bytes([self.alg]) + self.public_key
        return f"{self.name}+{self.key_hash.hex()}+{base64.b64encode(raw).decode()}"


def parse_key(text: str, default_name: Optional[str] = None, alg: int = ALG_ED25519) -> VerifierKey:
    """A vkey ``name+hash+base64(alg||key)``, or a bare base64 32-byte key named ``default_name``."""
    text = text.strip()
    try:
        bare = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        bare = b""
    parts = text.split("+", 2)  # names and key hashes hold no "+", base64 may
    if len(bare) != 32 and len(parts) == 3:
        name, hash_hex, material = parts
        if not _valid_name(name) or len(hash_hex) != 8:
            raise _fail("bad_key", "vkey 格式错误", "malformed vkey")
        raw = _b64(material, "vkey")
        if len(raw) != 33 or raw[0] not in (ALG_ED25519, ALG_COSIGNATURE_V1):
            raise _fail("bad_key", "vkey 不是 Ed25519 公钥", "the vkey is not an Ed25519 key")
        key = VerifierKey(name, raw[1:], raw[0])
        if key.key_hash.hex() != hash_hex.lower():
            raise _fail("bad_key", "vkey 的密钥哈希不符", "the vkey's key hash does not match its key")
        return key
    raw = _b64(text, "public key")
    if len(raw) != 32:
        raise _fail("bad_key", "公钥须为 32 字节 Ed25519 公钥", "the public key must be a 32-byte Ed25519 key")
    if not default_name:
        raise _fail("bad_key", "裸公钥需要密钥名", "a bare public key needs a key name")
    return VerifierKey(default_name, raw, alg)


@dataclass(frozen=True)
class Signature:
    name: str
    key_hash: bytes
    signature: bytes  # without the 4-byte key hash

    def line(self) -> str:
        return f"{EM_DASH} {self.name} {base64.b64encode(self.key_hash + self.signature).decode()}\n"


def parse_signature_line(line: str) -> Signature:
    line = line.rstrip("\n")
    prefix = EM_DASH + " "
    if not line.startswith(prefix):
        raise _fail("malformed", "签名行须以“— ”开头", "a signature line must start with an em dash and a space")
    name, _, encoded = line[len(prefix):].partition(" ")
    if not _valid_name(name) or not encoded or " " in encoded:
        raise _fail("malformed", "签名行格式错误", "malformed signature line")
    raw = _b64(encoded, "signature")
    if len(raw) < 5:
        raise _fail("malformed", "签名过短", "the signature is too short")
    return Signature(name, raw[:4], raw[4:])


def parse_note(text: str) -> Tuple[str, List[Signature]]:
    """Split a signed note into its body (ending in a newline) and its signatures."""
    if not text.endswith("\n"):
        raise _fail("malformed", "签名文本须以换行结尾", "a signed note must end with a newline")
    cut = text.rfind("\n\n")
    if cut < 0:
        raise _fail("malformed", "签名文本缺少正文与签名之间的空行",
                    "the signed note lacks the blank line between text and signatures")
    body, sig_text = text[:cut + 1], text[cut + 2:]
    lines = sig_text.split("\n")[:-1]
    if not lines:
        raise _fail("malformed", "签名文本没有签名", "the signed note has no signatures")
    return body, [parse_signature_line(line) for line in lines]


@dataclass
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: List[str]
    body: str
    signatures: List[Signature] = field(default_factory=list)
    cosigned_at: dict = field(default_factory=dict)  # witness name -> timestamp, once verified


def parse_checkpoint_body(body: str) -> Checkpoint:
    lines = body.split("\n")[:-1]
    if len(lines) < 3 or any(not line for line in lines):
        raise _fail("malformed", "检查点须有来源、大小、根哈希三行", "a checkpoint needs origin, size and root lines")
    origin, size_text, root_text = lines[:3]
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise _fail("malformed", "检查点大小不是十进制整数", "the checkpoint size is not a decimal integer")
    root = _b64(root_text, "root hash")
    if len(root) != 32:
        raise _fail("malformed", "根哈希须为 32 字节", "the root hash must be 32 bytes")
    return Checkpoint(origin, int(size_text), root, lines[3:], body)


def parse_checkpoint(text: str) -> Checkpoint:
    body, signatures = parse_note(text)
    checkpoint = parse_checkpoint_body(body)
    checkpoint.signatures = signatures
    return checkpoint


def verify_checkpoint(text: str, key: VerifierKey, origin: Optional[str] = None) -> Checkpoint:
    """Parse a checkpoint and check the log's signature (and origin, when given)."""
    checkpoint = parse_checkpoint(text)
    if origin is not None and checkpoint.origin != origin:
        raise _fail("wrong_origin", f"检查点来源为 {checkpoint.origin}，应为 {origin}",
                    f"checkpoint origin is {checkpoint.origin}, expected {origin}")
    mine = [s for s in checkpoint.signatures if s.name == key.name and s.key_hash == key.key_hash]
    if not mine:
        raise _fail("no_signature", "检查点上没有该日志密钥的签名",
                    "the checkpoint carries no signature by the log key")
    if not any(ed25519_verify(key.public_key, checkpoint.body.encode(), s.signature) for s in mine):
        raise _fail("bad_signature", "检查点签名无效", "the checkpoint signature is invalid")
    return checkpoint


def cosignature_message(body: str, timestamp: int) -> bytes:
    return f"{COSIGNATURE_HEADER}\ntime {timestamp}\n".encode() + body.encode()


def verify_cosignature(checkpoint: Checkpoint, signature: Signature, witness: VerifierKey) -> int:
    """Check one tlog-cosignature/v1 line; returns its timestamp."""
    if signature.name != witness.name or signature.key_hash != key_hash(witness.name, ALG_COSIGNATURE_V1,
                                                                        witness.public_key):
        raise _fail("wrong_witness", "副署不属于该见证方密钥", "the cosignature is not by this witness key")
    if len(signature.signature) != 72:
        raise _fail("malformed", "副署须为 8 字节时间戳加 64 字节签名",
                    "a cosignature must be an 8-byte timestamp and a 64-byte signature")
    timestamp = int.from_bytes(signature.signature[:8], "big")
    if timestamp >= 2 ** 63:
        raise _fail("malformed", "副署时间戳超出范围", "the cosignature timestamp is out of range")
    if not ed25519_verify(witness.public_key, cosignature_message(checkpoint.body, timestamp),
                          signature.signature[8:]):
        raise _fail("bad_cosignature", "见证方副署无效", "the witness cosignature is invalid")
    return timestamp


# ---- tlog-proof files -------------------------------------------------------------------------

@dataclass
class ProofFile:
    index: int
    proof: List[bytes]
    checkpoint_text: str
    extra: Optional[bytes] = None


def parse_proof_file(text: str) -> ProofFile:
    lines = text.split("\n")
    if not lines or lines[0] != PROOF_HEADER:
        raise _fail("malformed", f"首行须为 {PROOF_HEADER}", f"the first line must be {PROOF_HEADER}")
    pos, extra = 1, None
    if pos < len(lines) and lines[pos].startswith("extra "):
        extra = _b64(lines[pos][6:], "extra")
        pos += 1
    if pos >= len(lines) or not lines[pos].startswith("index "):
        raise _fail("malformed", "缺少 index 行", "the index line is missing")
    index_text = lines[pos][6:]
    if not index_text.isdigit() or (index_text != "0" and index_text.startswith("0")):
        raise _fail("malformed", "index 不是十进制整数", "the index is not a decimal integer")
    pos += 1
    proof = []
    while pos < len(lines) and lines[pos]:
        h = _b64(lines[pos], "proof hash")
        if len(h) != 32:
            raise _fail("malformed", "证明哈希须为 32 字节", "each proof hash must be 32 bytes")
        proof.append(h)
        pos += 1
    if pos >= len(lines):
        raise _fail("malformed", "证明之后缺少空行与检查点", "the blank line and checkpoint after the proof are missing")
    return ProofFile(int(index_text), proof, "\n".join(lines[pos + 1:]), extra)


@dataclass
class ProofResult:
    index: int
    checkpoint: Checkpoint
    entry: Optional[dict]
    witnesses: dict  # witness name -> cosignature timestamp


def verify_inclusion_proof_file(text: str, key: VerifierKey, entry_body: Optional[bytes] = None,
                                witnesses: Tuple[VerifierKey, ...] = (), origin: Optional[str] = None,
                                ) -> ProofResult:
    """Check a tlog-proof file: the checkpoint signature, then the entry's inclusion under it."""
    parsed = parse_proof_file(text)
    body = entry_body if entry_body is not None else parsed.extra
    if body is None:
        raise _fail("no_entry", "证明文件未附条目内容，请另行提供", "the proof carries no entry body; supply one")
    checkpoint = verify_checkpoint(parsed.checkpoint_text, key, origin)
    entry = None
    try:
        entry = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        entry = None
    if isinstance(entry, dict) and "idx" in entry and entry["idx"] != parsed.index:
        raise _fail("wrong_index", f"条目内容的序号 {entry['idx']} 与证明序号 {parsed.index} 不符",
                    f"the entry says idx {entry['idx']} but the proof is for index {parsed.index}")
    if not verify_inclusion(leaf_hash(body), parsed.index, checkpoint.size, parsed.proof, checkpoint.root):
        raise _fail("not_included", f"条目 {parsed.index} 不在检查点（大小 {checkpoint.size}）所证明的记录树中",
                    f"entry {parsed.index} is not included in the tree of the checkpoint (size {checkpoint.size})")
    seen = {}
    for witness in witnesses:
        for sig in checkpoint.signatures:
            if sig.name == witness.name:
                seen[witness.name] = verify_cosignature(checkpoint, sig, witness)
        if witness.name not in seen:
            raise _fail("no_cosignature", f"缺少见证方 {witness.name} 的副署",
                        f"no cosignature by witness {witness.name}")
    return ProofResult(parsed.index, checkpoint, entry if isinstance(entry, dict) else None, seen)


# ---- command line -----------------------------------------------------------------------------

def _read_key_arg(value: str) -> str:
    try:
        with open(value, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return value


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description="校验执法全过程记录的包含证明 / Verify an audit-log inclusion proof (tlog-proof)")
    parser.add_argument("proof", help="tlog-proof 文件 / proof file")
    parser.add_argument("--key", required=True, help="日志公钥（vkey 或 base64）或其文件 / log public key or its file")
    parser.add_argument("--origin", help="期望的检查点来源 / expected checkpoint origin")
    parser.add_argument("--entry", help="条目内容文件（证明未附时）/ entry body file if not in the proof")
    parser.add_argument("--witness", action="append", default=[],
                        help="须有其副署的见证方 vkey（可多次）/ witness vkey that must have cosigned")
    args = parser.parse_args(argv)
    try:
        with open(args.proof, encoding="utf-8", newline="") as handle:
            text = handle.read()
        entry_body = None
        if args.entry:
            with open(args.entry, "rb") as handle:
                entry_body = handle.read()
        checkpoint_origin = None
        try:
            checkpoint_origin = parse_checkpoint(parse_proof_file(text).checkpoint_text).origin
        except VerificationError:
            pass
        key = parse_key(_read_key_arg(args.key), default_name=args.origin or checkpoint_origin)
        witnesses = tuple(parse_key(_read_key_arg(w), alg=ALG_COSIGNATURE_V1) for w in args.witness)
        result = verify_inclusion_proof_file(text, key, entry_body, witnesses, args.origin)
    except OSError as exc:
        print(f"失败：无法读取文件 {exc.filename}\nFAILED: cannot read {exc.filename}")
        return 1
    except VerificationError as exc:
        print(f"失败：{exc.zh}\nFAILED: {exc.en}")
        return 1
    cp = result.checkpoint
    root = base64.b64encode(cp.root).decode()
    print(f"通过：条目 {result.index} 包含在 {cp.origin} 大小为 {cp.size} 的记录树中（根 {root}），检查点签名有效。")
    print(f"OK: entry {result.index} is included in the {cp.origin} tree of size {cp.size} (root {root}); "
          "the checkpoint signature is valid.")
    if result.entry:
        print(f"条目 / entry: {result.entry.get('tag')} @ {result.entry.get('time')}")
    for name, timestamp in result.witnesses.items():
        print(f"见证方副署有效 / witness cosignature valid: {name} (time {timestamp})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Signed checkpoints of the audit log, witness cosignatures and tlog-proof export.

Formats follow C2SP (tlog-checkpoint, signed-note, tlog-cosignature/v1, tlog-proof@v1); the
parsing and the format choices live in ``verifier.py`` (standard library only, shipped to
outsiders) so that the server and the offline verifier read the same bytes the same way:

* The log key is Ed25519; its signed-note key name is the origin (config ``AUDIT_LOG_ORIGIN``),
  its PEM file is ``AUDIT_LOG_KEY`` (generated in the instance folder on first use).
* A checkpoint has no extension lines. A new one is stored only when the head moved since the
  last one, so the periodic task does not pile up copies; every stored checkpoint is kept.
* Served checkpoints carry the log signature followed by every verified witness cosignature.
* The tlog-proof ``extra`` line is the entry's canonical JSON body (see ``verifier.py``).
"""
from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from server.core import errors
from server.core.access import Principal
from server.modules.audit import operations as audit
from server.modules.audit import verifier
from server.modules.audit.models import AuditCheckpoint, AuditCosignature, AuditWitness

if TYPE_CHECKING:  # cryptography is imported where a key is used (8 MiB a web worker rarely needs)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

NoCheckpoint = errors.error_code("audit.no_checkpoint", 404, "尚未发布检查点", "No checkpoint has been published yet")
CheckpointNotFound = errors.error_code("audit.checkpoint_not_found", 404, "检查点不存在", "No such checkpoint")
EntryNotFound = errors.error_code("audit.entry_not_found", 404, "记录条目不存在", "No such audit entry")
EntryNotCheckpointed = errors.error_code(
    "audit.entry_not_checkpointed", 409, "该条目尚未被任何检查点覆盖，请先发布检查点",
    "No checkpoint covers this entry yet; publish one first")
MalformedCosignature = errors.error_code(
    "audit.malformed_cosignature", 400, "副署行格式错误", "The cosignature line is malformed")
InvalidCosignature = errors.error_code(
    "audit.invalid_cosignature", 422, "副署验证失败", "The cosignature does not verify")
UnknownWitness = errors.error_code("audit.unknown_witness", 422, "未登记的见证方", "The witness is not registered")
WitnessExists = errors.error_code("audit.witness_exists", 409, "见证方名称已登记", "A witness with this name exists")
BadWitnessKey = errors.error_code("audit.bad_witness_key", 422, "见证方公钥无效", "The witness public key is invalid")


# ---- the log key ------------------------------------------------------------------------------

def key_path(config: Any) -> Path:
    configured = config.get("AUDIT_LOG_KEY")
    return Path(configured) if configured else Path(current_app.instance_path) / "audit-log-key.pem"


def log_private_key(config: Any) -> Ed25519PrivateKey:
    """The log's signing key, generated (mode 0600) on first use when the file does not exist."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = key_path(config)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        try:
            with open(path, "xb") as handle:  # exclusive: two workers never make two keys
                handle.write(pem)
            path.chmod(0o600)
        except FileExistsError:
            pass
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise RuntimeError(f"{path} is not an Ed25519 private key")
    return key


def log_verifier_key(config: Any) -> verifier.VerifierKey:
    from cryptography.hazmat.primitives import serialization

    raw = log_private_key(config).public_key().public_bytes(serialization.Encoding.Raw,
                                                            serialization.PublicFormat.Raw)
    return verifier.VerifierKey(config["AUDIT_LOG_ORIGIN"], raw)


def sign_checkpoint(origin: str, size: int, root: bytes, key: Ed25519PrivateKey) -> str:
    from cryptography.hazmat.primitives import serialization

    body = f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    line = verifier.Signature(origin, verifier.key_hash(origin, verifier.ALG_ED25519, raw),
                              key.sign(body.encode())).line()
    return body + "\n" + line


def check_log_signature(note: str, key: verifier.VerifierKey) -> verifier.Checkpoint:
    """Like ``verifier.verify_checkpoint`` but with the fast C implementation of Ed25519."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    checkpoint = verifier.parse_checkpoint(note)
    public = Ed25519PublicKey.from_public_bytes(key.public_key)
    for sig in checkpoint.signatures:
        if sig.name == key.name and sig.key_hash == key.key_hash:
            try:
                public.verify(sig.signature, checkpoint.body.encode())
                return checkpoint
            except InvalidSignature:
                pass
    raise verifier.VerificationError("bad_signature", "检查点签名无效", "the checkpoint signature is invalid")


# ---- publishing -------------------------------------------------------------------------------

def publish(session: Session, config: Any) -> AuditCheckpoint:
    """Sign the current head; returns the latest checkpoint unchanged when the head has not moved."""
    size, root = audit.head(session)
    latest = latest_checkpoint(session)
    if latest is not None and latest.size == size and latest.root_hash == root:
        return latest
    from server.modules.audit import rollback

    rollback.require_none_pending(session)  # a restore behind a published checkpoint: an admin first
    key = log_private_key(config)
    checkpoint = AuditCheckpoint(size=size, root_hash=root,
                                 note=sign_checkpoint(config["AUDIT_LOG_ORIGIN"], size, root, key),
                                 key_id=log_verifier_key(config).key_hash.hex())
    session.add(checkpoint)
    session.flush()
    return checkpoint


def latest_checkpoint(session: Session) -> AuditCheckpoint | None:
    return session.scalars(sa.select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1)).first()


def get_checkpoint(session: Session, checkpoint_id: int) -> AuditCheckpoint:
    # ids past the INTEGER column would make PostgreSQL fail the query rather than find nothing
    checkpoint = session.get(AuditCheckpoint, checkpoint_id) if 0 < checkpoint_id < 2 ** 31 else None
    if checkpoint is None:
        raise CheckpointNotFound(checkpoint_id=checkpoint_id)
    return checkpoint


def served_note(session: Session, checkpoint: AuditCheckpoint) -> str:
    """The checkpoint text with every stored witness cosignature appended."""
    lines = session.scalars(sa.select(AuditCosignature.signature_line)
                            .where(AuditCosignature.checkpoint_id == checkpoint.id)
                            .order_by(AuditCosignature.id))
    return checkpoint.note + "".join(line + "\n" for line in lines)


# ---- witnesses --------------------------------------------------------------------------------

def add_witness(session: Session, name: str, public_key: str, added_by_id: int | None) -> AuditWitness:
    """Register a cosigner; ``public_key`` is a vkey (type 0x04) or the bare base64 key."""
    try:
        key = verifier.parse_key(public_key, default_name=name, alg=verifier.ALG_COSIGNATURE_V1)
    except verifier.VerificationError as exc:
        raise BadWitnessKey(exc.en) from None
    if key.name != name:
        raise BadWitnessKey(f"the vkey is named {key.name}, not {name}")
    if session.scalar(sa.select(AuditWitness.id).where(AuditWitness.name == name)) is not None:
        raise WitnessExists(name=name)
    witness = AuditWitness(name=name, public_key=key.public_key, added_by_id=added_by_id)
    session.add(witness)
    session.flush()
    audit.record(session, "admin:audit_witness:added", subjects={"audit_witness": witness.id},
                 payload={"name": name, "public_key": base64.b64encode(key.public_key).decode()})
    return witness


def witness_vkey(witness: AuditWitness) -> str:
    return verifier.VerifierKey(witness.name, witness.public_key, verifier.ALG_COSIGNATURE_V1).vkey()


def add_cosignature(session: Session, checkpoint: AuditCheckpoint, line: str) -> AuditCosignature:
    """Store a witness's tlog-cosignature/v1 line after checking it against the registered key."""
    try:
        signature = verifier.parse_signature_line(line.strip("\n"))
    except verifier.VerificationError as exc:
        raise MalformedCosignature(exc.en) from None
    witness = session.scalar(sa.select(AuditWitness).where(AuditWitness.name == signature.name))
    if witness is None:
        raise UnknownWitness(name=signature.name)
    parsed = verifier.parse_checkpoint(checkpoint.note)
    key = verifier.VerifierKey(witness.name, witness.public_key, verifier.ALG_COSIGNATURE_V1)
    try:
        timestamp = verifier.verify_cosignature(parsed, signature, key)
    except verifier.VerificationError as exc:
        raise InvalidCosignature(exc.en) from None
    canonical = signature.line().rstrip("\n")
    existing = session.scalar(sa.select(AuditCosignature).where(AuditCosignature.checkpoint_id == checkpoint.id,
                                                                AuditCosignature.signature_line == canonical))
    if existing is not None:
        return existing  # idempotent: a witness may resend
    cosignature = AuditCosignature(
        checkpoint_id=checkpoint.id, witness_name=witness.name, signature_line=canonical,
        details={"timestamp": timestamp, "key_id": signature.key_hash.hex(),
                 "time": dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat()})
    session.add(cosignature)
    session.flush()
    audit.record(session, "public:audit_checkpoint:cosigned",
                 subjects={"audit_checkpoint": checkpoint.id, "audit_witness": witness.id},
                 payload={"size": checkpoint.size, "witness": witness.name, "timestamp": timestamp},
                 actor=audit.Actor("anonymous"))
    return cosignature


# ---- tlog-proof export ------------------------------------------------------------------------

def proof_file(session: Session, index: int, checkpoint: AuditCheckpoint | None = None, *,
               reader: Principal) -> str:
    """A c2sp.org/tlog-proof@v1 text for entry ``index`` under ``checkpoint`` (default: latest). The
    file carries the entry's body, so it is read through the seals: a sealed entry is not found."""
    entry = audit.read_entry(session, index, reader)
    if entry is None:
        raise EntryNotFound(index=index)
    if checkpoint is None:
        checkpoint = latest_checkpoint(session)
        if checkpoint is None or checkpoint.size <= index:
            raise EntryNotCheckpointed(index=index)
    proof = audit.inclusion_proof_stored(session, index, checkpoint.size)
    lines = [verifier.PROOF_HEADER, f"extra {base64.b64encode(entry.body).decode()}", f"index {index}"]
    lines += [base64.b64encode(h).decode() for h in proof]
    return "\n".join(lines) + "\n\n" + served_note(session, checkpoint)

"""Full check of the stored audit log: what ``enforce audit verify`` runs.

One pass over the entries in index order, streamed (``yield_per``), never all rows in memory:

1. indices are 0..n-1 with no gap, and each body's ``idx`` equals its row (no reordering);
2. each stored leaf hash is SHA-256(0x00 || body), and the row's tag/actor/supersedes/time
   columns agree with the body they were copied from;
3. every stored node equals the hash of its two stored children (checked bottom-up as the
   leaves arrive, so a mismatch names the smallest altered subtree), no node is missing and
   no extra node exists, and the head's size and root equal the recomputed tree;
4. every stored checkpoint is signed by the log key, states the root the entries give at its
   size, and is consistent with the previous checkpoint (RFC 9162 proof from the stored tree).

Problems are reported sorted by the first entry they concern, so the first line names the
first bad entry. A node mismatch can only name the leaf range under that node.
"""
from __future__ import annotations

import json
from hashlib import sha256
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.modules.audit import merkle, verifier
from server.modules.audit import operations as audit
from server.modules.audit.models import AuditCheckpoint, AuditEntry, AuditHead, AuditNode

CHUNK_LEVEL = 16  # nodes up to this level are fetched per aligned chunk of 2^16 leaves
MAX_PROBLEMS = 50


@dataclass(order=True)
class Problem:
    entry: int  # first entry concerned; checkpoints and the head sort after the entries they cover
    zh: str = field(compare=False)
    en: str = field(compare=False)

    def __str__(self) -> str:
        return f"{self.zh} / {self.en}"


@dataclass
class Report:
    size: int = 0
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, entry: int, zh: str, en: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(entry, zh, en))


TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # the body's "time", as entry_body writes it


def _stream(session: Session, batch: int) -> Any:
    """(idx, body, leaf_hash, tag, actor_kind, actor_id, supersedes, time text) in index order,
    as plain Core rows from a server-side cursor. PostgreSQL formats the time itself, so no
    timestamp is decoded and re-formatted in Python for every row."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        time = sa.func.to_char(sa.func.timezone("UTC", AuditEntry.recorded_at), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    else:
        time = AuditEntry.recorded_at
    statement = (sa.select(AuditEntry.idx, AuditEntry.body, AuditEntry.leaf_hash, AuditEntry.tag,
                           AuditEntry.actor_kind, AuditEntry.actor_id, AuditEntry.supersedes, time)
                 .order_by(AuditEntry.idx))
    return connection.execution_options(yield_per=batch).execute(statement)


def _nodes_in_chunk(session: Session, start: int, end: int) -> dict[tuple[int, int], bytes]:
    ranges = [sa.and_(AuditNode.level == level, AuditNode.idx >= start >> level, AuditNode.idx < end >> level)
              for level in range(1, CHUNK_LEVEL + 1)]
    rows = session.execute(sa.select(AuditNode.level, AuditNode.idx, AuditNode.hash).where(sa.or_(*ranges)))
    return {(level, idx): h for level, idx, h in rows}


def _rows(result: Any, batch: int) -> Any:
    for part in result.partitions(batch):  # a list per fetch: no per-row fetch call
        yield from part


_loads = json.JSONDecoder().decode


def _check_row(report: Report, idx: int, raw: bytes, leaf: bytes, tag: str, actor_kind: str,
               actor_id: str | None, supersedes: int | None, time: Any) -> None:
    try:
        body = _loads(raw.decode())
    except ValueError:  # UnicodeDecodeError included
        report.add(idx, f"条目 {idx} 的内容不是 JSON", f"entry {idx}: body is not JSON")
        return
    if not isinstance(body, dict) or body.get("idx") != idx:
        claimed = body.get("idx") if isinstance(body, dict) else None
        report.add(idx, f"条目 {idx} 的内容写明序号 {claimed}（被移位或调换）",
                   f"entry {idx}: body says idx {claimed} (moved or reordered)")
        return
    if sha256(b"\x00" + raw).digest() != leaf:
        report.add(idx, f"条目 {idx} 的内容被改动（叶哈希不符）", f"entry {idx}: body altered (leaf hash mismatch)")
        return
    actor = body.get("actor") or {}
    if not isinstance(time, str):
        time = time.strftime(TIME_FORMAT)
    if (tag, actor_kind, actor_id, supersedes, time) != (
            body.get("tag"), actor.get("kind"), actor.get("id"), body.get("supersedes"), body.get("time")):
        report.add(idx, f"条目 {idx} 的索引列与内容不符", f"entry {idx}: columns disagree with the body")


def verify_log(session: Session, config: Any, batch: int = 10_000) -> Report:
    report = Report()
    key = None
    try:
        from server.modules.audit.checkpoints import log_verifier_key

        key = log_verifier_key(config)
    except (OSError, ValueError, RuntimeError) as exc:
        report.add(2 ** 62, f"无法读取日志密钥：{exc}", f"cannot read the log key: {exc}")
    checkpoints = list(session.scalars(sa.select(AuditCheckpoint).order_by(AuditCheckpoint.id)))
    by_size: dict[int, list[AuditCheckpoint]] = defaultdict(list)
    for cp in checkpoints:
        by_size[cp.size].append(cp)
    root_at_size: dict[int, bytes] = {0: merkle.EMPTY_ROOT}
    high = {(lv, i): h for lv, i, h in session.execute(
        sa.select(AuditNode.level, AuditNode.idx, AuditNode.hash).where(AuditNode.level > CHUNK_LEVEL))}
    chunk = 1 << CHUNK_LEVEL
    stored: dict[tuple[int, int], bytes] = {}
    frontier: list[tuple[int, bytes]] = []
    expected, gap = 0, False

    def close_chunk() -> None:
        # A node left over was never completed by the leaves: it covers entries past the end.
        for level, node_idx in sorted(stored):
            first = max(node_idx << level, expected)
            report.add(first, f"多出的树节点 ({level},{node_idx})", f"unexpected tree node ({level},{node_idx})")
        stored.clear()

    rows = _stream(session, batch)  # a server-side cursor on PostgreSQL: closed below, even after a gap
    try:
        for idx, raw, leaf, tag, actor_kind, actor_id, supersedes, time in _rows(rows, batch):
            if idx != expected:
                report.add(expected, f"条目 {expected}–{idx - 1} 缺失（被删除）",
                           f"entries {expected}..{idx - 1} are missing (deleted)")
                gap = True
                break  # the tree cannot be rebuilt past a gap
            if idx % chunk == 0:
                close_chunk()
                stored.update(_nodes_in_chunk(session, idx, idx + chunk))
            _check_row(report, idx, raw, leaf, tag, actor_kind, actor_id, supersedes, time)
            # Bottom-up: each completed node must equal the hash of its stored children.
            level, node_idx, current = 0, idx, leaf
            while frontier and frontier[-1][0] == level:
                computed = sha256(b"\x01" + frontier.pop()[1] + current).digest()
                level += 1
                node_idx >>= 1
                found = (stored if level <= CHUNK_LEVEL else high).pop((level, node_idx), None)
                if found != computed:
                    first, last = node_idx << level, ((node_idx + 1) << level) - 1
                    if found is None:
                        report.add(first, f"树节点 ({level},{node_idx}) 缺失（条目 {first}–{last}）",
                                   f"tree node ({level},{node_idx}) over entries {first}..{last} is missing")
                        found = computed
                    else:
                        report.add(first, f"条目 {first}–{last} 被改动：树节点 ({level},{node_idx}) 与其子节点不符",
                                   f"entries {first}..{last} altered: tree node ({level},{node_idx}) "
                                   "does not match its children")
                current = found
            frontier.append((level, current))
            expected = idx + 1
            if expected in by_size:
                root_at_size[expected] = _fold(frontier)
    finally:
        rows.close()
    n = expected
    report.size = n
    if not gap:  # past a gap, unvisited nodes are no news
        close_chunk()
        for level, node_idx in sorted(high):
            report.add(max(node_idx << level, n), f"多出的树节点 ({level},{node_idx})", f"unexpected tree node ({level},{node_idx})")
    node_count = session.scalar(sa.select(sa.func.count()).select_from(AuditNode))
    if node_count != n - bin(n).count("1"):
        report.add(n, f"树节点数 {node_count} 与 {n} 个条目不符（多出或缺少节点）",
                   f"{node_count} tree nodes do not fit {n} entries (extra or missing nodes)")

    head_size, head_root = session.execute(sa.select(AuditHead.size, AuditHead.root_hash)).one()
    root = _fold(frontier) if frontier else merkle.EMPTY_ROOT
    if head_size != n:
        report.add(min(n, head_size), f"记录头写明 {head_size} 条，实有 {n} 条（条目被截断或删除）",
                   f"the head says {head_size} entries but {n} exist (truncated or deleted)")
    elif head_root != root:
        report.add(n, "记录头的根哈希与重新计算的不符", "the head root differs from the recomputed root")

    report.checkpoints = len(checkpoints)
    previous: AuditCheckpoint | None = None
    for cp in checkpoints:
        _check_checkpoint(session, report, cp, key, root_at_size, n, previous)
        if cp.size <= n:
            previous = cp
    report.problems.sort()
    return report


def _fold(frontier: list[tuple[int, bytes]]) -> bytes:
    current = frontier[-1][1]
    for _, left in reversed(frontier[:-1]):
        current = merkle.node_hash(left, current)
    return current


def _check_checkpoint(session: Session, report: Report, cp: AuditCheckpoint, key: verifier.VerifierKey | None,
                      root_at_size: dict[int, bytes], n: int, previous: AuditCheckpoint | None) -> None:
    from server.modules.audit.checkpoints import check_log_signature

    where = f"检查点 #{cp.id}（大小 {cp.size}）", f"checkpoint #{cp.id} (size {cp.size})"
    if cp.size > n:
        report.add(n, f"{where[0]} 超出现有 {n} 个条目：条目 {n} 起被删除或截断",
                   f"{where[1]} is beyond the {n} entries: entries from {n} on were deleted or truncated")
        return
    if key is not None:
        try:
            parsed = check_log_signature(cp.note, key)
        except verifier.VerificationError as exc:
            report.add(cp.size, f"{where[0]}：{exc.zh}", f"{where[1]}: {exc.en}")
            return
        if (parsed.origin, parsed.size, parsed.root) != (key.name, cp.size, cp.root_hash):
            report.add(cp.size, f"{where[0]} 的签名文本与记录列不符", f"{where[1]}: note disagrees with its columns")
            return
    if root_at_size.get(cp.size) != cp.root_hash:
        report.add(max(cp.size - 1, 0), f"{where[0]} 签署的根与现有条目不符：其前的条目被改动",
                   f"{where[1]} signed a root the entries no longer give: entries before it were altered")
        return
    if previous is not None and 0 < previous.size <= cp.size:
        try:
            proof = audit.consistency_proof_stored(session, previous.size, cp.size)
        except LookupError:  # a missing node, already reported above
            return
        if not merkle.verify_consistency(previous.size, cp.size, previous.root_hash, cp.root_hash, proof):
            report.add(previous.size, f"{where[0]} 与前一检查点不一致", f"{where[1]} is inconsistent with the previous one")

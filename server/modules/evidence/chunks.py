"""Chunk trees for video: RFC 9162 Merkle tree over fixed-size chunks of a file. Pure functions.

A clip or a partial upload covering chunks i..j is proven against the original by one
inclusion proof per chunk, all against the root stored with the blob.
"""
from __future__ import annotations

import hashlib
from typing import Iterable

from server.modules.audit import merkle

CHUNK_SIZE = 1 << 20  # 1 MiB leaves


def rechunk(blocks: Iterable[bytes], size: int = CHUNK_SIZE) -> Iterable[bytes]:
    """Fixed-size chunks from blocks of any size (the last one may be shorter)."""
    buffer = bytearray()
    for block in blocks:
        buffer += block
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


def leaves(blocks: Iterable[bytes], size: int = CHUNK_SIZE) -> list[bytes]:
    """Leaf hashes SHA-256(0x00 || chunk) of consecutive ``size``-byte chunks, without copying the bytes."""
    result: list[bytes] = []
    current, filled = None, 0
    for block in blocks:
        view, pos = memoryview(block), 0
        while pos < len(view):
            if current is None:
                current, filled = hashlib.sha256(b"\x00"), 0
            take = min(size - filled, len(view) - pos)
            current.update(view[pos:pos + take])
            filled += take
            pos += take
            if filled == size:
                result.append(current.digest())
                current = None
    if current is not None:
        result.append(current.digest())
    return result


def chunk_range(start: int, end: int, size: int = CHUNK_SIZE) -> range:
    """Indices of the chunks holding bytes [start, end)."""
    if not 0 <= start < end:
        raise ValueError("need 0 <= start < end")
    return range(start // size, (end - 1) // size + 1)


def prove_range(leaf_hashes: list[bytes], start: int, end: int, size: int = CHUNK_SIZE) -> dict[str, object]:
    """Inclusion proofs of the chunks holding bytes [start, end), against the root of all chunks."""
    indices = chunk_range(start, end, size)
    if indices.stop > len(leaf_hashes):
        raise ValueError("range is past the end of the file")
    return {
        "chunk_size": size, "tree_size": len(leaf_hashes), "root": merkle.root(leaf_hashes).hex(),
        "chunks": [{"index": i, "offset": i * size, "leaf": leaf_hashes[i].hex(),
                    "proof": [p.hex() for p in merkle.inclusion_proof(i, leaf_hashes)]} for i in indices],
    }


def verify_chunks(chunks: list[bytes], proof: dict[str, object]) -> bool:
    """True when every given chunk (in order) is the chunk the proof names, under its root."""
    root = bytes.fromhex(str(proof["root"]))
    entries = list(proof["chunks"])  # type: ignore[call-overload]
    if len(entries) != len(chunks):
        return False
    return all(
        merkle.verify_inclusion(merkle.leaf_hash(chunk), int(entry["index"]), int(proof["tree_size"]),  # type: ignore[arg-type]
                                [bytes.fromhex(p) for p in entry["proof"]], root)
        for chunk, entry in zip(chunks, entries))

"""RFC 9162 maths: known answers from the certificate-transparency reference tests, then every
tree size 1..300 against a literal transcription of the RFC's recursive definitions."""
from __future__ import annotations

import hashlib
import random

import pytest

from server.modules.audit import merkle

# The eight leaves of the CT reference tests (merkle_tree_test.cc / RFC 6962 test vectors).
LEAVES = [bytes.fromhex(x) for x in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")]
HASHES = [merkle.leaf_hash(x) for x in LEAVES]

# Published roots of the first n leaves (CT reference tests); also re-derived by brute_mth below.
ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}

# (leaf index, tree size, path) from the CT reference inclusion tests.
INCLUSION = [
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]

# (old size, new size, proof) from the CT reference consistency tests.
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]


# ---- brute force: the RFC's definitions transcribed literally ---------------------------------

def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def brute_mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = _k(len(d))
    return hashlib.sha256(b"\x01" + brute_mth(d[:k]) + brute_mth(d[k:])).digest()


def brute_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return brute_path(m, d[:k]) + [brute_mth(d[k:])]
    return brute_path(m - k, d[k:]) + [brute_mth(d[:k])]


def brute_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [brute_mth(d)]
    k = _k(n)
    if m <= k:
        return brute_subproof(m, d[:k], b) + [brute_mth(d[k:])]
    return brute_subproof(m - k, d[k:], False) + [brute_mth(d[:k])]


def hexes(hashes: list[bytes]) -> list[str]:
    return [h.hex() for h in hashes]


# ---- known answers ----------------------------------------------------------------------------

def test_empty_tree_root_is_hash_of_nothing():
    assert merkle.root([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize("size", sorted(ROOTS))
def test_known_roots(size):
    assert merkle.root(HASHES[:size]).hex() == ROOTS[size]
    assert brute_mth(HASHES[:size]).hex() == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_known_inclusion_proofs(index, size, path):
    proof = merkle.inclusion_proof(index, HASHES[:size])
    assert hexes(proof) == path
    assert merkle.verify_inclusion(HASHES[index], index, size, proof, bytes.fromhex(ROOTS[size]))


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY)
def test_known_consistency_proofs(old, new, path):
    proof = merkle.consistency_proof(old, HASHES[:new])
    assert hexes(proof) == path
    assert merkle.verify_consistency(old, new, bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new]), proof)


# ---- every size 1..300 against brute force ----------------------------------------------------

def _random_leaves(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [merkle.leaf_hash(rng.randbytes(rng.randrange(0, 40))) for _ in range(n)]


def test_every_size_up_to_300_matches_the_definitions():
    leaves = _random_leaves(300, seed=9162)
    rng = random.Random(6962)
    for n in range(1, 301):
        d = leaves[:n]
        root = merkle.root(d)
        assert root == brute_mth(d), n
        # every index for small trees, a sample (always including both ends) for larger ones
        indices = range(n) if n <= 40 else {0, n - 1, *rng.sample(range(n), 12)}
        for m in indices:
            proof = merkle.inclusion_proof(m, d)
            assert proof == brute_path(m, d), (m, n)
            assert merkle.verify_inclusion(d[m], m, n, proof, root)
        olds = range(1, n + 1) if n <= 40 else {1, n, *rng.sample(range(1, n + 1), 12)}
        for m in olds:
            proof = merkle.consistency_proof(m, d)
            assert proof == brute_subproof(m, d, True), (m, n)
            assert merkle.verify_consistency(m, n, brute_mth(d[:m]), root, proof)


def test_verifiers_reject_any_single_change():
    d = _random_leaves(37, seed=1)
    root = merkle.root(d)
    proof = merkle.inclusion_proof(21, d)
    assert not merkle.verify_inclusion(d[20], 21, 37, proof, root)      # wrong leaf
    assert not merkle.verify_inclusion(d[21], 20, 37, proof, root)      # wrong index
    # (a size whose path has the same shape, like 38 or 64 here, verifies: the signed checkpoint binds size)
    assert not merkle.verify_inclusion(d[21], 21, 22, proof, root)      # wrong size
    assert not merkle.verify_inclusion(d[21], 21, 37, proof[:-1], root)  # short proof
    assert not merkle.verify_inclusion(d[21], 21, 37, proof + [root], root)  # long proof
    assert not merkle.verify_inclusion(d[21], 37, 37, proof, root)      # index out of range
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes(32)
        assert not merkle.verify_inclusion(d[21], 21, 37, bad, root)

    old_root = merkle.root(d[:13])
    cproof = merkle.consistency_proof(13, d)
    assert merkle.verify_consistency(13, 37, old_root, root, cproof)
    assert not merkle.verify_consistency(13, 37, root, root, cproof)
    assert not merkle.verify_consistency(12, 37, old_root, root, cproof)
    assert not merkle.verify_consistency(13, 14, old_root, root, cproof)
    assert not merkle.verify_consistency(0, 37, old_root, root, cproof)
    assert not merkle.verify_consistency(13, 37, old_root, root, [])
    assert not merkle.verify_consistency(13, 37, old_root, root, cproof[:-1])
    for i in range(len(cproof)):
        bad = list(cproof)
        bad[i] = bytes(32)
        assert not merkle.verify_consistency(13, 37, old_root, root, bad)


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        merkle.inclusion_proof(3, HASHES[:3])
    with pytest.raises(ValueError):
        merkle.inclusion_proof(-1, HASHES[:3])
    with pytest.raises(ValueError):
        merkle.consistency_proof(0, HASHES[:3])
    with pytest.raises(ValueError):
        merkle.consistency_proof(4, HASHES[:3])

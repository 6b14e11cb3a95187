#!/usr/bin/env python3
"""The verifiable double-random draw (双随机): a pure, versioned, deterministic algorithm.

This file imports only the Python standard library so that anyone can check a published draw
without the project installed:

    python3 algorithm.py verify draw.json

A draw document (JSON, UTF-8) holds everything the draw used and produced:

    format             "qinling-field-draw/1"
    algorithm_version  ALGORITHM_VERSION below
    draw_id            the draw's id (binds commitments to this draw)
    targets            eligible target pool, sorted by id: [id, uscc, region, risk_class, positive_list]
    inspectors         eligible inspector pool, sorted by id: [id, certificate_number, region]
    conflicts          excluded (inspector_id, target_id) pairs, sorted: [[inspector_id, target_id], ...]
    rules              {"<region>|<risk_class>": {"basis": "percent"|"fixed"|"ratio", "value": "5",
                        "positive_list_factor": "0.5"}}; strata with no rule are not drawn
    options            {"team_size": 2, "cross_region": false, "local_regions": ["611000"],
                        "joint_agencies": []}
    pool_hashes        {"targets", "inspectors", "conflicts", "rules"}: SHA-256 hex of canonical JSON
                       of those members ("rules" covers {"rules": ..., "options": ...})
    commitments        [{"party": "user:12", "commitment": hex}] made before the pools were frozen
    reveals            [{"party": "user:12", "secret": "..."}]
    public_value       a string published after the commitments (lottery number, block hash) or null
    seed               hex; result, result_hash: the outcome and SHA-256 of its canonical JSON

Canonical JSON: RFC 8785 (JSON Canonicalization Scheme), UTF-8. For the values a draw holds (strings,
integers, booleans, null) that is: keys sorted, separators "," and ":", no escaping beyond JSON's.

commitment = SHA-256(UTF-8 of draw_id + "|" + party + "|" + secret), hex.
seed       = SHA-256(canonical JSON of {"algorithm_version", "draw_id", "pool_hashes",
             "public_value", "secrets": [[party, secret], ...] sorted by party}).

Random stream (counter mode): for a label, key = SHA-256(seed || 0x00 || label); block i =
SHA-256(key || i as 8 bytes big-endian); each block gives four 64-bit big-endian words.
below(n): take words, keep the low bit_length(n-1) bits, reject values >= n (unbiased).

Targets: strata are (region, risk_class, positive_list); the quota of a stratum follows its rule:
  percent: ceil(n * value / 100), positive-list stratum ceil(n * value * factor / 100);
  fixed:   value (a stratum asking for more than it holds is an error); positive-list targets are
           left out of fixed/ratio strata when factor is 0, and counted as ordinary otherwise;
  ratio:   ceil(value * inspectors admissible for that region), value = targets per inspector
           per period (admissible as for teams, below).
Each stratum (sorted by key, its targets sorted by id) is sampled by a partial Fisher-Yates
shuffle with the stream labelled "targets|<region>|<class>|<0/1>".

Teams: drawn targets are taken in draw order. An inspector may serve a target if not in a
conflict pair with it and, without cross_region, if their region is the target's or one of
options.local_regions; with cross_region, only if their region differs from the target's.
Every inspector gets a rank from one shuffle of all inspector ids (stream "teams") and a load
(teams served so far in this draw, counted across all regions). Each target gets the admissible
inspectors with the lowest (load, rank): loads stay within one of each other among inspectors who
can serve the same targets (conflicts aside), and an inspector several counties share (the
city's) is not loaded once per county. The first
inspector of a team leads. Too few admissible inspectors for a target is an error.
"""
import hashlib
import heapq
import json
import math
import struct
import sys
from fractions import Fraction

ALGORITHM_VERSION = "qf-draw-2"  # 2: one load count across regions (was a queue per region)
FORMAT = "qinling-field-draw/1"
MASK64 = (1 << 64) - 1
_EMPTY = frozenset()


class DrawError(Exception):
    """A draw that cannot be made; ``code`` is the server's error code."""

    def __init__(self, code, message, **context):
        super().__init__(message)
        self.code = code
        self.context = context


# Canonical JSON is RFC 8785 (JCS). This file carries its own copy, in the standard library only,
# so that an outsider can verify a draw with nothing installed; the server's implementation is the
# ``rfc8785`` package (server/core/canonical.py), and tests/core/test_canonical.py checks this copy
# against it with Hypothesis.
_SAFE_INT = 2 ** 53 - 1
_sorted_encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                                   check_circular=False)


def _plain(value):
    """No floats, no integers beyond 2**53, no keys outside the BMP: JCS is then the standard
    library's sorted encoding (same escapes; code-point order is UTF-16 order in the BMP)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is int:
            if -_SAFE_INT <= item <= _SAFE_INT:
                continue
            return False
        if kind is list or kind is tuple:
            stack.extend(item)
        elif kind is dict:
            for key in item:
                if type(key) is not str or (not key.isascii() and max(key) > "\uffff"):
                    return False
            stack.extend(item.values())
        else:
            return False
    return True


def _jcs_number(value):
    """ECMAScript Number::toString (RFC 8785 section 3.2.2.3) from Python's shortest repr."""
    if isinstance(value, int) and not isinstance(value, float):
        if not -_SAFE_INT <= value <= _SAFE_INT:
            raise ValueError(f"{value} is beyond the integers JSON numbers hold exactly")
        return str(value)
    if value != value or value in (math.inf, -math.inf):
        raise ValueError(f"{value} is not a JSON number")
    if value == 0:
        return "0"
    if value < 0:
        return "-" + _jcs_number(-value)
    mantissa, _, exponent = repr(value).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    n = len(whole) + int(exponent or 0) - (len(whole + fraction) - len((whole + fraction).lstrip("0")))
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    e = n - 1
    return digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e >= 0 else "-") + str(abs(e))


def _jcs(value, out):
    if value is None or value is True or value is False or isinstance(value, str):
        out.append(_sorted_encoder.encode(value))
    elif isinstance(value, (int, float)):
        out.append(_jcs_number(value))
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, member in enumerate(value):
            if i:
                out.append(",")
            _jcs(member, out)
        out.append("]")
    elif isinstance(value, dict):
        if any(not isinstance(key, str) for key in value):
            raise ValueError("object keys must be strings")
        out.append("{")
        for i, key in enumerate(sorted(value, key=lambda k: k.encode("utf-16-be"))):
            if i:
                out.append(",")
            out.append(_sorted_encoder.encode(key))
            out.append(":")
            _jcs(value[key], out)
        out.append("}")
    else:
        raise ValueError(f"{type(value).__name__} is not JSON")


def canonical_json(value):
    """RFC 8785 (JCS) bytes of ``value``."""
    if _plain(value):
        return _sorted_encoder.encode(value).encode("utf-8")
    out = []
    _jcs(value, out)
    return "".join(out).encode("utf-8")


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def commitment(draw_id, party, secret):
    return sha256_hex(f"{draw_id}|{party}|{secret}".encode("utf-8"))


def pool_hashes(doc, encoded=None):
    """``encoded``: canonical JSON of doc's members, if the caller has it already."""
    def member(name):
        return encoded[name] if encoded and name in encoded else canonical_json(doc[name])

    return {
        "targets": sha256_hex(member("targets")),
        "inspectors": sha256_hex(member("inspectors")),
        "conflicts": sha256_hex(member("conflicts")),
        "rules": sha256_hex(canonical_json({"rules": doc["rules"], "options": doc["options"]})),
    }


def derive_seed(draw_id, hashes, reveals, public_value):
    secrets = sorted([r["party"], r["secret"]] for r in reveals)
    return sha256_hex(canonical_json({"algorithm_version": ALGORITHM_VERSION, "draw_id": draw_id,
                                      "pool_hashes": hashes, "public_value": public_value,
                                      "secrets": secrets}))


class Stream:
    """SHA-256 counter-mode stream of 64-bit words, with unbiased integers by rejection."""

    def __init__(self, seed_hex, label):
        self.key = hashlib.sha256(bytes.fromhex(seed_hex) + b"\x00" + label.encode("utf-8")).digest()
        self.counter = 0
        self.words = []

    def word(self):
        if not self.words:
            block = hashlib.sha256(self.key + self.counter.to_bytes(8, "big")).digest()
            self.counter += 1
            self.words = list(struct.unpack(">4Q", block))
            self.words.reverse()  # popped from the end: words are used in block order
        return self.words.pop()

    def below(self, n):
        if n < 1 or n > MASK64:
            raise ValueError("n out of range")
        if n == 1:
            return 0
        mask = (1 << (n - 1).bit_length()) - 1
        while True:
            value = self.word() & mask
            if value < n:
                return value

    def sample(self, items, k):
        """k distinct items by partial Fisher-Yates, in the order drawn."""
        pool = list(items)
        for i in range(k):
            j = i + self.below(len(pool) - i)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]

    def shuffle(self, items):
        return self.sample(items, len(items))


def quotas(doc):
    """Stratum key -> (member target ids sorted, quota). Raises DrawError if a rule cannot be met."""
    strata = {}
    for tid, _uscc, region, risk, positive in doc["targets"]:
        key = (region, risk, 1 if positive else 0)
        members = strata.get(key)
        if members is None:
            members = strata[key] = []
        members.append(tid)
    admissible = _admissible_by_region(doc)
    out = {}
    for (region, risk), rule in sorted((tuple(k.split("|")), v) for k, v in doc["rules"].items()):
        value = Fraction(rule["value"])
        factor = Fraction(rule.get("positive_list_factor", "1"))
        ordinary = strata.get((region, risk, 0), [])
        listed = strata.get((region, risk, 1), [])
        if rule["basis"] == "percent":
            out[f"{region}|{risk}|0"] = (ordinary, math.ceil(len(ordinary) * value / 100))
            if listed:
                out[f"{region}|{risk}|1"] = (listed, math.ceil(len(listed) * value * factor / 100))
            continue
        members = sorted(ordinary + (listed if factor > 0 else []))
        if rule["basis"] == "fixed":
            wanted = int(value)
        elif rule["basis"] == "ratio":
            wanted = math.ceil(value * len(admissible(region)))
        else:
            raise DrawError("draw.rule_invalid", f"unknown basis {rule['basis']}", stratum=f"{region}|{risk}")
        if wanted > len(members):
            raise DrawError("draw.not_enough_targets", f"{region}|{risk}: {wanted} wanted, {len(members)} eligible",
                            stratum=f"{region}|{risk}", wanted=wanted, eligible=len(members))
        out[f"{region}|{risk}|0"] = (members, wanted)
    return {key: value for key, value in sorted(out.items()) if value[1] > 0}


def _admissible_by_region(doc):
    """region -> the inspector ids (in pool order) that may serve its targets, before conflicts."""
    options = doc.get("options") or {}
    local = set(options.get("local_regions", []))
    cross = bool(options.get("cross_region"))
    inspectors = [(row[0], row[2]) for row in doc["inspectors"]]
    cache = {}

    def admissible(region):
        if region not in cache:
            cache[region] = [iid for iid, r in inspectors if (r != region if cross else r == region or r in local)]
        return cache[region]

    return admissible


def draw(doc, strata=None):
    """(seed, pools, rules) -> result. Deterministic; the doc's own result is ignored.
    ``strata``: quotas(doc) if the caller already has it (then doc's targets are not read)."""
    seed = doc["seed"]
    options = doc["options"]
    team_size = int(options.get("team_size", 2))
    if team_size < 2:
        raise DrawError("draw.rule_invalid", "a team needs at least two inspectors")
    picked = []
    strata = quotas(doc) if strata is None else strata
    for key, (members, quota) in sorted(strata.items()):
        stream = Stream(seed, "targets|" + key)
        picked.extend((key, tid) for tid in stream.sample(members, quota))

    conflicts = {}
    for iid, tid in doc["conflicts"]:
        conflicts.setdefault(tid, set()).add(iid)
    admissible = _admissible_by_region(doc)
    rank = {iid: r for r, iid in enumerate(Stream(seed, "teams").shuffle(sorted(row[0] for row in doc["inspectors"])))}
    load = dict.fromkeys(rank, 0)
    heaps = {}  # region -> heap of (load, rank, id); an entry whose load is behind is refreshed when met
    joint = list(options.get("joint_agencies", []))
    assignments = []
    for key, tid in picked:
        region = key.split("|", 1)[0]
        heap = heaps.get(region)
        if heap is None:
            heap = heaps[region] = [(0, rank[iid], iid) for iid in admissible(region)]
            heapq.heapify(heap)
        blocked = conflicts.get(tid, _EMPTY)
        free = len(heap) - (sum(1 for entry in heap if entry[2] in blocked) if blocked else 0)
        if free < team_size:
            raise DrawError("draw.not_enough_inspectors",
                            f"target {tid}: fewer than {team_size} admissible inspectors",
                            target=tid, region=region, team_size=team_size)
        team, aside = [], []
        while len(team) < team_size:
            entry = heapq.heappop(heap)
            iid = entry[2]
            if entry[0] != load[iid]:
                heapq.heappush(heap, (load[iid], entry[1], iid))  # served elsewhere since: refresh
            elif iid in blocked:
                aside.append(entry)
            else:
                team.append(iid)
        for iid in team:
            load[iid] += 1
            heapq.heappush(heap, (load[iid], rank[iid], iid))
        for entry in aside:
            heapq.heappush(heap, entry)
        assignments.append({"target": tid, "stratum": key, "team": team, "joint_with": joint})
    return {"assignments": assignments, "quotas": {key: quota for key, (_m, quota) in strata.items()}}


def run(doc, strata=None):
    """Fill pool_hashes, seed, result and result_hash of a document whose inputs are complete.
    With ``strata`` (quotas(doc) kept from when pool_hashes was computed), doc needs no targets."""
    if strata is None:
        doc["pool_hashes"] = pool_hashes(doc)
    check_reveals(doc)
    doc["seed"] = derive_seed(doc["draw_id"], doc["pool_hashes"], doc["reveals"], doc.get("public_value"))
    doc["result"] = draw(doc, strata)
    doc["result_hash"] = sha256_hex(canonical_json(doc["result"]))
    return doc


def check_reveals(doc):
    committed = {c["party"]: c["commitment"] for c in doc["commitments"]}
    revealed = {r["party"]: r["secret"] for r in doc["reveals"]}
    if set(committed) != set(revealed):
        raise DrawError("draw.reveals_incomplete", "every committed party must reveal, and only they",
                        missing=sorted(set(committed) - set(revealed)))
    for party, secret in revealed.items():
        if commitment(doc["draw_id"], party, secret) != committed[party]:
            raise DrawError("draw.reveal_mismatch", f"the secret of {party} does not match its commitment",
                            party=party)
    if len(committed) < 2:
        raise DrawError("draw.too_few_parties", "at least two parties must contribute to the seed")


def verify(doc):
    """Replay a published draw. Returns (ok, [(check, ok, detail), ...])."""
    checks = []

    def check(name, ok, detail=""):
        checks.append((name, bool(ok), detail))
        return ok

    check("format", doc.get("format") == FORMAT, doc.get("format"))
    if not check("algorithm_version", doc.get("algorithm_version") == ALGORITHM_VERSION,
                 f"document {doc.get('algorithm_version')}, verifier {ALGORITHM_VERSION}"):
        return False, checks
    hashes = pool_hashes(doc)
    for name in ("targets", "inspectors", "conflicts", "rules"):
        check(f"pool_hash.{name}", hashes[name] == doc.get("pool_hashes", {}).get(name), hashes[name])
    try:
        check_reveals(doc)
        check("reveals_match_commitments", True, f"{len(doc['reveals'])} parties")
    except DrawError as exc:
        check("reveals_match_commitments", False, str(exc))
        return False, checks
    seed = derive_seed(doc["draw_id"], hashes, doc["reveals"], doc.get("public_value"))
    check("seed", seed == doc.get("seed"), seed)
    replay = dict(doc, seed=seed)
    try:
        result = draw(replay)
    except DrawError as exc:
        check("replay", False, str(exc))
        return False, checks
    check("result", result == doc.get("result"), f"{len(result['assignments'])} assignments")
    check("result_hash", sha256_hex(canonical_json(result)) == doc.get("result_hash"),
          sha256_hex(canonical_json(result)))
    return all(ok for _, ok, _ in checks), checks


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 2 or argv[0] != "verify":
        print("usage: algorithm.py verify DRAW.json", file=sys.stderr)
        return 2
    try:
        with open(argv[1], encoding="utf-8") as handle:
            doc = json.load(handle)
        ok, checks = verify(doc)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"cannot read draw document: {exc}", file=sys.stderr)
        return 2
    for name, passed, detail in checks:
        print(f"{'OK ' if passed else 'BAD'} {name} {detail}")
    print(("MATCH: the published result follows from the disclosed inputs" if ok
           else "MISMATCH: the published result does not follow from the disclosed inputs"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Canonical JSON is RFC 8785 (JCS): the server's (``rfc8785`` with a proven-equal fast path) and the
standalone draw verifier's standard-library copy give rfc8785's bytes for any JSON value, and
canonical JSON assembled from members already encoded is the same bytes as encoding the whole."""
import datetime as dt

import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings, strategies as st

from server.core.canonical import (LEGACY_SIGNATURES_END, canonical_json, canonical_object, legacy_canonical_json,
                                   signed_forms)
from server.modules.draws import algorithm

SAFE = 2**53 - 1
keys = st.text() | st.sampled_from(["a", "\U0001f600", "\ue000", "€", "\u00e9", "1", "b\x00"])
scalars = (st.none() | st.booleans() | st.integers(-SAFE, SAFE) | st.text()
           | st.floats(allow_nan=False, allow_infinity=False))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                      max_leaves=16)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_the_server_and_the_draw_verifier_give_rfc8785s_bytes(value):
    expected = rfc8785.dumps(value)
    assert canonical_json(value) == expected
    assert algorithm.canonical_json(value) == expected


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, values, max_size=8))
def test_an_object_of_encoded_members_is_its_canonical_json(document):
    assert canonical_object({key: canonical_json(value) for key, value in document.items()}) == canonical_json(document)


def test_floats_are_written_as_ecmascript_numbers_unlike_the_legacy_form():
    manifest = {"accuracy_m": 5.0, "lat": 33.87, "tiny": 1e-07, "big": 1e21, "size": 1024}
    assert canonical_json(manifest) == b'{"accuracy_m":5,"big":1e+21,"lat":33.87,"size":1024,"tiny":1e-7}'
    assert legacy_canonical_json(manifest) == b'{"accuracy_m":5.0,"big":1e+21,"lat":33.87,"size":1024,"tiny":1e-07}'
    assert signed_forms(manifest) == (canonical_json(manifest), legacy_canonical_json(manifest))
    assert signed_forms(manifest, at=LEGACY_SIGNATURES_END) == (canonical_json(manifest),)
    assert signed_forms(manifest, at=LEGACY_SIGNATURES_END - dt.timedelta(seconds=1))[1] == legacy_canonical_json(manifest)
    assert signed_forms({"a": 1}) == (b'{"a":1}',)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2**53, {1: "x"}])
def test_what_jcs_cannot_hold_is_refused(value):
    with pytest.raises(ValueError):
        canonical_json(value)
    with pytest.raises(ValueError):
        algorithm.canonical_json(value)

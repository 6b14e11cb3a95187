"""Canonical JSON assembled from members already encoded is the same bytes as encoding the whole."""
from hypothesis import given, strategies as st

from server.core.canonical import canonical_json, canonical_object

values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                      lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                      max_leaves=12)


@given(st.dictionaries(st.text(), values, max_size=8))
def test_an_object_of_encoded_members_is_its_canonical_json(document):
    assert canonical_object({key: canonical_json(value) for key, value in document.items()}) == canonical_json(document)

"""The one JSON parser of request bodies: limits at their edges (pure, no database)."""
from __future__ import annotations

import json

import pytest

from server.core import errors, inputs


def test_depth_limit_is_exact():
    limit = inputs.MAX_DEPTH
    assert inputs.loads("[" * limit + "]" * limit) == json.loads("[" * limit + "]" * limit)
    with pytest.raises(errors.NestedTooDeep):
        inputs.loads("[" * (limit + 1) + "]" * (limit + 1))
    with pytest.raises(errors.NestedTooDeep):
        inputs.loads('{"a": ' * (limit + 1) + "1" + "}" * (limit + 1))


def test_brackets_inside_strings_do_not_count():
    text = '{"a": "' + "[" * 500 + '", "b": "\\"{{{{"}'
    assert inputs.loads(text) == {"a": "[" * 500, "b": '"{{{{'}


def test_unbalanced_brackets_are_malformed_not_deep():
    for text in ("[}", "[" * 200, '{"a": [1, 2}'):
        with pytest.raises(errors.MalformedJson):
            inputs.loads(text)


@pytest.mark.parametrize("text", ["1" * (inputs.MAX_NUMBER_DIGITS + 1), "-" + "9" * 5000, "1e400", "-1e999"])
def test_long_numbers_are_refused(text):
    with pytest.raises(errors.NumberTooLong):
        inputs.loads(text)


def test_numbers_within_limits_parse():
    assert inputs.loads("9" * inputs.MAX_NUMBER_DIGITS) == int("9" * inputs.MAX_NUMBER_DIGITS)
    assert inputs.loads("[1.5e300, -0.25, 109.123456]") == [1.5e300, -0.25, 109.123456]


@pytest.mark.parametrize("text", ["NaN", "Infinity", "[-Infinity]", b"\xff", b'"\xed\xa0\x80"'])
def test_non_json_is_malformed(text):
    with pytest.raises(errors.MalformedJson):
        inputs.loads(text)


@pytest.mark.parametrize("text", ['"\\u0000"', '{"\\ud800": 1}', '["ok", ["\\udc00x"]]', '"\\ud83c"'])
def test_nul_and_lone_surrogates_are_refused(text):
    with pytest.raises(errors.InvalidText):
        inputs.loads(text)


def test_escaped_backslash_before_u0000_is_ordinary_text():
    assert inputs.loads('"\\\\u0000"') == "\\u0000"
    assert inputs.loads('"\\ud83c\\udf32"') == "\U0001f332"

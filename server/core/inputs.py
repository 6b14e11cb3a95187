"""Untrusted input, checked in one place before any view, operation or database sees it.

* Every JSON request body (staff API, device API after decompression, console) is parsed by
  ``loads``: nesting deeper than ``MAX_DEPTH``, numbers longer than ``MAX_NUMBER_DIGITS`` or
  overflowing a float, ``NaN``/``Infinity`` literals, NUL characters and lone UTF-16 surrogates
  are refused with a 400 in the error contract instead of crashing a driver, the recursion limit
  or the integer parser later.
* Text anywhere else (query strings, form fields, paths, and every marshmallow ``String`` field,
  so also the rows of imported spreadsheets) refuses NUL and lone surrogates: PostgreSQL cannot store NUL in text, SQLite would store it silently, and a lone
  surrogate cannot be encoded as UTF-8 at all.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

import marshmallow as ma

from server.core import errors

MAX_DEPTH = 64  # our deepest body (a sync operation's record data) is under 10
MAX_NUMBER_DIGITS = 40  # longer than any id, amount, coordinate or 128-bit integer

# A field error (422) names the code, so a client can tell this rule from the field's own.
BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
TEXT_MESSAGE = ("文本不得含 NUL 字符或孤立的 UTF-16 代理项 / text must not contain a NUL character "
                "or a lone UTF-16 surrogate (request.invalid_text)")

# An escape that can decode to NUL or to half of a surrogate pair; raw ones cannot reach the parser
# (a raw control character is invalid JSON, a raw surrogate is invalid UTF-8).
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def loads(data: bytes | str) -> Any:
    """Parse a request body as JSON within the limits above; raise a contract error otherwise."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise errors.MalformedJson("the body is not UTF-8") from None
    else:
        text = data
    try:
        # The C parser guards its recursion: a body nested beyond Python's limit is refused here,
        # anything shallower is measured below, before any view recurses through it.
        value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_no_constant)
    except RecursionError:
        raise errors.NestedTooDeep(limit=MAX_DEPTH) from None
    except json.JSONDecodeError as exc:
        raise errors.MalformedJson(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    _check(value, strings=_SUSPECT_ESCAPE.search(text) is not None)
    return value


def _check(value: Any, *, strings: bool) -> None:
    """Depth of the parsed containers (without recursion), and their text when an escape could
    have produced NUL or a lone surrogate."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise errors.NestedTooDeep(limit=MAX_DEPTH)
        if isinstance(item, dict):
            if strings:
                for key in item:
                    check_text(key)
            members: Any = item.values()
        elif isinstance(item, list):
            members = item
        else:
            if strings and isinstance(item, str):
                check_text(item)
            continue
        for member in members:
            if isinstance(member, (dict, list)):
                stack.append((member, depth + 1))
            elif strings and isinstance(member, str):
                check_text(member)


def _parse_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise errors.NumberTooLong(limit=MAX_NUMBER_DIGITS)
    return int(literal)


def _parse_float(literal: str) -> float:
    if len(literal) > 2 * MAX_NUMBER_DIGITS:
        raise errors.NumberTooLong(limit=MAX_NUMBER_DIGITS)
    value = float(literal)
    if math.isinf(value):
        raise errors.NumberTooLong("the number overflows a 64-bit float", limit=MAX_NUMBER_DIGITS)
    return value


def _no_constant(literal: str) -> Any:
    raise errors.MalformedJson(f"{literal} is not JSON")


def check_text(value: str) -> None:
    if BAD_TEXT.search(value):
        raise errors.InvalidText()


def _string_deserialize(original: Any) -> Any:
    def _deserialize(self: ma.fields.String, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        result = original(self, value, attr, data, **kwargs)
        if isinstance(result, str) and BAD_TEXT.search(result):
            raise ma.ValidationError(TEXT_MESSAGE)
        return result

    _deserialize.__wrapped__ = original  # type: ignore[attr-defined]
    return _deserialize


def install_string_check() -> None:
    """Make every marshmallow ``String`` field (and its subclasses: Email, URL, UUID…) refuse
    NUL and lone surrogates. One hook rather than a custom field in each of our schemas, so that
    no schema written later can forget it."""
    if not hasattr(ma.fields.String._deserialize, "__wrapped__"):
        ma.fields.String._deserialize = _string_deserialize(ma.fields.String._deserialize)  # type: ignore[method-assign]

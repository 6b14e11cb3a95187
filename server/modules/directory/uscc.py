"""Unified social credit code (统一社会信用代码), GB 32100-2015: 18 characters, the last a check character."""
from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # 31 characters: no I, O, S, V, Z
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def check_character(first17: str) -> str:
    total = sum(ALPHABET.index(ch) * w for ch, w in zip(first17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def is_valid(code: str) -> bool:
    """18 characters of the alphabet, characters 3–8 the registering body's six-digit
    administrative division code, and the right check character."""
    if len(code) != 18 or any(ch not in ALPHABET for ch in code) or not code[2:8].isdigit():
        return False
    return check_character(code[:17]) == code[17]


def complete(first17: str) -> str:
    """Append the check character to 17 characters (for generated demo and test data)."""
    return first17 + check_character(first17)

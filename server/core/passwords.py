"""The one password policy of the API, the console and the CLI (GB/T 22239-2019, level 3: 身份鉴别
信息具有复杂度要求): at least 10 characters, at least three of the four classes (capitals, small
letters, digits, other characters), not a common password and not the account's own name.

The common passwords are ``common-passwords.txt.gz`` beside this file (19,790, lower case): the
20,000 most common passwords that Django ships (from Royce Williams' list), plus patterns seen on
Chinese government and vendor systems (``Aa123456789``, ``Admin@123456``, ``Huawei@123``, …).
Compared without regard to case.
"""
from __future__ import annotations

import gzip
import secrets
from functools import lru_cache
from pathlib import Path

from server.core import errors

MIN_LENGTH = 10
MIN_CLASSES = 3
MAX_LENGTH = 200
COMMON_FILE = Path(__file__).with_name("common-passwords.txt.gz")

WeakPassword = errors.error_code(
    "user.password_weak", 422,
    "密码不符合要求：至少 10 位，包含大写字母、小写字母、数字、其他符号中的至少三类，不能是常见密码或用户名",
    "The password does not meet the policy: at least 10 characters, at least three of capitals, small "
    "letters, digits and other characters, not a common password and not the username",
)


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    with gzip.open(COMMON_FILE, "rt", encoding="utf-8") as lines:
        return frozenset(line.strip() for line in lines if line.strip())


def character_classes(password: str) -> int:
    """Of A–Z, a–z, 0–9 and anything else (symbols, spaces, Chinese characters): how many appear."""
    upper = any("A" <= c <= "Z" for c in password)
    lower = any("a" <= c <= "z" for c in password)
    digit = any("0" <= c <= "9" for c in password)
    other = any(not ("A" <= c <= "Z" or "a" <= c <= "z" or "0" <= c <= "9") for c in password)
    return upper + lower + digit + other


def problems(password: str, username: str | None = None) -> list[str]:
    """What is wrong with ``password``, one bilingual line each; empty when it is acceptable."""
    found = []
    if len(password) < MIN_LENGTH:
        found.append(f"少于 {MIN_LENGTH} 个字符 / shorter than {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        found.append(f"超过 {MAX_LENGTH} 个字符 / longer than {MAX_LENGTH} characters")
    if character_classes(password) < MIN_CLASSES:
        found.append("大写字母、小写字母、数字、其他符号中少于三类 / "
                     "fewer than three of capitals, small letters, digits and other characters")
    if password.lower() in common_passwords():
        found.append("是常见密码 / is a common password")
    if username and username.strip() and username.strip().lower() in password.lower():
        found.append("包含用户名 / contains the username")
    return found


def check(password: str, username: str | None = None) -> None:
    """Raise ``user.password_weak`` (422, naming the field ``password``) unless the policy is met."""
    found = problems(password, username)
    if found:
        raise WeakPassword(fields={"password": found})


def generate(username: str | None = None) -> str:
    """A random one-time password (about 96 bits) that the policy accepts: drawn again in the rare
    case a draw lacks a third character class or contains the username."""
    while True:
        password = secrets.token_urlsafe(12)
        if not problems(password, username):
            return password

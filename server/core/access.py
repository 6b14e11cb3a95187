"""Who may call what: roles, the request principal, and the one endpoint × role policy table.

Every endpoint of the app must appear in ``POLICY``; an endpoint missing from it is refused
for everyone (fail closed), and a test walks the whole table against ``app.url_map``.
Scope (region, unit, assignment, transferred case) is checked by the operations themselves,
because only they know which record is touched.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable

from flask import Flask, g, request

from server.core import errors


class Role(str, enum.Enum):
    INSPECTOR = "inspector"
    AUXILIARY = "auxiliary"
    SUPERVISOR = "supervisor"
    LEGAL_REVIEWER = "legal_reviewer"
    PROSECUTOR = "prosecutor"
    POLICE = "police"
    ADMIN = "admin"


# Pseudo-roles: a registered device acting for its inspector, and anyone at all.
DEVICE = "device"
PUBLIC = "public"
ALL_ROLES: tuple[str, ...] = tuple(r.value for r in Role) + (DEVICE, PUBLIC)

STAFF = frozenset(r.value for r in Role)
BUREAU = frozenset({"inspector", "auxiliary", "supervisor", "legal_reviewer", "admin"})
MANAGERS = frozenset({"supervisor", "admin"})
ADMIN = frozenset({"admin"})
DEVICES = frozenset({DEVICE})
ANYONE = frozenset({PUBLIC})


@dataclass(frozen=True)
class Principal:
    kind: str  # "user" | "device" | "anonymous"
    role: str = PUBLIC
    user_id: int | None = None
    device_id: str | None = None
    unit_id: int | None = None
    region_code: str | None = None
    username: str | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def is_authenticated(self) -> bool:
        return self.kind != "anonymous"

    @property
    def policy_role(self) -> str:
        return DEVICE if self.kind == "device" else self.role


ANONYMOUS = Principal(kind="anonymous")

# endpoint -> {HTTP method or "*": roles}. Keep sorted by endpoint; one line per rule.
POLICY: dict[str, dict[str, frozenset[str]]] = {}


def allow(endpoint: str, roles: frozenset[str] | set[str], *methods: str) -> None:
    rules = POLICY.setdefault(endpoint, {})
    for method in methods or ("*",):
        rules[method] = frozenset(roles)


def allowed_roles(endpoint: str | None, method: str) -> frozenset[str]:
    rules = POLICY.get(endpoint or "")
    if rules is None:
        return frozenset()
    if method == "HEAD":
        method = "GET"
    return rules.get(method, rules.get("*", frozenset()))


def current_principal() -> Principal:
    return g.get("principal", ANONYMOUS)


PrincipalLoader = Callable[[str], Principal]


# Endpoints whose Authorization header carries their own secret (the operator's metrics token).
OWN_TOKEN_ENDPOINTS = frozenset({"metrics.metrics"})


def init_app(app: Flask, loader: PrincipalLoader, session_loader: Callable[[], Principal | None]) -> None:
    """Authenticate every request, then check the policy table before the view runs."""

    @app.before_request
    def _authorise() -> None:
        if request.endpoint is None or request.method == "OPTIONS":
            return  # 404/405 are answered by routing
        if request.endpoint in OWN_TOKEN_ENDPOINTS:
            return  # its bearer token is not a staff or device token: the view checks it
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise errors.AuthRequired("Authorization header must be 'Bearer <token>'")
            g.principal = loader(token.strip())
        else:
            g.principal = session_loader() or ANONYMOUS
        principal = g.principal
        roles = allowed_roles(request.endpoint, request.method)
        if PUBLIC in roles or principal.policy_role in roles:
            return
        if not principal.is_authenticated:  # the session loader may say why it was not used
            raise g.pop("auth_refusal", None) or errors.AuthRequired()
        raise errors.Forbidden(f"role {principal.policy_role} may not call {request.endpoint}")


def require(condition: bool, detail: str | None = None) -> None:
    """Scope check inside an operation: raise the contract's 403 unless ``condition`` holds."""
    if not condition:
        raise errors.Forbidden(detail)

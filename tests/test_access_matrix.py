"""Walk every route of the app against the endpoint × role table in ``server.policy``.

For each (endpoint, method, role) a real request is made with a principal of that role. Roles the
table refuses must get the contract's 401 (anonymous) or 403 (authenticated); roles it admits must
never be stopped by the policy layer. New endpoints are covered without touching this file: URL
parameters are filled from their names, or else from their converters.
"""
from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask

from server import policy
from server.core.access import ALL_ROLES, DEVICE, PUBLIC, Role, allowed_roles
from server.extensions import db
from tests import factories
from tests.helpers import CONTRACT_KEYS, bearer

SKIPPED_METHODS = {"HEAD", "OPTIONS"}
# Values for URL parameters by name; anything else is filled by converter type.
_BY_CONVERTER = {"int": "1", "float": "1.0", "uuid": "00000000-0000-0000-0000-000000000000",
                 "path": "swagger-ui.css", "default": "1", "string": "1"}


def _routes(app: Flask) -> list[tuple[str, str, Any]]:
    return sorted((rule.endpoint, method, rule) for rule in app.url_map.iter_rules()
                  if rule.endpoint != "static" for method in sorted(rule.methods - SKIPPED_METHODS))


def test_every_endpoint_is_in_the_policy_table(app):
    missing = sorted({endpoint for endpoint, _, _ in _routes(app) if endpoint not in policy.TABLE})
    assert not missing, f"endpoints missing from server/policy.py TABLE: {missing}"
    unrouted = sorted(set(policy.TABLE) - {rule.endpoint for rule in app.url_map.iter_rules()})
    assert not unrouted, f"server/policy.py TABLE lists endpoints that do not exist: {unrouted}"


def test_every_method_of_every_endpoint_admits_someone(app):
    closed = [f"{method} {endpoint}" for endpoint, method, _ in _routes(app)
              if not allowed_roles(endpoint, method)]
    assert not closed, f"routed but refused to everyone (add them to server/policy.py): {closed}"


def test_table_roles_are_known_roles():
    unknown = {f"{endpoint} {method}: {sorted(roles - set(ALL_ROLES))}"
               for endpoint, rules in policy.TABLE.items() for method, roles in rules.items()
               if roles - set(ALL_ROLES)}
    assert not unknown


class Principals:
    """One principal per role, all in one unit, plus plausible records to put in URLs."""

    def __init__(self) -> None:
        unit = factories.UnitFactory()
        self.users = {role.value: factories.UserFactory(role=role, unit=unit) for role in Role}
        self.users["inspector"] = factories.inspector(unit=unit)
        self.subject = factories.inspector(unit=unit)
        self.device = factories.DeviceFactory(user=self.users["inspector"])
        self.other_device = factories.DeviceFactory(user=self.subject)
        self.values = {
            "user_id": str(self.subject.id),
            "certificate_id": str(self.subject.certificates[0].id),
            "device_id": self.other_device.id,
            "filename": "swagger-ui.css",
        }
        db.session.commit()  # a savepoint: a failed request below rolls back to here, not further

    def headers(self, role: str) -> dict[str, str]:
        """A fresh credential per request: an earlier request (logout) may have ended the last one."""
        if role == PUBLIC:
            return {}
        if role == DEVICE:
            from server.modules.devices.operations import issue_tokens

            return bearer(str(issue_tokens(db.session, self.device)["access_token"]))
        from server.modules.auth.operations import staff_token

        user = self.users[role]
        db.session.refresh(user)
        return bearer(staff_token(user)["access_token"])

    def url(self, rule: Any) -> str:
        values = {}
        for name in rule.arguments:
            converter = type(rule._converters[name]).__name__.lower().removesuffix("converter")  # noqa: SLF001
            values[name] = self.values.get(name) or _BY_CONVERTER.get(converter, "1")
        url = rule.rule
        for name, value in values.items():
            url = re.sub(rf"<(?:[^:<>]+:)?{name}>", value, url)
        return url


@pytest.mark.parametrize("role", ALL_ROLES)
def test_policy_matrix(app, client, db_session, role):
    principals = Principals()
    failures = []
    for endpoint, method, rule in _routes(app):
        roles = allowed_roles(endpoint, method)
        admitted = PUBLIC in roles or role in roles
        url = principals.url(rule)
        kwargs: dict[str, Any] = {"headers": principals.headers(role)}
        if method in {"POST", "PUT", "PATCH"}:
            kwargs["json"] = {}
        response = client.open(url, method=method, **kwargs)
        response.close()  # file responses (Swagger UI assets) hold their file open until closed
        db.session.rollback()  # as the request teardown would: nothing unfinished leaks into the next one
        status = response.status_code
        body = response.get_json(silent=True) if response.mimetype == "application/json" else None
        where = f"{method} {url} ({endpoint}) as {role}: {status} {str(body)[:160]}"
        if admitted:
            refused_by_policy = status == 401 or (
                status == 403 and isinstance(body, dict) and body.get("code") == "auth.forbidden"
                and str(body.get("detail", "")).startswith("role "))
            if refused_by_policy:
                failures.append(f"admitted but refused: {where}")
            elif status >= 500:
                failures.append(f"server error: {where}")
        else:
            expected = 401 if role == PUBLIC else 403
            code = "auth.required" if role == PUBLIC else "auth.forbidden"
            if status != expected or not isinstance(body, dict) or not CONTRACT_KEYS <= body.keys() \
                    or body["code"] != code:
                failures.append(f"should be refused with {expected} {code}: {where}")
    assert not failures, "\n".join(failures)


def test_matrix_fills_every_url_parameter(app, db_session):
    principals = Principals()
    for _, _, rule in _routes(app):
        assert "<" not in principals.url(rule), rule.rule

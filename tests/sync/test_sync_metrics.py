"""Sync pushes and pulls are counted for /metrics (issue 16, item 5): operations by result, changes
pulled, bytes both ways."""
from __future__ import annotations

from prometheus_client import REGISTRY

from tests.sync.test_push_pull import note, pull_all, push


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_pushes_and_pulls_are_counted(client, db_session, field):
    before = {"applied": _sample("enforce_sync_push_operations_total", status="applied"),
              "pushes": _sample("enforce_sync_requests_total", direction="push"),
              "pulled": _sample("enforce_sync_pull_changes_total"),
              "push_bytes": _sample("enforce_sync_bytes_total", direction="push"),
              "pull_bytes": _sample("enforce_sync_bytes_total", direction="pull")}
    response = push(client, field.phone_a, [note(field.phone_a, field.inspection.id, f"笔记{i}") for i in range(3)])
    assert response.status_code == 200
    changes, _ = pull_all(client, field.phone_b)
    assert changes

    assert _sample("enforce_sync_push_operations_total", status="applied") - before["applied"] == 3
    assert _sample("enforce_sync_requests_total", direction="push") - before["pushes"] == 1
    assert _sample("enforce_sync_pull_changes_total") - before["pulled"] == len(changes)
    assert _sample("enforce_sync_bytes_total", direction="push") > before["push_bytes"]
    assert _sample("enforce_sync_bytes_total", direction="pull") > before["pull_bytes"]

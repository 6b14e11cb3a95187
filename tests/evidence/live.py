"""A real HTTP server (werkzeug, threaded) on a free port, over an app with its own migrated database."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator

from flask import Flask
from werkzeug.serving import make_server


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def seed_team(app: Flask) -> dict[str, Any]:
    """Commit a team, an inspection and a device in ``app``'s database; return plain values."""
    from server.extensions import db
    from server.modules.devices.operations import issue_tokens
    from tests.evidence.helpers import make_team

    with app.app_context():
        team = make_team()
        token = issue_tokens(db.session, team.device)["access_token"]
        db.session.commit()
        values = {"team": team, "device_id": team.device.id, "inspection_id": team.inspection.id,
                  "lead_id": team.lead.id, "member_id": team.member.id,
                  "auth": {"Authorization": f"Bearer {token}"}}
        db.session.remove()
    return values

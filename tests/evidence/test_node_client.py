"""Interop with tus-js-client (Node) over real HTTP: upload, stop after one chunk, resume, verify."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from server.extensions import db
from server.modules.evidence.models import Blob
from tests.evidence.media import photo_with_exif

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


def _node_ready() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_DIR / "node_modules" / "tus-js-client").is_dir():
        return "tus-js-client is not installed: run `npm ci` in tests/node (.ci/run does)"
    return None


@pytest.mark.skipif(_node_ready() is not None, reason=_node_ready() or "")
def test_tus_js_client_uploads_and_resumes(live, tmp_path):
    app, base, values = live
    data = photo_with_exif("2026:11:30 10:00:00", 33.87, 109.94, size=(600, 400)) + b"\x00" * 300_000
    path = tmp_path / "clip.jpg"
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    token = values["auth"]["Authorization"].split(" ", 1)[1]
    result = subprocess.run(["node", "upload.mjs", f"{base}/mobile/v1/uploads/", token, str(path), digest, "65536"],
                            cwd=NODE_DIR, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["first"]["stopped"] and 0 < report["first"]["sent"] < len(data)
    assert report["second"]["url"] == report["first"]["url"] and report["second"]["sent"] == len(data)
    with app.app_context():
        blob = db.session.get(Blob, digest)
        assert blob is not None and blob.size == len(data) and blob.media_type == "image/jpeg"
        db.session.remove()

"""The demo data hold a transferred case whose evidence package verifies with a plain python3."""
import subprocess
import sys
import zipfile

import sqlalchemy as sa

from server.modules.demo import operations as demo
from server.modules.transfers import package as package_ops
from server.modules.transfers.models import Transfer


def test_demo_transfer_package_verifies_with_plain_python3(app, db_session, tmp_path):
    demo.load(db_session, targets=12, inspectors=10)
    db_session.commit()
    transfer = db_session.scalar(sa.select(Transfer))
    assert transfer is not None and transfer.state.value == "receipt_signed"
    package = package_ops.request(db_session, case_id=transfer.case_id, transfer_id=transfer.id, by_user_id=None)
    db_session.commit()
    package = package_ops.build(db_session, package.id, app.config, commit=db_session.commit)
    (volume,) = package.volumes
    folder = tmp_path / "demo-package"
    with zipfile.ZipFile(package_ops.package_dir() / package.id / volume["name"]) as zf:
        zf.extractall(folder)
    run = subprocess.run([sys.executable, "-I", "-S", "verify.py"], cwd=folder, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "RESULT: PASSED" in run.stdout and "3 evidence items" in run.stdout
    assert "receipt acknowledgements/1.json (typed) recorded" in run.stdout

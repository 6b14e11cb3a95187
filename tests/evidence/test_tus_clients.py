"""Interop with the real tus clients over real HTTP: tuspy here, tus-js-client in test_node_client.py.

Stored on local disk and on S3 (moto's server, a separate S3 endpoint over HTTP).
"""
from __future__ import annotations

import hashlib
import io
import os
import socket
from pathlib import Path

import boto3
import pytest
from tusclient import client as tus_client

from server.core.storage import S3Store
from server.extensions import db
from server.modules.evidence import operations as evidence
from server.modules.evidence.models import EvidenceItem, EvidenceStatus
from tests.evidence.helpers import manifest
from tests.evidence.media import jpeg_bytes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _uploader(base, auth, data, **kwargs):
    digest = hashlib.sha256(data).hexdigest()
    client = tus_client.TusClient(f"{base}/mobile/v1/uploads/", headers=dict(auth))
    return client.uploader(file_stream=io.BytesIO(data), chunk_size=kwargs.pop("chunk_size", 4096),
                           metadata={"sha256": digest, "filename": "photo.jpg"}, **kwargs)


def test_tuspy_uploads_with_checksums_resumes_and_verifies_the_announced_item(live):
    app, base, values = live
    data = jpeg_bytes((400, 300), color="red")
    with app.app_context():
        body = manifest(values["team"], data)
        from server.modules.devices.models import Device
        from server.modules.users.models import User

        item = evidence.announce(db.session, device=db.session.get(Device, values["device_id"]),
                                 user=db.session.get(User, values["lead_id"]),
                                 inspection_id=values["inspection_id"], manifest=body)
        item_id = item.id
        db.session.commit()
        db.session.remove()

    first = _uploader(base, values["auth"], data, upload_checksum=True)
    first.upload(stop_at=len(data) // 2)
    assert 0 < first.offset < len(data)
    # a new client (after an app restart) resumes from the server's offset, found with HEAD
    second = _uploader(base, values["auth"], data, upload_checksum=True, url=first.url)
    assert second.offset == first.offset
    second.upload()
    assert second.offset == len(data)

    with app.app_context():
        item = db.session.get(EvidenceItem, item_id)
        assert item.status is EvidenceStatus.VERIFIED
        assert item.blob_sha256 == hashlib.sha256(data).hexdigest()
        from server.core.storage import get_store

        assert b"".join(get_store().iter_chunks(item.blob_sha256)) == data
        db.session.remove()


def test_tuspy_upload_stored_on_s3_through_moto_server(live, s3_endpoint, monkeypatch):
    app, base, values = live
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="evidence")
    store = S3Store("evidence", "qinling/", endpoint_url=s3_endpoint, region_name="us-east-1")
    monkeypatch.setattr(S3Store, "MULTIPART_THRESHOLD", 5 * 1024 * 1024)  # S3's smallest part size
    monkeypatch.setattr(S3Store, "PART_SIZE", 5 * 1024 * 1024)
    monkeypatch.setitem(app.extensions, "blob_store", store)
    data = jpeg_bytes((64, 64)) + os.urandom(11 * 1024 * 1024)  # a JPEG header, then enough for 3 parts
    _uploader(base, values["auth"], data, chunk_size=2 * 1024 * 1024).upload()
    digest = hashlib.sha256(data).hexdigest()
    assert store.exists(digest)
    head = store.client.head_object(Bucket="evidence", Key=f"qinling/sha256/{digest}")
    assert head["Metadata"]["sha256"] == digest and head["ContentLength"] == len(data)
    assert hashlib.sha256(b"".join(store.iter_chunks(digest))).hexdigest() == digest
    # the same bytes again are stored once: the second upload finds the object and adds nothing
    _uploader(base, values["auth"], data, chunk_size=4 * 1024 * 1024).upload()
    listed = store.client.list_objects_v2(Bucket="evidence", Prefix="qinling/")["KeyCount"]
    assert listed == 1


def test_s3_parts_are_sent_as_chunks_arrive_and_completion_only_joins_them(live, s3_endpoint, monkeypatch):
    app, base, values = live
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="evidence-parts")
    store = S3Store("evidence-parts", "", endpoint_url=s3_endpoint, region_name="us-east-1")
    monkeypatch.setitem(app.extensions, "blob_store", store)
    monkeypatch.setitem(app.config, "UPLOAD_S3_PART_BYTES", 5 * 1024 * 1024)
    data = jpeg_bytes((48, 48)) + os.urandom(13 * 1024 * 1024)
    digest = hashlib.sha256(data).hexdigest()
    upload = _uploader(base, values["auth"], data, chunk_size=3 * 1024 * 1024)
    upload.upload(stop_at=12 * 1024 * 1024)  # four PATCHes: two whole parts acknowledged
    pending = store.client.list_multipart_uploads(Bucket="evidence-parts")["Uploads"]
    assert [u["Key"] for u in pending] == [f"sha256/{digest}"]
    parts = store.client.list_parts(Bucket="evidence-parts", Key=f"sha256/{digest}", UploadId=pending[0]["UploadId"])
    assert [p["PartNumber"] for p in parts["Parts"]] == [1, 2]
    assert not store.exists(digest)  # nothing is visible before the whole file is verified
    upload.upload()
    assert store.exists(digest)
    assert hashlib.sha256(b"".join(store.iter_chunks(digest))).hexdigest() == digest
    assert store.client.head_object(Bucket="evidence-parts", Key=f"sha256/{digest}")["Metadata"]["sha256"] == digest
    assert not store.client.list_multipart_uploads(Bucket="evidence-parts").get("Uploads")
    with app.app_context():
        assert not list(Path(app.config["UPLOAD_DIR"]).rglob("*.parts.json"))

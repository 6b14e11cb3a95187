"""Content-addressed blob storage behind one interface: local disk (default) or S3 (boto3).

Blobs are named by the SHA-256 of their bytes, so the same bytes are stored once. Blobs are
write-once: ``put_file`` of an existing digest is a no-op, and only ``delete`` (retention policy,
with approval, in the evidence module) removes one.
"""
from __future__ import annotations

import errno
import io
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from server.core import errors

_SHA256 = re.compile(r"^[0-9a-f]{64}$")

StorageFull = errors.error_code("storage.full", 507, "服务器存储空间已满，未保存的数据未被确认，请稍后重试",
                                "The server's storage is full; nothing unsaved was acknowledged; retry later")


def _check_digest(digest: str) -> str:
    if not _SHA256.match(digest):
        raise ValueError(f"not a lower-case sha256 hex digest: {digest!r}")
    return digest


class BlobStore(Protocol):
    def exists(self, digest: str) -> bool: ...
    def put_file(self, digest: str, path: Path, *, move: bool = False) -> None: ...
    def open(self, digest: str) -> IO[bytes]: ...
    def iter_chunks(self, digest: str, chunk_size: int = 1 << 20) -> Iterator[bytes]: ...
    def health(self) -> None: ...
    def delete(self, digest: str) -> None: ...
    def digests(self) -> Iterator[str]: ...


class LocalStore:
    """Blobs under root/ab/cd/<digest>; written to a temporary file, fsynced, then renamed."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, digest: str) -> Path:
        _check_digest(digest)
        return self.root / digest[:2] / digest[2:4] / digest

    def exists(self, digest: str) -> bool:
        return self._path(digest).exists()

    def put_file(self, digest: str, path: Path, *, move: bool = False) -> None:
        """Store the file's bytes. ``move``: the caller's file (already fsynced) is renamed into
        place when it is on the same file system, so a 1 GiB upload is not copied again; on
        another file system it is copied, fsynced, and only then deleted. Either way a moved file
        is gone afterwards, also when these bytes were already stored. A full disk raises
        ``StorageFull`` and leaves the caller's file as it was (still writable)."""
        target = self._path(digest)
        if target.exists():
            if move:
                Path(path).unlink(missing_ok=True)
            return
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if move and self._rename(path, target):
                return
            self._copy(path, target)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull(digest=digest) from None
            raise
        if move:
            Path(path).unlink(missing_ok=True)

    @staticmethod
    def _rename(path: Path, target: Path) -> bool:
        try:
            os.replace(path, target)
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                return False  # another file system: copy
            raise
        os.chmod(target, 0o444)  # evidence is write-once
        _fsync_dir(target.parent)
        return True

    @staticmethod
    def _copy(path: Path, target: Path) -> None:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o444)
            os.replace(tmp, target)
            _fsync_dir(target.parent)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def open(self, digest: str) -> IO[bytes]:
        return open(self._path(digest), "rb")

    def iter_chunks(self, digest: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        with self.open(digest) as fh:
            while chunk := fh.read(chunk_size):
                yield chunk

    def delete(self, digest: str) -> None:
        self._path(digest).unlink(missing_ok=True)

    def health(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.root, prefix=".health-"):
            pass

    def digests(self) -> Iterator[str]:
        """Every stored digest (for backups)."""
        for path in sorted(self.root.glob("??/??/*")):
            if _SHA256.match(path.name) and path.is_file():
                yield path.name

    def free_bytes(self) -> int | None:
        return free_bytes(self.root)


def free_bytes(folder: Path) -> int:
    """Bytes an unprivileged writer may still put in ``folder``'s file system."""
    folder.mkdir(parents=True, exist_ok=True)
    stat = os.statvfs(folder)
    return stat.f_bavail * stat.f_frsize


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3Store:
    """Blobs as objects ``<prefix>sha256/<digest>`` in one bucket.

    boto3 uploads files over ``MULTIPART_THRESHOLD`` in parts; every part carries an
    ``x-amz-checksum-sha256`` that the store verifies on receipt (a full-object SHA-256 is not
    defined for multipart objects, so the object also gets our whole-file digest as metadata).
    """

    MULTIPART_THRESHOLD = 64 * 1024 * 1024
    PART_SIZE = 16 * 1024 * 1024  # boto3 holds up to max_concurrency parts in memory

    def __init__(self, bucket: str, prefix: str = "", **client_kwargs: str) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix
        config = Config(connect_timeout=3, read_timeout=30, retries={"max_attempts": 3})
        self.client = boto3.client("s3", config=config, **client_kwargs)

    def _key(self, digest: str) -> str:
        return f"{self.prefix}sha256/{_check_digest(digest)}"

    def exists(self, digest: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(digest))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise
        return True

    def put_file(self, digest: str, path: Path, *, move: bool = False) -> None:
        from boto3.s3.transfer import TransferConfig

        if not self.exists(digest):
            config = TransferConfig(multipart_threshold=self.MULTIPART_THRESHOLD,
                                    multipart_chunksize=self.PART_SIZE, max_concurrency=2)
            self.client.upload_file(str(path), self.bucket, self._key(digest), Config=config,
                                    ExtraArgs={"ChecksumAlgorithm": "SHA256", "Metadata": {"sha256": digest}})
        if move:
            Path(path).unlink(missing_ok=True)

    def delete(self, digest: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(digest))

    # Multipart, part by part as an upload's bytes arrive (evidence/s3parts.py): the object appears
    # only when ``finish_parts`` joins them; an unfinished one is invisible (and aborted on
    # termination; a bucket lifecycle rule should abort incomplete multipart uploads after days).

    def begin_parts(self, digest: str) -> str:
        response = self.client.create_multipart_upload(Bucket=self.bucket, Key=self._key(digest),
                                                       ChecksumAlgorithm="SHA256", Metadata={"sha256": digest})
        return str(response["UploadId"])

    def put_part(self, digest: str, upload_id: str, number: int, source: IO[bytes], start: int,
                 length: int) -> dict[str, object]:
        """Send bytes [start, start + length) of ``source`` as part ``number``, streamed from the
        file (never the whole part in memory), with its SHA-256 for the store to check."""
        import base64
        import hashlib

        part = _FileRange(source.fileno(), start, length)
        h = hashlib.sha256()
        while block := part.read(1 << 20):
            h.update(block)
        if part.tell() != length:
            raise OSError(f"file holds {part.tell()} of the part's {length} bytes")
        part.seek(0)
        checksum = base64.b64encode(h.digest()).decode()
        response = self.client.upload_part(Bucket=self.bucket, Key=self._key(digest), UploadId=upload_id,
                                           PartNumber=number, Body=part, ContentLength=length,
                                           ChecksumSHA256=checksum)
        return {"PartNumber": number, "ETag": response["ETag"], "ChecksumSHA256": checksum}

    def finish_parts(self, digest: str, upload_id: str, parts: list[dict[str, object]]) -> None:
        if self.exists(digest):  # the same bytes are stored already: keep that object
            self.abort_parts(digest, upload_id)
            return
        self.client.complete_multipart_upload(Bucket=self.bucket, Key=self._key(digest), UploadId=upload_id,
                                              MultipartUpload={"Parts": parts})

    def abort_parts(self, digest: str, upload_id: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self._key(digest), UploadId=upload_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in {"NoSuchUpload", "404"}:
                raise

    def open(self, digest: str) -> IO[bytes]:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(digest))["Body"]

    def iter_chunks(self, digest: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        body = self.open(digest)
        try:
            while chunk := body.read(chunk_size):
                yield chunk
        finally:
            body.close()

    def health(self) -> None:
        self.client.head_bucket(Bucket=self.bucket)

    def digests(self) -> Iterator[str]:
        """Every stored digest (for backups)."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=f"{self.prefix}sha256/")
        for page in pages:
            for item in page.get("Contents", []):
                name = item["Key"].rsplit("/", 1)[-1]
                if _SHA256.match(name):
                    yield name


class _FileRange(io.RawIOBase):
    """A read-only, seekable window on an open file (``os.pread``: the file's own offset is not moved)."""

    def __init__(self, fd: int, start: int, length: int) -> None:
        self.fd, self.start, self.length, self.pos = fd, start, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.length}[whence]
        self.pos = max(0, min(self.length, base + offset))
        return self.pos

    def read(self, size: int = -1) -> bytes:
        want = self.length - self.pos if size is None or size < 0 else min(size, self.length - self.pos)
        data = os.pread(self.fd, want, self.start + self.pos) if want > 0 else b""
        self.pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def from_url(url: str) -> BlobStore:
    """file:///abs/path  or  s3://bucket/prefix?endpoint_url=http://…&region=…"""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return LocalStore(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        kwargs = {}
        if "endpoint_url" in query:
            kwargs["endpoint_url"] = query["endpoint_url"]
        if "region" in query:
            kwargs["region_name"] = query["region"]
        prefix = parts.path.lstrip("/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return S3Store(parts.netloc, prefix, **kwargs)
    raise ValueError(f"unsupported storage URL {url!r}")


def put_bytes(data: bytes) -> str:
    """Store ``data`` (fsynced) under its SHA-256 in the app's blob store; returns the digest."""
    import hashlib

    digest = hashlib.sha256(data).hexdigest()
    store = get_store()
    if not store.exists(digest):
        fd, tmp = tempfile.mkstemp(prefix="blob-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            store.put_file(digest, Path(tmp), move=True)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return digest


def get_store() -> BlobStore:
    """The app's blob store, built once from ``STORAGE_URL``."""
    from flask import current_app

    store = current_app.extensions.get("blob_store")
    if store is None:
        store = current_app.extensions["blob_store"] = from_url(current_app.config["STORAGE_URL"])
    return store

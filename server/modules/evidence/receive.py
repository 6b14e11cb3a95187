"""A PATCH body read as its bytes arrive, and written so that nothing unwritten is acknowledged.

Reading. Under gunicorn a body of known length is read straight from the socket
(``recv_into`` one reused buffer): every byte is handed over the moment it arrives, so a client
that resets or stalls loses nothing that reached us, and no layer copies the bytes five times.
The socket gets a short timeout (a *tick*); a body silent for ``UPLOAD_READ_TIMEOUT_S`` ends the
request (tusd waits 60 s), and an idle reader gives way to a newer PATCH of the same upload that
asked for its lock (stale-lock takeover). Chunked bodies and other servers use the WSGI stream.

Writing. ``os.pwrite`` may write fewer bytes than asked (a full disk) and ``fsync`` may fail:
both are checked, the file is cut back to what was wholly written, and the whole-file hash is fed
exactly the bytes that were written. A full disk is answered 507 ``storage.full``.
"""
from __future__ import annotations

import errno
import hashlib
import io
import os
import socket
import time
from dataclasses import dataclass
from typing import IO, Any, Callable

from server.core import errors
from server.core.storage import StorageFull
from server.modules.evidence import hashstate

READ_SIZE = 1 << 20
WRITEBACK_BYTES = 1 << 20  # start writing back every this many bytes, so the fsync has little left


def _load_sync_file_range() -> Callable[[int, int, int], None] | None:
    """Linux ``sync_file_range(SYNC_FILE_RANGE_WRITE)``: start writing a range back to disk without
    waiting, so the disk works while the network does (+15 % on a quiet machine with 8 MiB
    PATCHes). Durability still comes from the fsync before the offset is acknowledged."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]

    def start_writeback(fd: int, offset: int, length: int) -> None:
        function(fd, offset, length, 2)  # SYNC_FILE_RANGE_WRITE; a failure only loses the overlap

    return start_writeback


_start_writeback = _load_sync_file_range()
CHECKSUMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}

ChecksumMismatch = errors.error_code("upload.checksum_mismatch", 460, "分块校验和不匹配，本块已丢弃",
                                     "The chunk checksum does not match; the chunk was discarded")
BeyondLength = errors.error_code("upload.beyond_length", 413, "数据超出声明的 Upload-Length，本块未写入",
                                 "The data goes past the declared Upload-Length; nothing of it was written")
PartialLost = errors.error_code("upload.partial_lost", 410, "服务器上的已确认数据丢失，请重新开始上传",
                                "Acknowledged bytes are missing on the server; start the upload again")


class Interrupted(Exception):
    """The body ended early: ``reason`` is disconnected, stalled or taken_over."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BodyReader:
    """``read()`` returns the next bytes that arrived (at most READ_SIZE), ``b""`` at the end of
    the body, and raises ``Interrupted`` when it cannot go on. Returned views are valid until the
    next ``read()``."""

    def __init__(self, environ: dict[str, Any], stream: IO[bytes], *, timeout: float,
                 should_yield: Callable[[float], bool] = lambda idle: False) -> None:
        self.timeout = timeout
        self.tick = max(0.05, min(1.0, timeout))
        self.should_yield = should_yield
        self._last = time.monotonic()
        self._stream = stream
        self._body = environ.get("wsgi.input")
        self._sock: socket.socket | None = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
        self._saved_timeout = self._sock.gettimeout() if self._sock is not None else None
        reader = getattr(self._body, "reader", None)
        # gunicorn's own body of known length (with Unreader.take_buffered, as in gunicorn 27):
        # anything else is read through the WSGI stream
        self.direct = (self._sock is not None and type(reader).__name__ == "LengthReader"
                       and hasattr(getattr(reader, "unreader", None), "take_buffered")
                       and isinstance(getattr(self._body, "buf", None), io.BytesIO)
                       and isinstance(getattr(reader, "length", None), int))
        self._buffer = bytearray(READ_SIZE) if self.direct else None
        self._pending = b""
        self._error: Interrupted | None = None
        if self.direct:
            reader = self._body.reader  # type: ignore[union-attr]
            held = self._body.buf.getvalue() + reader.unreader.take_buffered()  # type: ignore[union-attr]
            self._body.buf = io.BytesIO()  # type: ignore[union-attr]
            self._pending, rest = held[:reader.length], held[reader.length:]
            if rest:
                reader.unreader.unread(rest)  # a pipelined next request
            reader.length -= len(self._pending)
            self._sock.settimeout(self.tick)  # type: ignore[union-attr]
        elif self._sock is not None:
            self._sock.settimeout(timeout)  # a chunked parser cannot resume after a timeout: one long wait

    def read(self) -> bytes | memoryview:
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        if self._error is not None:
            raise self._error
        return self._read_direct() if self.direct else self._read_stream()

    def _fail(self, reason: str) -> Interrupted:
        if self._body is not None and hasattr(self._body, "failed"):
            self._body.failed = True  # gunicorn: the connection is not reused
        self._error = Interrupted(reason)
        return self._error

    def _read_direct(self) -> memoryview | bytes:
        reader = self._body.reader  # type: ignore[union-attr]
        if reader.length <= 0:
            return b""
        assert self._sock is not None and self._buffer is not None
        while True:
            try:
                got = self._sock.recv_into(self._buffer, min(READ_SIZE, reader.length))
            except TimeoutError:
                idle = time.monotonic() - self._last
                if idle >= self.timeout:
                    raise self._fail("stalled") from None
                if self.should_yield(idle):
                    raise self._fail("taken_over") from None
                continue
            except OSError:
                raise self._fail("disconnected") from None
            if not got:
                raise self._fail("disconnected")
            self._last = time.monotonic()
            reader.length -= got
            return memoryview(self._buffer)[:got]

    def _read_stream(self) -> bytes:
        try:
            return self._stream.read(READ_SIZE)
        except TimeoutError:
            error = self._fail("stalled")
        except Exception as exc:  # noqa: BLE001 - werkzeug ClientDisconnected, gunicorn NoMoreData, socket errors
            if not isinstance(exc, OSError) and type(exc).__name__ != "ClientDisconnected":
                raise
            error = self._fail("disconnected")
        # gunicorn's Body keeps what it gathered towards the size asked for: keep it too
        held = getattr(self._stream, "buf", None)
        if isinstance(held, io.BytesIO) and held.tell():
            data = held.getvalue()
            self._stream.buf = io.BytesIO()  # type: ignore[attr-defined]
            return data
        raise error

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.settimeout(self._saved_timeout)
            except OSError:
                pass


def write_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """pwrite every byte or raise: a short write is retried and turns into the error it hides."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        if written <= 0:
            raise OSError(errno.ENOSPC, "no byte written")
        view, offset = view[written:], offset + written


def storage_error(exc: OSError, **context: Any) -> errors.DomainError | None:
    """The error contract's answer to a failed write or fsync, or None if it is not about space."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(**context)
    return None


@dataclass
class Received:
    start: int
    offset: int
    state: bytes | None
    digest: str | None  # whole-file hex digest of the bytes written, when the upload is complete
    interrupted: str | None = None
    error: errors.DomainError | None = None  # raised after what was durably written is acknowledged


def receive(fh: IO[bytes], start: int, total: int, hash_state: bytes | None, body: BodyReader,
            checksum: tuple[str, bytes] | None) -> Received:
    """Append the body at the acknowledged offset ``start``; fsync. Never touches the database.

    A body that stops early keeps what arrived (tus: "should keep as much as possible"), except
    with a chunk checksum, which can only be checked on the whole chunk.
    """
    fd = fh.fileno()
    if os.fstat(fd).st_size < start:
        raise PartialLost(offset=start)  # never pad a gap with zeros
    os.ftruncate(fd, start)  # bytes past the acknowledged offset were never acknowledged
    running = hashstate.resume(hash_state, fh, start)
    chunk_hash = CHECKSUMS[checksum[0]]() if checksum else None
    offset, interrupted, failure = start, None, None
    flushed = start
    while True:
        try:
            block = body.read()
        except Interrupted as exc:
            interrupted = exc.reason
            break
        if not block:
            break
        if offset + len(block) > total:
            os.ftruncate(fd, start)
            raise BeyondLength(length=total, offset=start)
        try:
            write_all(fd, block, offset)
        except OSError as exc:
            failure = storage_error(exc, offset=offset)
            if failure is None:
                os.ftruncate(fd, start)
                raise
            break
        running.update(block)
        if chunk_hash is not None:
            chunk_hash.update(block)
        offset += len(block)
        if _start_writeback is not None and offset - flushed >= WRITEBACK_BYTES:
            _start_writeback(fd, flushed, offset - flushed)
            flushed = offset
    if checksum is not None and (interrupted or failure or chunk_hash.digest() != checksum[1]):  # type: ignore[union-attr]
        os.ftruncate(fd, start)
        if interrupted or failure:
            return Received(start, start, hash_state, None, interrupted, failure)
        raise ChecksumMismatch(algorithm=checksum[0])
    try:
        os.ftruncate(fd, offset)  # a block cut short by a full disk is not kept
        os.fsync(fd)
    except OSError as exc:
        error = storage_error(exc, offset=start) or errors.InternalError("fsync failed")
        _cut(fd, start)
        return Received(start, start, hash_state, None, interrupted, error)
    digest = None
    if offset == total and failure is None:
        if os.fstat(fd).st_size != total:  # what is on disk, not only what was sent, is complete
            raise PartialLost(offset=start, on_disk=os.fstat(fd).st_size)
        digest = running.hexdigest()
    return Received(start, offset, running.state(), digest, interrupted, failure)


def _cut(fd: int, length: int) -> None:
    try:
        os.ftruncate(fd, length)
    except OSError:
        pass  # the next PATCH cuts back to the acknowledged offset again

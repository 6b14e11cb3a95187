"""Background work on evidence: metadata and plausibility, thumbnails, Merkle roots, fixity, expiry.

Tasks take ids (digests), are idempotent and are sent after commit
(``server.core.tasks.send_after_commit``); in the embedded default they run in-process.
"""
from __future__ import annotations

from celery import shared_task


@shared_task(name="evidence.process_blob")
def process_blob(digest: str) -> None:
    """Everything to do once new bytes are stored (filled in by the metadata slice)."""
    from server.modules.evidence import pipeline

    pipeline.process_blob(digest)

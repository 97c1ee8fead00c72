"""The length of the broker's delivery queue, read by the worker's supervisor."""

from __future__ import annotations

from notify import keys
from notify.redis.client import connect_sync
from notify.redis.errors import REDIS_ERRORS


class Backlog:
    """How many delivery batches wait in a Celery queue (None when Redis cannot tell)."""

    def __init__(self, url: str, queue: str) -> None:
        self._client = connect_sync(url)
        self._key = keys.CELERY_PREFIX + queue

    def size(self) -> int | None:
        try:
            return int(self._client.llen(self._key))
        except REDIS_ERRORS:
            return None

    def close(self) -> None:
        self._client.close()

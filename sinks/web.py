"""The web sink: nothing to send.

Open ``/v1/feed`` streams read matching events from the log as they are published,
and a client that reconnects resumes by event id, so the feed never depends on this
record. The delivery is marked delivered at once; it exists so that every
(subscription, event) pair has its one record, whatever the sink.
"""

from __future__ import annotations

from notify.sinks.base import Job, Receipt


class WebSink:
    kind = "web"

    def target(self, job: Job) -> str | None:
        return None

    async def deliver(self, job: Job) -> Receipt:
        return Receipt(detail="available on /v1/feed")

    async def aclose(self) -> None:
        return None

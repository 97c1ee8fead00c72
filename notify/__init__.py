"""notify: event notification fan-out.

``notify.Publisher`` and ``notify.AsyncPublisher`` write events straight into Redis;
``notify.Client`` speaks to a gateway over HTTP (publish, stream, history,
subscriptions, deliveries). They load lazily, so the pure modules of this package
import no I/O library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from notify.client import Client
    from notify.publisher import AsyncPublisher, Publisher

__all__ = ["AsyncPublisher", "Client", "Publisher"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from notify import client

        return client.Client
    if name in __all__:
        from notify import publisher

        return getattr(publisher, name)
    raise AttributeError(f"module 'notify' has no attribute {name!r}")

"""notify: event notification fan-out.

``notify.Publisher`` and ``notify.AsyncPublisher`` write events straight into Redis.
They load lazily, so the pure modules of this package import no I/O library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from notify.publisher import AsyncPublisher, Publisher

__all__ = ["AsyncPublisher", "Publisher"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from notify import publisher

        return getattr(publisher, name)
    raise AttributeError(f"module 'notify' has no attribute {name!r}")

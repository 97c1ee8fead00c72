"""notify: event notification fan-out."""

from notify.publisher import AsyncPublisher, Publisher

__all__ = ["AsyncPublisher", "Publisher"]

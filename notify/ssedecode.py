"""Reading the Server-Sent Events wire format (pure): lines in, frames out.

Follows the WHATWG rules a browser's ``EventSource`` applies: ``field: value`` lines (one
optional space after the colon), comment lines starting with ``:``, ``data`` lines
joined with newlines, a blank line ends a frame. An ``id`` line sets the stream's last
event id even in a frame without data (notify's first frame does exactly that).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Frame:
    event: str  # "message" when the frame had no ``event:`` line
    data: str
    last_event_id: str  # the stream's last event id once this frame is read


class Decoder:
    def __init__(self, last_event_id: str = "") -> None:
        self.last_event_id = last_event_id
        self.retry_ms: int | None = None
        self._event = ""
        self._data: list[str] = []
        self._has_data = False

    def feed(self, line: str) -> Frame | None:
        """One line (without its end-of-line); a frame when this line completed one."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._has_data = True
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> Frame | None:
        event, data, has_data = self._event or "message", "\n".join(self._data), self._has_data
        self._event, self._data, self._has_data = "", [], False
        if not has_data:
            return None
        return Frame(event, data, self.last_event_id)

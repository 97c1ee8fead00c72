"""The WebSocket fast path reads uvicorn's protocol internals: pinned to what was tested."""

from __future__ import annotations

from notify.api import wsconn


def test_installed_uvicorn_and_websockets_are_the_tested_ones() -> None:
    # an upgrade past these needs notify/api/wsconn.py read again, then TESTED widened
    assert wsconn.untested() == []


def test_uvicorns_protocol_has_what_the_fast_path_reads() -> None:
    assert wsconn.compatible() and wsconn.FAST

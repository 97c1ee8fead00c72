"""notify's Lua: one ``.lua`` file per script in ``lua/`` beside this module.

Every script is sent as the shared ``prelude.lua`` followed by its own file, so what
several scripts share (the clock, the delivery record's layout) is written once.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def source(name: str) -> str:
    """The text Redis runs for script ``name`` (``lua/<name>.lua``)."""
    folder = resources.files("notify.redis").joinpath("lua")
    prelude = folder.joinpath("prelude.lua").read_text(encoding="utf-8")
    return prelude + "\n" + folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")

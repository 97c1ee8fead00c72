"""Email templates: the defaults shipped in ``notify/templates`` and the operator's own.

Templates are ``string.Template`` text (``$name`` placeholders, ``$$`` for a dollar).
``NOTIFY_EMAIL_TEMPLATES`` names a directory whose files replace the defaults of the
same name; files it lacks keep the default. Every template is checked when loaded
(syntax, placeholders known), so a broken one stops a worker at start-up with an
error naming the setting and the file, never a delivery at 3 a.m.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from notify.errors import ConfigError

SETTING = "NOTIFY_EMAIL_TEMPLATES"

ITEM_FIELDS = frozenset(
    {"title", "type", "channel", "time", "event_id", "origin", "summary", "data"}
)
EVENT_FIELDS = ITEM_FIELDS | {"data_note", "subscription", "pattern", "unsubscribe_url"}
DIGEST_FIELDS = frozenset(
    {
        "count",
        "pattern",
        "first_time",
        "last_time",
        "events",
        "data_note",
        "subscription",
        "unsubscribe_url",
    }
)
FIELDS: dict[str, frozenset[str]] = {
    "event.subject": EVENT_FIELDS,
    "event.txt": EVENT_FIELDS,
    "event.html": EVENT_FIELDS,
    "digest.subject": DIGEST_FIELDS,
    "digest.txt": DIGEST_FIELDS,
    "digest.html": DIGEST_FIELDS,
    "digest-item.txt": ITEM_FIELDS,
    "digest-item.html": ITEM_FIELDS,
}
MAX_TEMPLATE_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Templates:
    by_name: dict[str, Template]
    origin: dict[str, str]  # name -> where it came from ("default" or the file path)

    def __getitem__(self, name: str) -> Template:
        return self.by_name[name]


def default_text(name: str) -> str:
    return (resources.files("notify") / "templates" / name).read_text(encoding="utf-8")


def load(directory: Path | None) -> Templates:
    """The templates, the operator's where given; raise ConfigError naming the setting."""
    overrides: dict[str, Path] = {}
    if directory is not None:
        if not directory.is_dir():
            raise ConfigError(SETTING, f"{directory} is not a directory")
        for path in sorted(directory.iterdir()):
            if path.name.startswith("."):
                continue
            if path.name not in FIELDS:
                raise ConfigError(
                    SETTING,
                    f"{path}: unknown template name; known: {', '.join(sorted(FIELDS))}",
                )
            overrides[path.name] = path
    by_name: dict[str, Template] = {}
    origin: dict[str, str] = {}
    for name, allowed in FIELDS.items():
        override = overrides.get(name)
        where = str(override) if override else f"default {name}"
        try:
            raw = override.read_bytes() if override else default_text(name).encode()
            if len(raw) > MAX_TEMPLATE_BYTES:
                raise ConfigError(SETTING, f"{where}: larger than {MAX_TEMPLATE_BYTES} bytes")
            source = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(SETTING, f"{where}: cannot be read as UTF-8: {exc}") from exc
        template = Template(source)
        check(template, allowed, where)
        by_name[name] = template
        origin[name] = where
    return Templates(by_name, origin)


def check(template: Template, allowed: frozenset[str], where: str) -> None:
    if not template.is_valid():
        try:
            template.substitute({name: "" for name in allowed})
        except ValueError as exc:
            raise ConfigError(SETTING, f"{where}: {exc} (write $$ for a dollar sign)") from exc
        except KeyError:
            pass
    unknown = sorted(set(template.get_identifiers()) - allowed)
    if unknown:
        raise ConfigError(
            SETTING,
            f"{where}: unknown placeholder ${unknown[0]}; known: "
            + ", ".join(f"${n}" for n in sorted(allowed)),
        )

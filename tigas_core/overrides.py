"""The one reading of a typed override: ``KEY=VALUE`` from a command line (``tigas train --set``,
``tigas zoo train --set``) or a value from YAML, turned into the kind of the setting it replaces and
refused, naming the key, when it does not fit, before any model or data is loaded."""
from __future__ import annotations

import json
from typing import Any

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


def split_assignment(item: str, option: str = "--set") -> tuple[str, str]:
    """``"KEY=VALUE"`` -> (KEY, VALUE), both stripped."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"{option} expects KEY=VALUE, got {item!r}")
    return key.strip(), value.strip()


def parse_bool(text: str) -> bool:
    """true/false, yes/no, on/off, 1/0 (any case)."""
    value = str(text).strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def parse_value(text: str) -> Any:
    """A value with no default to match: JSON when it reads as JSON (numbers, true/false, lists),
    else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def coerce_like(value: Any, default: Any, name: str) -> Any:
    """``value`` (text from a command line, or a YAML value) as the kind of ``default``: a flag, an
    integer, a number (YAML reads 1e-4 as text), a list or tuple (text: comma-separated), text."""
    try:
        if isinstance(default, bool):
            return value if isinstance(value, bool) else parse_bool(value)
        if isinstance(default, (int, float)):
            if isinstance(value, bool):
                raise ValueError("a flag is not a number")
            return float(value) if isinstance(default, float) else int(value)
        if isinstance(default, (list, tuple)):
            items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)):
                raise ValueError("expected a list")
            kind = type(default[0]) if default else None
            items = [coerce_like(item, default[0], name) for item in items] if kind and kind is not str else list(items)
            return type(default)(items)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be {type(default).__name__} like its default {default!r}, got {value!r} ({exc})") from None
    return value

"""``SETTING=VALUE`` options of the benchmarks (``--mpc``, ``--dagger``)."""

from __future__ import annotations

import argparse
import json


def parse_setting(p: argparse.ArgumentParser, option: str, item: str, names, strict: bool = True) -> tuple[str, object]:
    """``NAME=VALUE`` with NAME in ``names``; VALUE read as JSON (numbers, true, false). With ``strict=False`` a
    VALUE that is not JSON is kept as a string (``mixing=blend``); with ``strict`` it is refused."""
    name, _, value = item.partition("=")
    if name not in names or not value:
        p.error(f"{option} {item}: expected SETTING=VALUE with SETTING one of {sorted(names)}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        if strict:
            p.error(f"{option} {item}: {value!r} is not a JSON value (numbers, true, false)")
        return name, value


def describe(settings: dict) -> str:
    """``" (a=1, b=true)"``: the settings as they would be typed, or ``""`` for none."""
    typed = (f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in settings.items())
    return f" ({', '.join(typed)})" if settings else ""

"""What the benchmarks print about the machine they ran on."""

from __future__ import annotations

import datetime
import os
import platform
import time

import torch as th

import sb3_mimic


def machine() -> str:
    """CPUs, processor and the versions that matter, for a report's header."""
    return (f"{os.cpu_count()} CPUs (os.cpu_count), {platform.processor() or platform.machine()}, Python "
            f"{platform.python_version()}, torch {th.__version__}, sb3_mimic {sb3_mimic.__version__}")


def load_average() -> str:
    """The 1, 5 and 15 min load averages, for the record."""
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def report_header(title: str, now: datetime.datetime, *lines: str) -> list[str]:
    """A report's first lines: the title with the date, the machine and load average, then ``lines``."""
    return [f"# {title} ({now:%Y-%m-%d %H:%M %Z})", "", f"Machine: {machine()}; load average at start {load_average()}.",
            *lines]


def stopwatch_printer():
    """A ``say(line)`` that prints ``line`` indented, after the seconds since this call."""
    t0 = time.perf_counter()
    return lambda line: print(f"  [{time.perf_counter() - t0:6.0f} s] {line}", flush=True)


def describe(settings: dict) -> str:
    """``" (a=1, b=true)"``: settings as a report shows them (JSON values, strings bare), or ``""`` for none."""
    import json

    typed = (f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in settings.items())
    return f" ({', '.join(typed)})" if settings else ""

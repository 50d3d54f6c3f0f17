"""What the benchmarks print about the machine they ran on."""

from __future__ import annotations

import os
import platform

import torch as th

import sb3_mimic


def machine() -> str:
    """CPUs, processor and the versions that matter, for a report's header."""
    return (f"{os.cpu_count()} CPUs (os.cpu_count), {platform.processor() or platform.machine()}, Python "
            f"{platform.python_version()}, torch {th.__version__}, sb3_mimic {sb3_mimic.__version__}")


def load_average() -> str:
    """The 1, 5 and 15 min load averages, for the record."""
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())

"""This process's memory as the kernel reports it (``/proc/self/status``)."""

from __future__ import annotations


def status_mb(key: str = "VmRSS") -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process, in MB (NaN where
    the kernel does not report it)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")

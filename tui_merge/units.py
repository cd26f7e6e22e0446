"""Sizes and counts in words a person reads at a glance: ``13.5 GiB``, ``12.3M``.

A leaf below every layer, so the engine can say how much it downloads or writes without importing the views.
"""

from __future__ import annotations


def human_count(count: int) -> str:
    """12_345_678 -> '12.3M'."""
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)


def human_bytes(count: int) -> str:
    """Bytes in binary units, e.g. '13.5 GiB'."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"

"""Horizontal bars drawn with block characters, for values in a table cell.

A bar is scaled to a fixed range (a parameter's range, 0..1 for weights
and ``t``), never to the data shown, so equal values draw equal bars in
every row and every column, and a constant column is a straight edge.
"""

from __future__ import annotations

_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(value: float, low: float, high: float, width: int) -> str:
    """``value`` on the range ``low``..``high`` as ``width`` cells of eighth blocks (clipped to the range)."""
    if width <= 0:
        return ""
    fraction = 0.0 if high <= low else (value - low) / (high - low)
    eighths = round(min(max(fraction, 0.0), 1.0) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[part] if part else "")).ljust(width)

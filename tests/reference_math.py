"""Reference formulas the tests compare kernels against, written independently in NumPy."""

from __future__ import annotations

import numpy as np


def numpy_slerp(t: float, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Textbook slerp of two arrays seen as flat vectors; lerp when nearly colinear (|cos| > 0.9995)."""
    a64, b64 = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    cos = a64 @ b64 / (np.linalg.norm(a64) * np.linalg.norm(b64))
    if abs(cos) > 0.9995:
        return (1 - t) * a + t * b
    omega = np.arccos(cos)
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)

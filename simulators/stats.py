"""Small statistics the truth and the what-if share: a t quantile without SciPy and a mean's interval."""

from __future__ import annotations

import math

import numpy as np

Z_975 = 1.959963984540054


def t_quantile_975(df: int) -> float:
    """Student's t 97.5 % quantile by the Cornish-Fisher expansion (within 0.3 % for df >= 4)."""
    if df < 1:
        return math.inf
    z = Z_975
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / df + g2 / df**2 + g3 / df**3


def mean_and_halfwidth(values: np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of its 95 % confidence interval."""
    n = len(values)
    mean = float(np.mean(values))
    if n < 2:
        return mean, math.inf
    return mean, t_quantile_975(n - 1) * float(np.std(values, ddof=1)) / math.sqrt(n)

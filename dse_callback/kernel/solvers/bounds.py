"""Certified DSE bounds at t = 2 from the top eigenvalues and the exact normalizer.

At t = 2 the normalizer S = sum lambda_i^2 = ||A||_F^2 is exact. With the r deflated
eigenvalues known, the rest carries mass R = S - sum_{i<=r} lambda_i^2 spread over N - r
eigenvalues, each with lambda^2 <= m = min_{i<=r} lambda_i^2. Since x log2 x is convex
and x log2 x <= x log2 m on [0, m]:

    R log2 (R / (N - r)) <= F_rest <= R log2 m,

which brackets DSE = log2 S - (F_top + F_rest) / S. The bounds hold when the deflated
Ritz values are the top r eigenvalues (converged pairs from a random block start); they
are tight when the top r eigenvalues carry almost all of S (few clusters, small sigma/scale).
"""

from __future__ import annotations

import math

import torch

from .krylov import TopPairs


def top_k_bounds(frobenius_squared: float, n: int, pairs: TopPairs) -> tuple[float, float]:
    """(low, high) bounds in bits on the DSE at t = 2."""
    squares = pairs.values.square().cpu()
    s = frobenius_squared
    f_top = float(torch.special.xlogy(squares, squares).sum()) / math.log(2.0)
    rest = max(s - float(squares.sum()), 0.0)
    n_rest = n - squares.numel()
    if rest <= 0.0 or n_rest <= 0:
        value = math.log2(s) - f_top / s
        return value, value
    ceiling = float(squares.min())
    if ceiling * n_rest < rest:  # the deflated values are not the top ones: nothing certified
        return 0.0, math.log2(n)
    f_high = f_top + rest * math.log2(ceiling)
    f_low = f_top + rest * math.log2(rest / n_rest)
    return math.log2(s) - f_high / s, math.log2(s) - f_low / s

"""Rank statistics of the population studies: Spearman with a bootstrap interval, and partial Spearman.

- `spearman(x, y)`: Pearson correlation of the ranks (ties share their mean rank).
- `bootstrap_interval(x, y)`: the percentile 95% interval of Spearman over seeded
  resamples of the models (pairs drawn with replacement).
- `partial_spearman(x, y, control)`: the rank partial correlation of x and y given a
  third variable (here the models' mean feature norm), that is the Pearson correlation of
  the residuals of rank(x) and rank(y) after a least-squares fit on rank(control):

      rho_xy.c = (rho_xy - rho_xc rho_yc) / sqrt((1 - rho_xc^2) (1 - rho_yc^2)),

  with every rho a Spearman correlation. It asks whether a measure still orders the models
  by accuracy once the part of both orders that the feature norm explains is removed.

Every function returns NaN where the statistic is undefined (fewer than 3 pairs, or a
constant variable).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

MIN_PAIRS = 3


def _ranks(values: np.ndarray) -> np.ndarray:
    """Mean ranks along the last axis (ties share their mean rank)."""
    return stats.rankdata(values, axis=-1)


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of x (B, n) with the same row of y; NaN for a constant row."""
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((x * x).sum(axis=-1) * (y * y).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (x * y).sum(axis=-1) / np.where(denominator > 0, denominator, 1.0), np.nan)


def _pairs(*columns) -> tuple[np.ndarray, ...]:
    """The columns as float arrays, restricted to the rows where every column is finite."""
    arrays = [np.asarray(column, dtype=float) for column in columns]
    if len({len(array) for array in arrays}) != 1:
        raise ValueError(f"the columns must have one length each, got {[len(array) for array in arrays]}")
    keep = np.logical_and.reduce([np.isfinite(array) for array in arrays])
    return tuple(array[keep] for array in arrays)


def _resample(n: int, resamples: int, seed: int) -> np.ndarray:
    """Row indices (resamples, n) of the bootstrap: n draws with replacement per resample."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def spearman(x, y) -> float:
    """Spearman's rho of the finite pairs of x and y (n,); NaN below 3 pairs or for a constant column.

    >>> spearman([1, 2, 3, 4], [10, 20, 25, 100])
    1.0
    """
    x, y = _pairs(x, y)
    if len(x) < MIN_PAIRS:
        return math.nan
    return float(_pearson_rows(_ranks(x), _ranks(y)))


def bootstrap_interval(x, y, resamples: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of Spearman's rho over the finite pairs of x and y.

    Draws `resamples` sets of n pairs with replacement (a private numpy Generator seeded by
    `seed`; the global RNGs are untouched), computes rho on each and returns the
    (1 - level) / 2 and (1 + level) / 2 quantiles of the finite ones. Resamples with a
    constant column (possible when n is small) are left out.

    Args:
        x, y: the paired values (n,); non-finite pairs are dropped first.
        resamples: number of bootstrap resamples, >= 100.
        level: the interval's coverage, in (0, 1).
        seed: seeds the resampling.

    Returns:
        (low, high), or (NaN, NaN) below 3 pairs or when no resample has a defined rho.
    """
    if not isinstance(resamples, int) or resamples < 100:
        raise ValueError(f"resamples must be an integer >= 100, got {resamples!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    x, y = _pairs(x, y)
    if len(x) < MIN_PAIRS:
        return math.nan, math.nan
    rows = _resample(len(x), resamples, seed)
    rhos = _pearson_rows(_ranks(x[rows]), _ranks(y[rows]))
    rhos = rhos[np.isfinite(rhos)]
    if not len(rhos):
        return math.nan, math.nan
    low, high = np.quantile(rhos, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(low), float(high)


def partial_spearman(x, y, control) -> float:
    """Rank partial correlation of x and y given `control`, over the rows where all three are finite.

    The Pearson correlation of the residuals of rank(x) and rank(y), each after a least-
    squares line on rank(control) (equal to the closed form in the module docstring).

    Here rho_xy = 0.8, rho_xc = 0.8, rho_yc = 0.3, so rho_xy.c = 0.56 / sqrt(0.36 * 0.91):

    >>> round(partial_spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5], [1, 3, 2, 5, 4]), 3)
    0.978
    """
    x, y, control = _pairs(x, y, control)
    if len(x) < MIN_PAIRS:
        return math.nan
    rank_control = _ranks(control)
    design = np.stack([np.ones_like(rank_control), rank_control], axis=1)

    def residual(values: np.ndarray) -> np.ndarray:
        ranked = _ranks(values)
        coefficients, *_ = np.linalg.lstsq(design, ranked, rcond=None)
        return ranked - design @ coefficients

    residual_x, residual_y = residual(x), residual(y)
    scale = max(np.abs(_ranks(x)).max(), 1.0)
    if np.abs(residual_x).max() < 1e-9 * scale or np.abs(residual_y).max() < 1e-9 * scale:
        return math.nan  # x or y is a monotone function of the control: nothing is left to correlate
    return float(_pearson_rows(residual_x, residual_y))

"""The Gaussian bandwidth sigma: a number, or a scale-free preset resolved from the points.

Every public function that takes `sigma` accepts:

- a number > 0: the paper's fixed sigma, used as it is (G_ij = exp(-d2_ij / (2 sigma^2)));
- "median", "rms" or "knn": shorthands for `Bandwidth(kind)`;
- `Bandwidth(kind, scale=c, k=10)`: a preset times the multiplier c;
- a `ResolvedBandwidth`: a preset already resolved on this Z (`resolve_bandwidth`), used as it
  is, so that a caller can resolve once and pass the same bandwidth to DSE and DSMI.

The presets, each equivariant to a global scale of Z (so DSE and DSMI are invariant to it):

- "median": sigma = c * the median distance between distinct points (`scales.median_bandwidth`).
- "rms": sigma = c * s, s = sqrt(mean_i |z_i - mean|^2), the RMS distance to the centroid; O(N D).
- "knn": adaptive local scaling. Point i gets s_i = c * |z_i - z_(k)|, its distance to its
  k-th nearest other point (k clipped to N - 1; duplicates floored, see `scales.floored_scales`),
  and the kernel is the self-tuning kernel (Zelnik-Manor & Perona 2004; the variable-bandwidth
  diffusion kernel of Berry & Harlim 2016):

      G_ij = exp(-|z_i - z_j|^2 / (2 s_i s_j))

  It is symmetric, non-negative, and the fixed kernel when every s_i equals sigma. The
  recorded number (`ResolvedBandwidth.value`, `DSEEstimate.sigma`) is the median of the s_i.

The spectrum under "knn". P = diag(deg)^-1 G is still a reversible Markov chain (G symmetric,
non-negative), so A = D^-1/2 G D^-1/2 has P's real eigenvalues in [-1, 1], largest 1. G is not
positive semi-definite in general, so small negative eigenvalues can appear: they are
oscillating modes of the walk, and DSE weighs every mode by |lambda|^t, the factor by which
its component shrinks in t steps, whatever its sign. On Gaussian clusters of unequal spreads
they carry 0.3% of sum |lambda| in 2 dimensions and none at all in 32 or 512 (eigvalsh,
N = 600). The positive semi-definite alternative, the Gibbs kernel, needs the prefactor
(2 s_i s_j / (s_i^2 + s_j^2))^(D/2): it depends on the ambient dimension D (zero-padded
features would change DSE), and at D = 512 it cuts neighbours whose scales differ by 20% to
1.5% of their weight. The t = 2 certified bounds assume the deflated eigenvalues are the
largest in magnitude, which a negative eigenvalue could break: under "knn" slq always probes.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import torch

from ..validation import as_points, check_positive, check_positive_int
from .scales import floored_scales, knn_distances, median_bandwidth, median_of, rms_radius

__all__ = ["Bandwidth", "ResolvedBandwidth", "bandwidth_for", "median_bandwidth", "resolve_bandwidth", "resolve_sigma"]

# The preset kinds; each string is also the shorthand for `Bandwidth(kind)`.
KINDS = ("median", "rms", "knn")


@dataclass(frozen=True)
class Bandwidth:
    """A scale-free bandwidth: sigma = scale * (a statistic of Z), resolved on each Z.

    Attributes:
        kind: "median" (median pairwise distance), "rms" (RMS distance to the centroid) or
            "knn" (per-point: the distance to the k-th nearest other point).
        scale: the multiplier c > 0.
        k: the neighbour rank of "knn" (>= 1; clipped to N - 1 on small Z).

    Example:
        >>> Bandwidth("rms", scale=0.5)
        Bandwidth(kind='rms', scale=0.5, k=10)
    """

    kind: str
    scale: float = 1.0
    k: int = 10

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Bandwidth.kind must be one of {KINDS}, got {self.kind!r}")
        object.__setattr__(self, "scale", check_positive(self.scale, "Bandwidth.scale"))
        object.__setattr__(self, "k", check_positive_int(self.k, "Bandwidth.k"))


@dataclass(frozen=True, eq=False)
class ResolvedBandwidth:
    """A bandwidth resolved on one Z (N, D): what the kernel uses.

    Attributes:
        value: sigma as a number: the number itself, c * the statistic for "median" and "rms",
            the median of the per-point scales for "knn". Recorded in the history and in
            `DSEEstimate.sigma` / `DSMIEstimate.sigma`.
        local: the per-point scales s_i (N,) float64 for "knn" (the kernel is
            exp(-d2_ij / (2 s_i s_j))), else None (exp(-d2_ij / (2 value^2))).
        spec: what was asked: the number or the `Bandwidth`.
    """

    value: float
    local: torch.Tensor | None = None
    spec: float | Bandwidth | None = field(default=None)

    def scaled(self, factor: float) -> ResolvedBandwidth:
        """The same bandwidth times `factor` (every local scale too)."""
        local = None if self.local is None else self.local * factor
        return ResolvedBandwidth(self.value * factor, local, self.spec)

    def take(self, rows: torch.Tensor) -> ResolvedBandwidth:
        """The bandwidth of the subset `rows` of Z: its rows' local scales, and their median."""
        if self.local is None:
            return self
        local = self.local[rows.to(self.local.device)]
        return ResolvedBandwidth(median_of(local), local, self.spec)


def _check_resolved(bandwidth: ResolvedBandwidth) -> ResolvedBandwidth:
    check_positive(bandwidth.value, "sigma.value")
    local = bandwidth.local
    if local is not None:
        if not isinstance(local, torch.Tensor) or local.ndim != 1:
            raise ValueError(f"sigma.local must be a 1-D tensor of per-point scales or None, got {local!r}")
        if not (torch.isfinite(local).all() and (local > 0).all()):
            raise ValueError(f"sigma.local must hold finite scales > 0, got min {float(local.min()):g}")
    return bandwidth


def resolve_sigma(sigma) -> float | Bandwidth | ResolvedBandwidth:
    """Validate sigma: a number > 0 (returned as a float), a preset string (returned as its
    `Bandwidth`), a `Bandwidth`, or a `ResolvedBandwidth` (checked and returned as it is).

    Example:
        >>> resolve_sigma("knn")
        Bandwidth(kind='knn', scale=1.0, k=10)
        >>> resolve_sigma(10)
        10.0
    """
    if isinstance(sigma, str):
        if sigma not in KINDS:
            raise ValueError(
                f"sigma must be a number > 0, one of {KINDS}, a Bandwidth or a ResolvedBandwidth, got {sigma!r}"
            )
        return Bandwidth(sigma)
    if isinstance(sigma, (Bandwidth, ResolvedBandwidth)):
        return _check_resolved(sigma) if isinstance(sigma, ResolvedBandwidth) else sigma
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
        raise TypeError(
            f"sigma must be a number > 0, one of {KINDS}, a Bandwidth or a ResolvedBandwidth, got {sigma!r}"
        )
    return check_positive(sigma, "sigma")


def _knn_scales(points: torch.Tensor, k: int, layout) -> torch.Tensor:
    """The floored kNN distances (N,) of every point; under a layout, this rank's rows, gathered."""
    k = min(k, points.shape[0] - 1)
    if layout is None:
        distances = knn_distances(points, k)
    else:
        distances = layout.gather_rows(knn_distances(points, k, slice(layout.lo, layout.hi)))
    return floored_scales(distances, rms_radius(points))


def bandwidth_for(points: torch.Tensor, sigma, layout=None) -> ResolvedBandwidth:
    """The bandwidth of validated points Z (N, D) for a sigma validated by `resolve_sigma`.

    Args:
        points: Z (N, D), validated, in the working dtype.
        sigma: a float, a `Bandwidth` or a `ResolvedBandwidth` (its local scales must
            number N).
        layout: under torch.distributed, this rank's rows (a `solvers.layout.RowLayout`:
            `lo`, `hi`, `gather_rows`); every rank holds the full Z, computes the kNN scales
            of its own rows, and all N are gathered, so every rank gets the same scales.
    """
    if isinstance(sigma, ResolvedBandwidth):
        if sigma.local is not None and len(sigma.local) != points.shape[0]:
            raise ValueError(
                f"sigma is a ResolvedBandwidth with {len(sigma.local)} local scales but z has "
                f"{points.shape[0]} rows (after any max_samples subsample); resolve it on this z"
            )
        return (
            sigma if sigma.local is None else ResolvedBandwidth(sigma.value, sigma.local.to(points.device), sigma.spec)
        )
    if not isinstance(sigma, Bandwidth):
        return ResolvedBandwidth(float(sigma), None, float(sigma))
    points = points.detach()  # a statistic of Z, not differentiated
    if sigma.kind == "knn":
        local = _knn_scales(points, sigma.k, layout) * sigma.scale
        return ResolvedBandwidth(median_of(local), local, sigma)
    if sigma.kind == "median":
        statistic = median_bandwidth(points)
    else:
        radius = rms_radius(points)
        statistic = radius if radius > 0 and math.isfinite(radius) else 1.0
    return ResolvedBandwidth(sigma.scale * statistic, None, sigma)


def resolve_bandwidth(points, sigma) -> ResolvedBandwidth:
    """Resolve `sigma` on points Z (N, D) once, to pass to DSE, DSMI and the profile.

    Args:
        points: Z (N, D), a tensor or a NumPy array (validated here).
        sigma: a number > 0, "median", "rms", "knn", a `Bandwidth` or a `ResolvedBandwidth`.

    Returns:
        A `ResolvedBandwidth`: `value` (the number to record), `local` (the per-point scales
        (N,) for "knn", else None) and `spec`.

    Example:
        >>> z = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
        >>> resolve_bandwidth(z, "rms").value, resolve_bandwidth(z * 10, Bandwidth("rms", scale=2)).value
        (1.4142135623730951, 28.284271247461902)
        >>> resolve_bandwidth(z, "knn").local
        tensor([2.8284, 2.8284, 2.8284, 2.8284], dtype=torch.float64)
    """
    return bandwidth_for(as_points(points), resolve_sigma(sigma))

"""The result type every solver returns, and the settings of the approximate one."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DSEEstimate:
    """A DSE value with its error bar and how it was obtained.

    Attributes:
        value: DSE in bits.
        stderr: standard error in bits from the random probes (0 for exact values and for
            certified bounds).
        interval: (low, high) in bits: the 95% interval value +- q stderr for "slq" (q the
            Student t quantile for probes - 1 degrees of freedom, 2.13 for 16 probes), the
            certified bounds for "topk", (value, value) for "exact".
        solver: the solver that ran ("exact", "slq" or "topk"; never "auto").
        n: number of points N.
        sigma: the bandwidth used.
        t: the diffusion time.
        seconds: wall-clock seconds of the whole estimate (kernel included).
        top_eigenvalues: the largest eigenvalues, descending, float64 CPU: every one for
            "exact", the converged deflated Ritz values otherwise. Enough to
            draw a spectrum figure when the solver is approximate.
        storage: "stored" (the N x N kernel, or this rank's rows of it, in memory) or
            "blocked" (recomputed row chunks per product); "dense" for "exact".
        products: columns multiplied by A (0 for "exact"): the cost of an approximate run.
    """

    value: float
    stderr: float
    interval: tuple[float, float]
    solver: str
    n: int
    sigma: float
    t: float
    seconds: float
    top_eigenvalues: torch.Tensor
    storage: str = "dense"
    products: int = 0

    def __float__(self) -> float:
        return self.value


@dataclass(frozen=True)
class DSMIEstimate:
    """A DSMI value with its error bar: the slq terms' standard errors combined
    (sum_b (n_b/N)^2 (sum_r se_r^2 / R^2 + se_b^2)), 0 when every term was exact.

    Attributes:
        value, stderr: bits.
        solver: the solvers that ran, joined by "+" (for example "exact" or "exact+slq").
        n, sigma, t, seconds: as in `DSEEstimate`.
    """

    value: float
    stderr: float
    solver: str
    n: int
    sigma: float
    t: float
    seconds: float

    def __float__(self) -> float:
        return self.value


@dataclass(frozen=True)
class SLQOptions:
    """Settings of the "slq" solver; the defaults hold 0.01 bits on the tested data.

    Attributes:
        probes: Rademacher probe vectors (Hutchinson samples); the stderr falls as 1/sqrt.
        lanczos_steps: Lanczos steps per probe (Gauss quadrature nodes).
        block: width of the block Krylov iteration for the top eigenpairs; at most this
            many eigenpairs (besides the known top one) are deflated.
        depth: Krylov blocks per round ([X, AX, ..., A^depth X]).
        tolerance: Ritz residual ||A u - theta u|| under which a pair counts as converged.
        bound_tolerance: for t = 2, certified top-k bounds narrower than this (bits) are
            returned instead of running the probes.
    """

    probes: int = 16
    lanczos_steps: int = 16
    block: int = 32
    depth: int = 4
    tolerance: float = 1e-4
    bound_tolerance: float = 2e-3

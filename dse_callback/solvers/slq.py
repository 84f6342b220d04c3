"""Deflated stochastic Lanczos quadrature (SLQ) with control variates for DSE.

With lambda the eigenvalues of A, w(x) = |x|^t and g(x) = w(x) log2 w(x):

    S = sum_i w(lambda_i),  F = sum_i g(lambda_i),  DSE = log2 S - F / S.

1. Deflation: the top r eigenpairs (u_i, theta_i) come from block Krylov iteration (the
   first, eigenvalue 1 with eigenvector sqrt(deg)/||sqrt(deg)||, is exact). With
   P = I - U U^T, sum_{i>r} h(lambda_i) = tr_P h(PAP), the trace over the range of P, and
   the r deflated directions add nothing (h(0) = 0 for t > 0).
2. Control variate: a quadratic q ~ h has an exact trace over the range of P,
       tr_P q = q0 (N - r) + q1 tr(PAP) + q2 tr((PAP)^2),
   tr(PAP)     = tr A - sum theta_i,            tr A = sum_i 1/deg_i,
   tr((PAP)^2) = ||A||_F^2 - 2 sum ||A u_i||^2 + sum_ij (u_i^T A u_j)^2.
   For t = 1 (w = x) and t = 2 (w = x^2) q reproduces w, so S is exact.
3. Hutchinson with Lanczos quadrature estimates the rest, tr_P (h - q), from Rademacher
   probes z: E[(Pz)^T (h - q)(PAP) (Pz)] = tr_P (h - q).

q is the least-squares fit of h on the pooled quadrature nodes weighted by their weights
(an estimate of the deflated spectral density, so the residual variance is what shrinks).
The standard error comes from the per-probe values through the linearization of DSE in
(S, F).
"""

from __future__ import annotations

import math

import torch

from .estimate import SLQOptions
from .krylov import TopPairs, lanczos_quadrature

_LN2 = math.log(2.0)


def weight_function(x: torch.Tensor, t: float) -> torch.Tensor:
    """w(x) = |x|^t."""
    return x.abs().pow(t)


def entropy_function(x: torch.Tensor, t: float) -> torch.Tensor:
    """g(x) = w log2 w with w = |x|^t (0 at x = 0)."""
    w = weight_function(x, t)
    return torch.special.xlogy(w, w) / _LN2


def _quadratic_fit(nodes: torch.Tensor, weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Coefficients (q0, q1, q2) minimizing sum weights (values - q(nodes))^2."""
    root = weights.clamp(min=0).sqrt().reshape(-1, 1)
    x = nodes.reshape(-1, 1)
    design = torch.cat([torch.ones_like(x), x, x * x], dim=1) * root
    return torch.linalg.lstsq(design, values.reshape(-1, 1) * root, driver="gelsd").solution.reshape(3)


def _polynomial(coefficients: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return coefficients[0] + coefficients[1] * x + coefficients[2] * x * x


def deflated_traces(operator, pairs: TopPairs) -> tuple[int, float, float]:
    """(N - r, tr(PAP), tr((PAP)^2)), exact for any orthonormal U (not only eigenvectors)."""
    projected = pairs.vectors.T @ pairs.products
    first = operator.trace - float(projected.diagonal().sum())
    second = operator.frobenius_squared - 2 * float(pairs.products.square().sum()) + float(projected.square().sum())
    return operator.n - pairs.values.numel(), first, second


def slq_moments(operator, t: float, generator: torch.Generator, options: SLQOptions, pairs: TopPairs):
    """Per-probe estimates of S and F, shape (p,) each, float64 CPU."""
    n_rest, first, second = deflated_traces(operator, pairs)
    probes = torch.randint(0, 2, (operator.n, options.probes), generator=generator, dtype=torch.float64).mul_(2).sub_(1)
    steps = max(1, min(options.lanczos_steps, n_rest))
    nodes, weights = lanczos_quadrature(operator, pairs.vectors, probes.to(operator.device), steps)
    top = pairs.values.cpu()
    estimates = []
    for function in (weight_function, entropy_function):
        exact_values = function(nodes, t)
        coefficients = _quadratic_fit(nodes, weights, exact_values)
        trace_of_fit = float(coefficients[0]) * n_rest + float(coefficients[1]) * first + float(coefficients[2]) * second
        residual = (weights * (exact_values - _polynomial(coefficients, nodes))).sum(dim=1)
        estimates.append(float(function(top, t).sum()) + trace_of_fit + residual)
    return estimates[0], estimates[1]


def student_quantile(degrees_of_freedom: int) -> float:
    """The 97.5% quantile of Student's t (Cornish-Fisher expansion: 4% low at 3 dof, within 0.5% from 7):
    value +- this * stderr is a 95% interval from a handful of probes."""
    z, v = 1.959964, float(max(degrees_of_freedom, 1))
    return z + (z**3 + z) / (4 * v) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v * v)


def entropy_and_stderr(weight_sums: torch.Tensor, entropy_sums: torch.Tensor) -> tuple[float, float]:
    """DSE = log2 S - F / S from the probe means, and its delta-method standard error."""
    s, f = float(weight_sums.mean()), float(entropy_sums.mean())
    value = math.log2(s) - f / s
    linearized = (1 / (s * _LN2) + f / (s * s)) * weight_sums - entropy_sums / s
    stderr = float(linearized.std(unbiased=True)) / math.sqrt(len(linearized)) if len(linearized) > 1 else float("inf")
    return value, stderr

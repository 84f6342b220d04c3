"""Deflated stochastic Lanczos quadrature (SLQ) with control variates for DSE.

With lambda the eigenvalues of A, w(x) = |x|^t and g(x) = w(x) log2 w(x):

    S = sum_i w(lambda_i),  F = sum_i g(lambda_i),  DSE = log2 S - F / S.

1. Deflation: the top r eigenpairs (u_i, theta_i) come from block Krylov iteration (the
   first, eigenvalue 1 with eigenvector sqrt(deg)/||sqrt(deg)||, is exact). With
   P = I - U U^T, sum_{i>r} h(lambda_i) = tr_P h(PAP), the trace over the range of P, and
   the r deflated directions add nothing (h(0) = 0 for t > 0).
2. Control variate: a quadratic q ~ h has an exact trace over the range of P::

       tr_P q      = q0 (N - r) + q1 tr(PAP) + q2 tr((PAP)^2),
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
    """Coefficients (..., 3) of q = q0 + q1 x + q2 x^2 minimizing sum weights (values - q(nodes))^2
    over the last two dimensions (probes, nodes) of (..., p, m) inputs."""
    root = weights.clamp(min=0).sqrt().flatten(-2).unsqueeze(-1)
    x = nodes.flatten(-2).unsqueeze(-1)
    design = torch.cat([torch.ones_like(x), x, x * x], dim=-1) * root
    return torch.linalg.lstsq(design, values.flatten(-2).unsqueeze(-1) * root, driver="gelsd").solution.squeeze(-1)


def _polynomial(coefficients: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """q(x) for coefficients (..., 3) and nodes (..., p, m)."""
    c = coefficients[..., None, None, :]
    return c[..., 0] + c[..., 1] * x + c[..., 2] * x * x


def deflated_traces(operator, pairs: TopPairs) -> tuple[int, float, float]:
    """(N - r, tr(PAP), tr((PAP)^2)), exact for any orthonormal U (not only eigenvectors)."""
    projected = pairs.vectors.T @ pairs.products
    first = operator.trace - float(projected.diagonal().sum())
    second = operator.frobenius_squared - 2 * float(pairs.products.square().sum()) + float(projected.square().sum())
    return operator.n - pairs.values.numel(), first, second


def probe_estimates(quadrature, t: float, traces, top: torch.Tensor):
    """Per-probe estimates of S and F and their quadrature half-widths, each (..., p), float64.

    Args:
        quadrature: (nodes, weights, radau_nodes, radau_weights) of the deflated operator
            from `lanczos_quadrature`, (..., p, m) and (..., p, m + 1).
        traces: (N - r, tr(PAP), tr((PAP)^2)), each a number or a (...) tensor.
        top: the deflated eigenvalues, (..., r).

    Each probe's residual is the midpoint of its Gauss and Gauss-Radau values, which bracket
    it; the half-width is half their gap.
    """
    nodes, weights, radau_nodes, radau_weights = quadrature
    n_rest, first, second = (torch.as_tensor(trace, dtype=torch.float64).unsqueeze(-1) for trace in traces)
    estimates, half_widths = [], []
    for function in (weight_function, entropy_function):
        exact_values = function(nodes, t)
        coefficients = _quadratic_fit(nodes, weights, exact_values)
        trace_of_fit = coefficients[..., :1] * n_rest + coefficients[..., 1:2] * first + coefficients[..., 2:] * second
        gauss = (weights * (exact_values - _polynomial(coefficients, nodes))).sum(dim=-1)
        radau = (radau_weights * (function(radau_nodes, t) - _polynomial(coefficients, radau_nodes))).sum(dim=-1)
        estimates.append(function(top, t).sum(dim=-1, keepdim=True) + trace_of_fit + (gauss + radau) / 2)
        half_widths.append((gauss - radau).abs() / 2)
    return estimates[0], estimates[1], half_widths[0], half_widths[1]


def slq_moments(operator, t: float, generator: torch.Generator, options: SLQOptions, pairs: TopPairs):
    """Per-probe estimates of S and F and their quadrature half-widths, (p,) each, float64 CPU."""
    traces = deflated_traces(operator, pairs)
    probes = torch.randint(0, 2, (operator.n, options.probes), generator=generator, dtype=torch.float64).mul_(2).sub_(1)
    steps = max(1, min(options.lanczos_steps, traces[0]))
    quadrature = lanczos_quadrature(operator, pairs.vectors, probes.to(operator.device), steps)
    return probe_estimates(quadrature, t, traces, pairs.values.cpu())


def student_quantile(degrees_of_freedom: int) -> float:
    """The 97.5% quantile of Student's t (Cornish-Fisher expansion: 4% low at 3 dof, within 0.5% from 7):
    value +- this * stderr is a 95% interval from a handful of probes."""
    z, v = 1.959964, float(max(degrees_of_freedom, 1))
    return z + (z**3 + z) / (4 * v) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v * v)


def entropy_and_stderr(
    weight_sums: torch.Tensor, entropy_sums: torch.Tensor, weight_widths: torch.Tensor, entropy_widths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """DSE = log2 S - F / S from the probe means over the last dimension (probes), and its
    standard error; shapes (...,) from per-probe values (..., p).

    The error combines the spread over probes (delta method) with the quadrature's bias
    bound (the mean half-widths through the same linearization), in quadrature.
    """
    s, f = weight_sums.mean(dim=-1), entropy_sums.mean(dim=-1)
    value = torch.log2(s) - f / s
    d_s, d_f = 1 / (s * _LN2) + f / (s * s), -1 / s
    linearized = d_s.unsqueeze(-1) * weight_sums + d_f.unsqueeze(-1) * entropy_sums
    bias = d_s.abs() * weight_widths.mean(dim=-1) + d_f.abs() * entropy_widths.mean(dim=-1)
    probes = weight_sums.shape[-1]
    if probes < 2:
        return value, torch.full_like(value, math.inf)
    spread = linearized.std(dim=-1, unbiased=True) / math.sqrt(probes)
    return value, torch.sqrt(spread.square() + bias.square())

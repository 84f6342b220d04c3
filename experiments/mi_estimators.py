"""Baseline mutual-information estimators the paper compares DSMI with: KSG and MINE.

Both are our own code (no third-party estimator), seeded by private generators; the global
RNG is never touched. KSG returns nats; MINE returns bits (its nats divided by ln 2) so
that it sits on the same axis as DSMI and CSMI. The paper's figure shows MINE in nats.
"""

from __future__ import annotations

import math

import numpy as np
import torch

_LN2 = math.log(2.0)
# Row block of the kNN search: a (block, N) float64 distance slab stays under ~100 MB at N = 10^4.
_BLOCK_ROWS = 1024


def _as_2d_float64(values, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(values) if not isinstance(values, torch.Tensor) else values)
    if tensor.ndim == 1:
        tensor = tensor.reshape(-1, 1)
    if tensor.ndim != 2 or tensor.shape[0] < 2:
        raise ValueError(f"{name} must have shape (N,) or (N, D) with N >= 2; got shape {tuple(tensor.shape)}")
    tensor = tensor.to(torch.float64)
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} has NaN or infinite entries; pass finite values")
    return tensor


def _check_pair(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _as_2d_float64(x, "x"), _as_2d_float64(y, "y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]}; they must pair up row by row")
    return x, y


def ksg_mutual_information(x, y, k: int = 3) -> float:
    """Kraskov-Stoegbauer-Grassberger estimate (algorithm 1) of I(X; Y), in nats.

    With eps_i the distance from point i to its k-th nearest neighbour in the joint space,
    under the norm max(|x - x'|_2, |y - y'|_2), and n_x(i), n_y(i) the numbers of other
    points strictly closer than eps_i in each marginal space:

        I = psi(k) + psi(N) - mean_i [psi(n_x(i) + 1) + psi(n_y(i) + 1)].

    Euclidean marginal norms (KSG allows any) let the search use GEMMs, which keeps
    D = 20,000 affordable. Exact brute-force search in row blocks: O(N^2 (Dx + Dy)).

    Args:
        x: shape (N,) or (N, Dx).
        y: shape (N,) or (N, Dy); discrete labels are treated as scalars, as NPEET does.
        k: neighbours, 1 <= k < N.

    Returns:
        The estimate in nats (it can be slightly negative for independent variables).

    Example:
        >>> g = np.random.default_rng(0)
        >>> x = g.normal(size=2000)
        >>> round(ksg_mutual_information(x, x + 0.5 * g.normal(size=2000)), 1)  # exact 0.80
        0.8
    """
    x, y = _check_pair(x, y)
    n = x.shape[0]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k < n:
        raise ValueError(f"k must be an integer in [1, N - 1] = [1, {n - 1}]; got {k!r}")
    x, y = x - x.mean(0), y - y.mean(0)  # centring keeps the GEMM distances accurate
    psi_sum = torch.zeros((), dtype=torch.float64)
    for start in range(0, n, _BLOCK_ROWS):
        rows = torch.arange(start, min(start + _BLOCK_ROWS, n))
        dx = torch.cdist(x[rows], x, compute_mode="use_mm_for_euclid_dist")
        dy = torch.cdist(y[rows], y, compute_mode="use_mm_for_euclid_dist")
        joint = torch.maximum(dx, dy)
        joint[torch.arange(len(rows)), rows] = math.inf  # not its own neighbour
        eps = joint.kthvalue(k, dim=1, keepdim=True).values
        n_x = (dx < eps).sum(1) - 1  # minus the point itself (distance 0 < eps)
        n_y = (dy < eps).sum(1) - 1
        psi_sum += torch.special.digamma((n_x + 1).double()).sum() + torch.special.digamma((n_y + 1).double()).sum()
    digamma = torch.special.digamma
    return float(digamma(torch.tensor(float(k))) + digamma(torch.tensor(float(n))) - psi_sum / n)


class _StatisticsNetwork:
    """T(x, y): (D + 1) -> 100 -> 100 -> 1 with ReLUs, built from tensors so that its
    initialization (PyTorch's default uniform(+-1/sqrt(fan_in))) draws from our generator."""

    def __init__(self, in_features: int, hidden: int, generator: torch.Generator):
        self.parameters = []
        for fan_in, fan_out in ((in_features, hidden), (hidden, hidden), (hidden, 1)):
            bound = 1.0 / math.sqrt(fan_in)
            for shape in ((fan_out, fan_in), (fan_out,)):
                values = (torch.rand(shape, generator=generator) * 2 - 1) * bound
                self.parameters.append(values.requires_grad_())

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        w1, b1, w2, b2, w3, b3 = self.parameters
        hidden = torch.relu(torch.nn.functional.linear(inputs, w1, b1))
        hidden = torch.relu(torch.nn.functional.linear(hidden, w2, b2))
        return torch.nn.functional.linear(hidden, w3, b3).squeeze(-1)


def _mine_bound(
    network: _StatisticsNetwork, x: torch.Tensor, y: torch.Tensor, y_shuffled: torch.Tensor
) -> torch.Tensor:
    """Donsker-Varadhan bound E_joint[T] - log E_marginal[e^T] (nats), on one batch."""
    joint = network(torch.cat([x, y], dim=1))
    marginal = network(torch.cat([x, y_shuffled], dim=1))
    return joint.mean() - (torch.logsumexp(marginal, dim=0) - math.log(marginal.shape[0]))


def _batches(n: int, batch_size: int, generator: torch.Generator):
    """One epoch of (rows, rows shuffled within the batch); a last partial batch is dropped."""
    order = torch.randperm(n, generator=generator)
    for start in range(0, n - batch_size + 1, batch_size):
        rows = order[start : start + batch_size]
        yield rows, rows[torch.randperm(batch_size, generator=generator)]


def mine_mutual_information(
    x,
    y,
    *,
    epochs: int = 200,
    batch_size: int = 500,
    lr: float = 1e-4,
    hidden: int = 100,
    seed: int = 0,
) -> tuple[float, list[float]]:
    """MINE estimate of I(X; Y) (Belghazi et al. 2018), in bits, and its training losses.

    A statistics network T on the concatenation [x, y] is trained with Adam to maximize the
    Donsker-Varadhan bound I >= E_P(x,y)[T] - log E_P(x)P(y)[e^T] with the biased loss
    (the negated bound, marginal samples by shuffling y within each batch; no moving-average
    gradient correction). The estimate is the bound averaged over the whole data set after
    training, converted from nats to bits.

    Args:
        x: shape (N,) or (N, Dx).
        y: shape (N,) or (N, Dy).
        epochs: passes over the data (the authors' comparison used 200).
        batch_size: rows per step, <= N.
        lr: Adam learning rate.
        hidden: width of the two hidden layers.
        seed: seeds the initialization, the batch order and the shuffles.

    Returns:
        (MI in bits, the loss of every step in nats).

    Example:
        >>> g = np.random.default_rng(0)
        >>> x = g.normal(size=(1000, 1))
        >>> bits, losses = mine_mutual_information(x, x, epochs=3, batch_size=100)
        >>> len(losses)
        30
    """
    x, y = _check_pair(x, y)
    n = x.shape[0]
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("hidden", hidden)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    if batch_size > n:
        raise ValueError(f"batch_size must be at most N = {n}; got {batch_size}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0; got {lr!r}")
    generator = torch.Generator().manual_seed(seed)
    x, y = x.float(), y.float()
    network = _StatisticsNetwork(x.shape[1] + y.shape[1], hidden, generator)
    optimizer = torch.optim.Adam(network.parameters, lr=lr)
    losses = []
    for _ in range(epochs):
        for rows, shuffled in _batches(n, batch_size, generator):
            loss = -_mine_bound(network, x[rows], y[rows], y[shuffled])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    with torch.no_grad():
        bounds = [
            float(_mine_bound(network, x[rows], y[rows], y[shuffled]))
            for rows, shuffled in _batches(n, batch_size, generator)
        ]
    return float(np.mean(bounds)) / _LN2, losses

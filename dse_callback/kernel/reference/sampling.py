"""Seeded random subsets that never touch a global random number generator.

Two samplers:

- "torch" (default): a private `torch.Generator` seeded once per call.
- "python_random": a private `random.Random(seed)` drawing `sample(range(N), k)`, which
  reproduces the `dse-dsmi` reference exactly (it seeds Python's global `random` with the
  same seed and draws the same way), so a run can be compared with it number for number.
"""

from __future__ import annotations

import random

import torch

SAMPLERS = ("torch", "python_random")


def random_subsets(n_total: int, size: int, repetitions: int, *, seed: int, sampler: str = "torch") -> torch.Tensor:
    """Draw `repetitions` subsets of `size` distinct indices from range(n_total).

    Each subset is drawn without replacement; subsets are independent of each other.

    Args:
        n_total: population size N.
        size: subset size k, 1 <= k <= N.
        repetitions: number of subsets R.
        seed: seed of the private generator.
        sampler: "torch" or "python_random" (see module docstring).

    Returns:
        int64 CPU tensor of shape (R, k).

    Example:
        >>> random_subsets(10, 3, 2, seed=0, sampler="python_random").tolist()
        [[6, 9, 0], [4, 8, 7]]
    """
    if sampler == "python_random":
        rng = random.Random(seed)
        return torch.tensor([rng.sample(range(n_total), k=size) for _ in range(repetitions)], dtype=torch.long).reshape(
            repetitions, size
        )
    if sampler == "torch":
        generator = torch.Generator(device="cpu").manual_seed(seed)
        keys = torch.rand(repetitions, n_total, generator=generator)
        return keys.argsort(dim=1)[:, :size]
    raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")


def subsample_rows(n_total: int, max_samples: int | None, *, seed: int, sampler: str = "torch") -> torch.Tensor | None:
    """Indices of a seeded subset of `max_samples` rows, or None when all rows are kept."""
    if max_samples is None or n_total <= max_samples:
        return None
    return random_subsets(n_total, max_samples, 1, seed=seed, sampler=sampler)[0]

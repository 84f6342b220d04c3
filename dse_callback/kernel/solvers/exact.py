"""Every eigenvalue of dense symmetric matrices, with fallbacks, and the entropy of a spectrum.

    p_i = |lambda_i|^t / sum_j |lambda_j|^t,   H = -sum_i p_i log2 p_i   (bits)

The "exact" solver and DSMI's exact subsets both end here.
"""

from __future__ import annotations

import math
import warnings

import torch

from ..errors import EigensolverFallbackWarning

# Failures worth a retry: LinAlgError (a RuntimeError), CUDA out-of-memory (also one),
# and NotImplementedError from backends without an eigensolver (MPS).
_RETRYABLE = (RuntimeError, NotImplementedError)


def exact_eigenvalues(matrices: torch.Tensor) -> torch.Tensor:
    """All eigenvalues of symmetric matrices (..., N, N), with fallbacks.

    `torch.linalg.eigvalsh` on CUDA has failed on near-rank-one float32 matrices (a large
    sigma makes the kernel nearly all ones). On failure this retries in float64 on the
    same device, then in float64 on the CPU, warning each time; results come back in the
    input's dtype on the input's device.

    Example:
        >>> exact_eigenvalues(torch.tensor([[2.0, 1.0], [1.0, 2.0]]))
        tensor([1., 3.])
    """
    try:
        return torch.linalg.eigvalsh(matrices)
    except _RETRYABLE as first_error:
        failure = first_error
    attempts = []
    if matrices.dtype != torch.float64:
        attempts.append(("float64 on " + str(matrices.device), matrices.device))
    if matrices.device.type != "cpu":
        attempts.append(("float64 on the CPU", torch.device("cpu")))
    for description, device in attempts:
        warnings.warn(
            f"eigvalsh failed on {tuple(matrices.shape)} {matrices.dtype} matrices on "
            f"{matrices.device} ({failure}); retrying in {description}",
            EigensolverFallbackWarning,
            stacklevel=2,
        )
        try:
            values = torch.linalg.eigvalsh(matrices.to(device=device, dtype=torch.float64))
            return values.to(device=matrices.device, dtype=matrices.dtype)
        except _RETRYABLE as error:
            failure = error
    raise failure


def entropy_of_spectrum(eigenvalues: torch.Tensor, t: float = 1) -> torch.Tensor:
    """Shannon entropy (bits) of the normalized spectrum |lambda|^t, along the last axis.

    p_i = |lambda_i|^t / sum_j |lambda_j|^t;  H = -sum_i p_i log2 p_i  (0 log 0 = 0).

    Args:
        eigenvalues: shape (..., N).
        t: diffusion time, > 0.

    Returns:
        float64 tensor of shape (...).

    Example:
        >>> entropy_of_spectrum(torch.ones(8))
        tensor(3., dtype=torch.float64)
    """
    weights = eigenvalues.to(torch.float64).abs().pow(t)
    probabilities = weights / weights.sum(dim=-1, keepdim=True)
    return -torch.special.xlogy(probabilities, probabilities).sum(dim=-1) / math.log(2.0)

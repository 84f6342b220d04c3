"""Min-max binning of each column, shared by the Shannon baselines and the scalar references.

Bin b holds [b/n, (b+1)/n) of the scaled column, with the interior edges of NumPy's
linspace, so the bins are bit-identical to the reference's `np.digitize`.
"""

from __future__ import annotations

import numpy as np
import torch


def _bin_boundaries(n_bins: int, device: torch.device) -> torch.Tensor:
    # Interior edges from NumPy's linspace, bit-identical to the reference's np.digitize bins.
    edges = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    return torch.as_tensor(edges, dtype=torch.float64, device=device)


def bin_rows(points: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Min-max scale each column to [0, 1] and cut it into `n_bins` equal bins.

    Bin b holds [b/n, (b+1)/n); the maximum falls into the last bin; a constant column
    maps to bin 0. Returns int64 bin indices of shape (N, D).
    """
    values = points.to(torch.float64)
    low = values.min(dim=0).values
    span = values.max(dim=0).values - low
    span = torch.where(span > 0, span, torch.ones_like(span))
    return torch.bucketize((values - low) / span, _bin_boundaries(n_bins, points.device), right=True)

"""NT-Xent contrastive losses for SimCLR."""

from __future__ import annotations

import torch
import torch.nn.functional as F

CONTRASTIVE_LOSSES = ("standard", "paper")


def nt_xent(first: torch.Tensor, second: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's NT-Xent: each of the 2B views must pick its partner among the other 2B - 1.

    first, second: (B, d) projections of two views of the same B images, row by row.
    """
    views = F.normalize(torch.cat([first, second]), dim=1)
    similarity = views @ views.T / temperature
    similarity.fill_diagonal_(float("-inf"))  # a view is not its own positive
    batch = len(first)
    partners = torch.cat([torch.arange(batch, 2 * batch), torch.arange(batch)]).to(first.device)
    return F.cross_entropy(similarity, partners)


def nt_xent_paper(first: torch.Tensor, second: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The paper's variant: only cross-view pairs in the denominator, temperature 1 by default.

    Row i of `first` must pick row i of `second` among all B rows of `second`, and the
    other way round; the two directions are averaged.
    """
    similarity = F.normalize(first, dim=1) @ F.normalize(second, dim=1).T / temperature
    targets = torch.arange(len(first), device=first.device)
    return 0.5 * (F.cross_entropy(similarity, targets) + F.cross_entropy(similarity.T, targets))

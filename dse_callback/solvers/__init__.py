"""Solvers for the DSE of large point clouds: one module per part.

- `estimate`: the `DSEEstimate` result and `SLQOptions`.
- `operator`: products with the diffusion operator, stored or blocked (matrix-free).
- `layout`: row ownership and the collectives of the distributed path.
- `krylov`: top eigenpairs (block Krylov + Rayleigh-Ritz) and Lanczos quadrature.
- `slq`: deflated stochastic Lanczos quadrature with control variates.
- `batched`: the same estimator on a batch of small operators (DSMI's subsets).
- `bounds`: certified top-k bounds at t = 2.
- `run`: the "exact", "slq" and "auto" entries of `spectrum.SOLVERS`.
"""

from .estimate import DSEEstimate, DSMIEstimate, SLQOptions

__all__ = ["DSEEstimate", "DSMIEstimate", "SLQOptions"]

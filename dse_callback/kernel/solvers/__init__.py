"""The DSE solvers: one resolved request in, a value with its error bar out.

- `estimate`: the `DSEEstimate`/`DSMIEstimate` results and `SLQOptions`.
- `run`: `solve` an `EntropyRequest` with "exact" or "slq"; how "auto" resolves by size.
- `exact`: every eigenvalue (eigvalsh with fallbacks) and the entropy of a spectrum.
- `subsets`: DSMI's class subsets, each with the solver for its size.
- `operator`: products with the diffusion operator, stored or blocked (matrix-free).
- `layout`: row ownership and the collectives of the distributed path.
- `krylov`: top eigenpairs (block Krylov + Rayleigh-Ritz) and Lanczos quadrature.
- `slq`: deflated stochastic Lanczos quadrature with control variates.
- `batched`: the same estimator on a batch of small operators (DSMI's subsets).
- `bounds`: certified top-k bounds at t = 2.

Imports `kernel.geometry`, `kernel.errors` and `kernel.validation` only, never upwards.
"""

from .estimate import DSEEstimate, DSMIEstimate, SLQOptions

__all__ = ["DSEEstimate", "DSMIEstimate", "SLQOptions"]

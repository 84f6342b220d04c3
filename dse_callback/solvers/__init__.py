"""The solvers' result types and settings, kept at their old import path; a shim.

    from dse_callback.solvers import DSEEstimate, SLQOptions

The solvers themselves live in `dse_callback.kernel.solvers`.
"""

from ..kernel.solvers.estimate import DSEEstimate, DSMIEstimate, SLQOptions

__all__ = ["DSEEstimate", "DSMIEstimate", "SLQOptions"]

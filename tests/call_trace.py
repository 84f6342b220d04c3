"""Which package modules one call enters, in order, and which calls climb back up a layer.

`trace_calls(function, ...)` records every call that crosses from one module of the package
to another (a `sys.setprofile` hook), as (caller module, callee module). `upward_calls`
keeps those whose callee sits in a higher layer than its caller, by `KERNEL_LAYERS`.

    python tests/call_trace.py      # the trace of one DSMI call, for the restructure's note
"""

from __future__ import annotations

import sys

# The kernel's layers, bottom first: a call may go down or sideways, never up.
KERNEL_LAYERS = (
    ("dse_callback.kernel.validation", "dse_callback.kernel.errors"),
    ("dse_callback.kernel.geometry",),
    ("dse_callback.kernel.reference",),
    ("dse_callback.kernel.solvers",),
    ("dse_callback.kernel.request",),
    ("dse_callback.kernel",),  # the public modules: entropy, mutual_info, spectrum, profile, shannon, rankme
)


def layer_of(module: str) -> int:
    """The index in `KERNEL_LAYERS` of the deepest prefix that contains `module`."""
    best, best_length = -1, -1
    for index, prefixes in enumerate(KERNEL_LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    return best


# The functions that validate or decide something; each should run once per call of the API.
DECISIONS = ("as_points", "resolve_dtype", "solver_dtype", "bandwidth_for", "resolved_solver", "check_solver_settings")


def trace_calls(function, *args, package: str = "dse_callback", decisions: dict | None = None, **kwargs):
    """(caller module, callee module) for every call from one module of `package` to another.

    `decisions`, when given, counts the calls of each function named in `DECISIONS`.
    """
    edges: list[tuple[str, str]] = []

    def profile(frame, event, arg):
        if event != "call" or frame.f_back is None:
            return
        callee = frame.f_globals.get("__name__", "")
        caller = frame.f_back.f_globals.get("__name__", "")
        if decisions is not None and callee.startswith(package) and frame.f_code.co_name in DECISIONS:
            decisions[frame.f_code.co_name] = decisions.get(frame.f_code.co_name, 0) + 1
        if callee.startswith(package) and caller.startswith(package) and callee != caller:
            edges.append((caller, callee))

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        function(*args, **kwargs)
    finally:
        sys.setprofile(previous)
    return edges


def upward_calls(edges: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The edges whose callee is in a higher kernel layer than the caller."""
    return [(caller, callee) for caller, callee in edges if layer_of(callee) > layer_of(caller)]


def modules_entered(edges: list[tuple[str, str]]) -> list[str]:
    """The callee modules in call order, repeats in a row collapsed."""
    stops: list[str] = []
    for _, callee in edges:
        if not stops or stops[-1] != callee:
            stops.append(callee)
    return stops


def report(name: str, function, *args, **kwargs) -> None:
    """Print the modules one call enters, its calls up a layer and its decisions."""
    function(*args, **kwargs)  # imports done before the trace
    decisions: dict = {}
    edges = trace_calls(function, *args, decisions=decisions, **kwargs)
    stops = [module.replace("dse_callback.", "") for module in modules_entered(edges)]
    print(f"{name}: {len(stops)} stops in {len(set(stops))} modules; {len(upward_calls(edges))} calls up a layer")
    print("  " + " -> ".join(stops))
    for caller, callee in sorted(set(upward_calls(edges))):
        print(f"  up: {caller} -> {callee}")
    print(f"  decisions: {decisions}")


if __name__ == "__main__":
    import torch

    from dse_callback import diffusion_spectral_entropy, diffusion_spectral_mutual_information

    z, labels = torch.randn(300, 8, dtype=torch.float64), torch.arange(300) % 3
    report("DSMI", diffusion_spectral_mutual_information, z, labels, sigma=3.0)
    report("DSE", diffusion_spectral_entropy, z, sigma=3.0, solver="exact")

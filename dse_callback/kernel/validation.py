"""Input checks shared by the public math functions.

Each public function validates once, at its entry, with a message that names the
argument, shows the value and says what would be valid; the work below runs on
validated tensors.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch

PRECISIONS = ("float64", "float32")


def as_tensor(value: Any, name: str) -> torch.Tensor:
    """Return `value` as a tensor on its own device (NumPy arrays land on the CPU)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, (list, tuple)):
        return torch.as_tensor(np.asarray(value))
    raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(value).__name__}")


def as_points(value: Any, name: str = "z", min_rows: int = 2) -> torch.Tensor:
    """Validate a point cloud of shape (N, D): finite, floating, at least `min_rows` rows."""
    points = as_tensor(value, name)
    if points.ndim != 2:
        raise ValueError(
            f"{name} must have shape (N, D), got shape {tuple(points.shape)}; "
            "flatten features with z.reshape(len(z), -1)"
        )
    if points.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} samples (rows), got {points.shape[0]}")
    if points.shape[1] < 1:
        raise ValueError(f"{name} needs at least 1 feature (column), got shape {tuple(points.shape)}")
    if not points.is_floating_point():
        points = points.to(torch.float64)
    bad_rows = ~torch.isfinite(points).all(dim=1)
    n_bad = int(bad_rows.sum())
    if n_bad:
        first = int(bad_rows.nonzero()[0, 0])
        raise ValueError(
            f"{name} has {n_bad} of {points.shape[0]} rows with NaN or Inf (first at row {first}); "
            "drop or impute them before measuring"
        )
    return points


def check_positive(value: Any, name: str) -> float:
    """A finite real number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """An integer >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_seed(value: Any) -> int:
    """A non-negative integer seed."""
    return check_positive_int(value, "seed", minimum=0)


def check_choice(value: Any, name: str, choices: tuple) -> Any:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_max_samples(value: Any) -> int | None:
    if value is None:
        return None
    return check_positive_int(value, "max_samples", minimum=2)


def check_precision(precision: Any) -> str | None:
    """None, "float64" or "float32"."""
    return check_choice(precision, "precision", PRECISIONS + (None,))


def resolve_dtype(precision: str | None, device: torch.device) -> torch.dtype:
    """The eigensolve precision: explicit, or float64 on the CPU and float32 on accelerators.

    CPU LAPACK runs float64 at roughly half its float32 speed, which buys agreement with
    the reference to 1e-9; GPUs other than data-centre parts run float64 at 1/32 to 1/64
    of float32, where float32 stays within 1e-5 bits.
    """
    if precision is None:
        return torch.float64 if device.type == "cpu" else torch.float32
    check_precision(precision)
    return torch.float64 if precision == "float64" else torch.float32

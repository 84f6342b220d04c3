"""From whatever a layer returns to one row per sample: the tensor, then the pooling.

1. `select_output(value, output_key)`: a tensor is kept; a tuple or list gives its first
   tensor; a mapping (a dict, an OrderedDict, a `transformers` `ModelOutput`, which is an
   OrderedDict and not a tuple) gives its first tensor value; `output_key` names a field
   instead (a key, or an attribute of a named tuple or other object; a bare tensor is
   taken as it is). A missing key fails listing the keys that exist.
2. `pool_rows(h, pool, mask)`: activations of shape (B, ...) become rows (B, D):

   - (B, H) is left alone ("none"), whatever `pool` says;
   - (B, T, H), a sequence of T tokens: "mean" (the default), "first", "last" or "flatten"
     (T*H features). With an attention mask m (B, T), 1 for real tokens, "mean" is
     (h * m).sum(1) / m.sum(1).clamp(min=1), and "first" / "last" take the lowest / highest
     index where m is 1, so padding on either side changes nothing;
   - (B, C, H, W) conv maps and higher: "flatten" by default (C*H*W features); "mean" is
     the global average over the spatial positions (B, C); "first" and "last" have no
     meaning there and are refused;
   - (B,) becomes one feature (B, 1).

The mask applies to sequences only, and must match (B, T); a mismatch is an error (a CLS
token prepended inside the model, for example), not a silent unmasked mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

POOL_MODES = ("mean", "first", "last", "flatten")


def select_output(value: Any, output_key: str | None = None, where: str = "the layer's output") -> torch.Tensor:
    """The tensor to record from a layer's input or output.

    Args:
        value: a tensor, a tuple or list, a mapping (dict, `ModelOutput`) or an object.
        output_key: the field to take; None takes the first tensor.
        where: names the value in error messages (for example "layer 'encoder' output").

    Raises:
        KeyError: `output_key` is not there (the message lists the keys that are).
        TypeError: no tensor to take.

    Example:
        >>> select_output({"logits": torch.ones(2, 3), "hidden": torch.zeros(2, 4)}, "hidden").shape
        torch.Size([2, 4])
        >>> select_output((torch.ones(2, 5), None)).shape
        torch.Size([2, 5])
    """
    if isinstance(value, torch.Tensor):
        return value  # `output_key` picks a field of containers; with `layers=` some layers may return tensors
    if output_key is not None:
        found = _field(value, output_key)
        if found is _MISSING:
            raise KeyError(
                f"output_key={output_key!r} is not in {where}, a {type(value).__name__} with keys "
                f"{_keys(value)}; pass one of those"
            )
        if not isinstance(found, torch.Tensor):
            raise TypeError(f"{where}[{output_key!r}] is a {type(found).__name__}, not a tensor")
        return found
    items = value.values() if isinstance(value, Mapping) else value if isinstance(value, (tuple, list)) else ()
    for item in items:
        if isinstance(item, torch.Tensor):
            return item
    raise TypeError(
        f"{where} is a {type(value).__name__} holding no tensor{_keys_note(value)}; pass output_key='<field>' "
        "or hook another layer"
    )


_MISSING = object()


def _field(value: Any, key: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(key, _MISSING)
    return getattr(value, key, _MISSING)


def _keys(value: Any) -> list[str]:
    if isinstance(value, Mapping):
        return [str(key) for key in value]
    fields = getattr(value, "_fields", None)  # a named tuple
    if fields is not None:
        return list(fields)
    return [name for name in vars(value) if not name.startswith("_")] if hasattr(value, "__dict__") else []


def _keys_note(value: Any) -> str:
    keys = _keys(value) if not isinstance(value, (tuple, list)) or hasattr(value, "_fields") else []
    return f" (keys {keys})" if keys else ""


def applied_pool(ndim: int, pool: str | None) -> str:
    """The pooling that (B, ...) activations of `ndim` dimensions get under the setting `pool`.

    Example:
        >>> applied_pool(2, "mean"), applied_pool(3, None), applied_pool(4, None), applied_pool(4, "mean")
        ('none', 'mean', 'flatten', 'mean')
    """
    if pool is not None and pool not in POOL_MODES:
        raise ValueError(f"pool must be one of {POOL_MODES} or None, got {pool!r}")
    if ndim <= 1:
        return "flatten"
    if ndim == 2:
        return "none"
    if pool is None:
        return "mean" if ndim == 3 else "flatten"
    if ndim > 3 and pool in ("first", "last"):
        raise ValueError(
            f"pool={pool!r} takes one token of (B, T, H) sequence activations, but this layer gives "
            f"{ndim}-D activations (B, C, H, W, ...), which have no token order; pass pool='mean' (the global "
            "average over the spatial positions) or pool='flatten'"
        )
    return pool


def pool_rows(h: torch.Tensor, pool: str | None = None, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, str]:
    """(rows (B, D), the pooling applied) from activations `h` of shape (B, ...).

    Args:
        h: a layer's activations; the first dimension is the batch.
        pool: "mean", "first", "last", "flatten" or None (see the module docstring).
        mask: (B, T) attention mask of a (B, T, H) sequence, nonzero for real tokens; None
            treats every token as real.

    Example:
        >>> h = torch.tensor([[[1.0], [3.0], [100.0]]])  # one sequence of 3 tokens, the last a pad
        >>> pool_rows(h, "mean", torch.tensor([[1, 1, 0]]))
        (tensor([[2.]]), 'mean')
        >>> pool_rows(h, "last", torch.tensor([[1, 1, 0]]))[0]
        tensor([[3.]])
    """
    applied = applied_pool(h.ndim, pool)
    if applied == "none":
        return h, applied
    if applied == "flatten":
        return h.reshape(h.shape[0], -1), applied
    if h.ndim > 3:  # a conv map's "mean": the global average over its positions
        return h.mean(dim=tuple(range(2, h.ndim))), applied
    if mask is not None and tuple(mask.shape) != tuple(h.shape[:2]):
        raise ValueError(
            f"the attention mask has shape {list(mask.shape)} but the sequence activations are {list(h.shape)} "
            "(B, T, H): the tokens do not line up (a token added inside the model?); pass mask_key=None to pool "
            "every token, or hook a layer whose tokens match the batch's"
        )
    if applied == "mean":
        if mask is None:
            return h.mean(dim=1), applied
        weights = mask.to(device=h.device, dtype=h.dtype).unsqueeze(-1)
        return (h * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1), applied
    if mask is None:
        index = torch.full((h.shape[0],), 0 if applied == "first" else h.shape[1] - 1, device=h.device)
    else:
        index = _edge_token(mask.to(h.device) != 0, last=applied == "last")
    return h[torch.arange(h.shape[0], device=h.device), index], applied


def _edge_token(real: torch.Tensor, last: bool) -> torch.Tensor:
    """Per row of a (B, T) boolean mask, the highest (`last`) or lowest index that is True (0 if none)."""
    positions = torch.arange(real.shape[1], device=real.device).expand_as(real)
    if last:
        return torch.where(real, positions, -1).amax(dim=1).clamp(min=0)
    lowest = torch.where(real, positions, real.shape[1]).amin(dim=1)
    return torch.where(lowest == real.shape[1], 0, lowest)

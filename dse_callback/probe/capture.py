"""Forward hooks that record layers' activations without changing the model.

The penultimate representation is the *input* of the classifier head, so by default the
hook is a forward pre-hook on the model's last `nn.Linear`. `LayerRecorders` hooks several
layers at once, so one forward pass records them all. `layer_label` names the capture
side ("head (input)"), so nobody reads the input of the head as the logits.

Each recorded value goes through `pooling`: the tensor is picked out of a tuple, a dict or
a `ModelOutput` (`output_key`), then pooled to rows (B, D) (`pool`, with the batch's
attention mask, which the forward pass hands in per batch through `set_mask`).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from .pooling import applied_pool, pool_rows, select_output

CAPTURE_MODES = ("input", "output")

# How many valid layer names an "unknown layer" error lists before it abbreviates.
_NAMES_SHOWN = 40


def find_layer(model: nn.Module, layer: str | None) -> tuple[str, nn.Module]:
    """The submodule named `layer` (dotted, as in `named_modules`), or the last `nn.Linear`.

    Raises:
        ValueError: the name is unknown (the message lists valid names), or `layer` is None
            and the model has no `nn.Linear`.
    """
    modules = dict(model.named_modules())
    if layer is None:
        linear_names = [name for name, module in modules.items() if isinstance(module, nn.Linear)]
        if not linear_names:
            raise ValueError(
                f"{type(model).__name__} has no nn.Linear to take the penultimate representation from; "
                "pass layer='<dotted module name>'"
            )
        return linear_names[-1], modules[linear_names[-1]]
    if layer not in modules or layer == "":
        names = [name for name in modules if name]
        shown = ", ".join(names[:_NAMES_SHOWN]) + (f", ... ({len(names)} in all)" if len(names) > _NAMES_SHOWN else "")
        raise ValueError(f"layer {layer!r} is not a submodule of {type(model).__name__}; valid names: {shown}")
    return layer, modules[layer]


def layer_label(layer_name: str, capture: str) -> str:
    """The layer and the side captured, as shown in the history and the logs.

    Example:
        >>> layer_label("head", "input")
        'head (input)'
    """
    return f"{layer_name} ({capture})"


class ActivationRecorder:
    """Records a layer's inputs or outputs as rows (batch, D), while active.

    Use as a context manager: the hook is registered on entry and removed on exit, also
    when the forward pass raises.

    Args:
        model: the module to hook.
        layer: dotted layer name; None for the input of the last nn.Linear.
        capture: record the layer's "input" (its first tensor argument, or a keyword
            argument named by `output_key`) or its "output".
        output_key: the field of a tuple, dict or `ModelOutput` to record; None: the first tensor.
        pool: how (B, T, H) and larger activations become rows (`pooling.pool_rows`).

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        >>> with ActivationRecorder(model) as recorder:
        ...     _ = model(torch.ones(5, 4))
        >>> recorder.layer_name, tuple(recorder.activations().shape), recorder.pooling
        ('2', (5, 3), 'none')
    """

    def __init__(
        self,
        model: nn.Module,
        layer: str | None = None,
        capture: str = "input",
        output_key: str | None = None,
        pool: str | None = None,
    ):
        if capture not in CAPTURE_MODES:
            raise ValueError(f"capture must be one of {CAPTURE_MODES}, got {capture!r}")
        applied_pool(3, pool)  # validates `pool`
        self.layer_name, self.module = find_layer(model, layer)
        self.capture = capture
        self.output_key = output_key
        self.pool = pool
        self.mask: torch.Tensor | None = None  # the current batch's attention mask (B, T)
        self.pooling = ""  # the pooling applied, known once the hook fired
        self.calls = 0
        self._chunks: list[torch.Tensor] = []
        self._handle = None

    def _record(self, value) -> None:
        where = f"layer {self.layer_name!r} {self.capture}"
        h = select_output(value, self.output_key, where).detach()
        h = h if h.dtype in (torch.float32, torch.float64) else h.float()  # pool in float32 at least
        rows, self.pooling = pool_rows(h, self.pool, self.mask)
        self.calls += 1
        self._chunks.append(rows)

    def _pre_hook(self, module, args, kwargs) -> None:
        # The input side: the first tensor argument (positional, else keyword); `output_key`
        # names a keyword argument, else a field of the first positional argument.
        if self.output_key is None:
            self._record((*args, *kwargs.values()))
        elif self.output_key in kwargs or not args:
            self._record(kwargs)
        else:
            self._record(args[0])

    def _hook(self, module, inputs, output) -> None:
        self._record(output)

    def __enter__(self) -> ActivationRecorder:
        if self.capture == "input":
            self._handle = self.module.register_forward_pre_hook(self._pre_hook, with_kwargs=True)
        else:
            self._handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc_info) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove the hook; safe to call more than once."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    @property
    def active(self) -> bool:
        return self._handle is not None

    def activations(self) -> torch.Tensor:
        """All recorded rows, (N, D); raises if the hook never fired."""
        if not self._chunks:
            raise RuntimeError(
                f"the forward hook on layer {self.layer_name!r} never fired during the probe. Under "
                "torch.compile, hooks registered after compilation may not fire: give the Trainer the "
                "uncompiled module, or compile only a submodule that does not contain this layer. "
                "Otherwise check that forward() calls this layer."
            )
        return torch.cat(self._chunks)

    def clear(self) -> None:
        self._chunks = []
        self.calls = 0
        self.mask = None

    @property
    def label(self) -> str:
        return layer_label(self.layer_name, self.capture)


class LayerRecorders:
    """One `ActivationRecorder` per named layer, all active together for one forward pass.

    Args:
        model: the module to hook.
        layers: {name: dotted layer name or None (the input of the last nn.Linear)}.
        capture: "input" or "output", for every layer.
        output_key, pool: as for `ActivationRecorder`, for every layer.

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        >>> with LayerRecorders(model, {"hidden": "1", "Z": None}, "input") as recorders:
        ...     _ = model(torch.ones(5, 4))
        >>> {name: tuple(z.shape) for name, z in recorders.activations().items()}
        {'hidden': (5, 3), 'Z': (5, 3)}
    """

    def __init__(
        self,
        model: nn.Module,
        layers: dict[str, str | None],
        capture: str = "input",
        output_key: str | None = None,
        pool: str | None = None,
    ):
        self.recorders = {
            name: ActivationRecorder(model, layer, capture, output_key, pool) for name, layer in layers.items()
        }

    def __enter__(self) -> LayerRecorders:
        try:
            for recorder in self.recorders.values():
                recorder.__enter__()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook; safe to call more than once."""
        for recorder in self.recorders.values():
            recorder.remove()

    def set_mask(self, mask: torch.Tensor | None) -> None:
        """The attention mask (B, T) of the batch about to run, for pooling sequences (None: none)."""
        for recorder in self.recorders.values():
            recorder.mask = mask

    @property
    def labels(self) -> dict[str, str]:
        return {name: recorder.label for name, recorder in self.recorders.items()}

    @property
    def pooling(self) -> dict[str, str]:
        """{name: the pooling applied} ("none", "mean", "first", "last", "flatten")."""
        return {name: recorder.pooling for name, recorder in self.recorders.items()}

    def activations(self) -> dict[str, torch.Tensor]:
        """{name: (N, D)} for every layer; raises if a hook never fired."""
        return {name: recorder.activations() for name, recorder in self.recorders.items()}


def iterate_modes(model: nn.Module) -> Iterator[tuple[nn.Module, bool]]:
    """Each submodule with its current `training` flag."""
    for module in model.modules():
        yield module, module.training


class EvalMode:
    """Put every submodule in eval mode, then restore each one's own previous flag.

    A blanket `model.train()` on exit would wrongly switch on submodules the user had
    frozen in eval mode (for example a BatchNorm kept in eval for fine-tuning).
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self._saved: list[tuple[nn.Module, bool]] = []

    def __enter__(self) -> EvalMode:
        self._saved = list(iterate_modes(self.model))
        self.model.eval()
        return self

    def __exit__(self, *exc_info) -> None:
        for module, training in self._saved:
            module.training = training

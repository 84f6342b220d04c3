"""Which representations a monitor watches, and the keys their values are logged under.

`resolve_layers` turns `layer`/`name` or `layers` into {name: dotted layer name};
`metric_keys` gives each name's flat keys (`dse/{name}`, `dsmi/{name}_Y`, ...), and
`timing_keys` the probe's own (`dse/probe_seconds`, `dse/epoch`, suffixed by a monitor
name other than "Z"). No Lightning here.
"""

from __future__ import annotations

_KEY_PATTERNS = {
    "dse": "dse/{}",
    "dsmi_y": "dsmi/{}_Y",
    "dsmi_x": "dsmi/{}_X",
    "cse": "cse/{}",
    "csmi_y": "csmi/{}_Y",
    "csmi_x": "csmi/{}_X",
    "rankme": "rankme/{}",
}


def metric_keys(names) -> dict[str, dict[str, str]]:
    """{name: {metric: key}} for every representation name.

    Example:
        >>> metric_keys(["Z"])["Z"]["dsmi_y"]
        'dsmi/Z_Y'
    """
    return {name: {metric: pattern.format(name) for metric, pattern in _KEY_PATTERNS.items()} for name in names}


def timing_keys(name: str) -> dict[str, str]:
    """The keys of the probe's wall time and of the epochs trained, for a monitor `name`."""
    suffix = "" if name == "Z" else f"_{name}"
    return {"probe_seconds": f"dse/probe_seconds{suffix}", "epoch": f"dse/epoch{suffix}"}


def flat_values(keys, timing_keys_: dict[str, str], values: dict[str, dict[str, float]], epoch: int, probe_seconds: float) -> dict[str, float]:
    """{key: value} of one probe: every metric of every representation, its time and epoch."""
    flat = {keys[name][metric]: value for name, by_metric in values.items() for metric, value in by_metric.items()}
    flat[timing_keys_["probe_seconds"]] = probe_seconds
    flat[timing_keys_["epoch"]] = float(epoch)
    return flat


def resolve_layers(layer: str | None, layers, name: str) -> dict[str, str | None]:
    """{representation name: dotted layer name or None} from `layer`/`name` or `layers`."""
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"name must be a non-empty string without '/', got {name!r}")
    if layers is None:
        return {name: layer}
    if layer is not None:
        raise ValueError(f"pass either layer={layer!r} or layers=..., not both")
    if isinstance(layers, str):
        raise TypeError(f"layers must be a list or a dict of dotted layer names, got the string {layers!r}; use layer=")
    resolved = dict(layers) if isinstance(layers, dict) else {dotted: dotted for dotted in layers}
    if not resolved or len(resolved) != len(list(layers)):
        raise ValueError(f"layers must name at least one layer, each once, got {layers!r}")
    for key, dotted in resolved.items():
        if not isinstance(key, str) or not key or "/" in key or not isinstance(dotted, str):
            raise ValueError(f"layers entries must be dotted names (and names without '/'), got {key!r}: {dotted!r}")
    return resolved

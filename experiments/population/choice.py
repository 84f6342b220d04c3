"""The rule that chooses the monitor's default bandwidth from the population study's correlations.

Among the bandwidths the monitor accepts, the one with the highest minimum within-family
Spearman of DSMI(Z; Y) with accuracy (ties: the higher pooled Spearman); it is adopted only
if that minimum is at least that of `sqrt_dim`, the paper's ImageNet setting. A measure
that orders the models within every family is one a user can trust on their own model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .metrics import MEASURES, PRESETS


def choose_default(
    table: Sequence[dict],
    candidates: Sequence[str] = ("10", *PRESETS),
    baseline: str = "sqrt_dim",
    key: str = "dsmi_y",
) -> dict:
    """The default bandwidth by the study's rule, and the evidence for it.

    The rule: among `candidates` (bandwidths the monitor accepts), the one with the highest
    minimum within-family Spearman of `key` (DSMI(Z; Y)) with accuracy, ties broken by the
    pooled Spearman; it is adopted only if that minimum is at least the `baseline`'s
    (sqrt_dim, the paper's setting). A family whose Spearman is NaN counts as -1.

    Returns:
        dict with `chosen` (a label), `passes` (whether it is at least as good as the
        baseline on its worst family), `worst` (label -> (family, Spearman) of its worst
        family), `pooled` (label -> pooled Spearman) and `rule` (the rule in words).
    """
    entries = [entry for entry in table if entry["measure"] == key]
    labels = list(dict.fromkeys(entry["sigma"] for entry in entries))
    missing = [label for label in (*candidates, baseline) if label not in labels]
    if missing:
        raise ValueError(f"the table has no {key} rows for {missing}; it has {labels}")

    def value(entry: dict) -> float:
        return entry["spearman"] if math.isfinite(entry["spearman"]) else -1.0

    worst, pooled = {}, {}
    for label in labels:
        within = [entry for entry in entries if entry["sigma"] == label and entry["family"] != "all"]
        lowest = min(within, key=value)
        worst[label] = (lowest["family"], value(lowest))
        pooled[label] = next(value(entry) for entry in entries if entry["sigma"] == label and entry["family"] == "all")
    chosen = max(candidates, key=lambda label: (worst[label][1], pooled[label]))
    return {
        "chosen": chosen,
        "passes": worst[chosen][1] >= worst[baseline][1],
        "worst": worst,
        "pooled": pooled,
        "rule": (
            f"the bandwidth among {', '.join(candidates)} with the highest minimum within-family Spearman of "
            f"{MEASURES[key]} with accuracy (ties: the higher pooled Spearman), adopted if that minimum is at "
            f"least {baseline}'s"
        ),
    }


def format_choice(choice: dict, baseline: str = "sqrt_dim") -> str:
    """The rule, each bandwidth's worst family and pooled Spearman, and the verdict, as text."""
    lines = [f"Rule: {choice['rule']}.", "", f"{'sigma':<10}{'worst family':<14}{'Spearman':>9}{'pooled':>9}"]
    for label, (family, value) in choice["worst"].items():
        lines.append(f"{label:<10}{family:<14}{value:>9.3f}{choice['pooled'][label]:>9.3f}")
    chosen = choice["chosen"]
    verdict = "at least as good as" if choice["passes"] else "WORSE than"
    lines += [
        "",
        f"chosen: {chosen} (worst family {choice['worst'][chosen][0]} at {choice['worst'][chosen][1]:.3f}), "
        f"{verdict} {baseline} on its worst family ({choice['worst'][baseline][1]:.3f})",
    ]
    return "\n".join(lines)

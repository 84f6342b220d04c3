"""The rule that chooses the monitor's default bandwidth from the population study's correlations.

Among the bandwidths the monitor accepts, the one with the highest minimum within-family
Spearman with accuracy over the monitor's two headline curves, DSE and DSMI(Z; Y) (ties:
the higher pooled Spearman of DSMI(Z; Y)); it is adopted only if its worst within-family
Spearman of DSMI(Z; Y) is at least that of `sqrt_dim`, the paper's ImageNet setting. A
default applies to every curve the monitor draws, so it must keep each of them ordering the
models within every family: a measure that does is one a user can trust on their own model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .metrics import MEASURES, PRESETS


def choose_default(
    table: Sequence[dict],
    candidates: Sequence[str] = ("10", *PRESETS),
    baseline: str = "sqrt_dim",
    keys: Sequence[str] = ("dse", "dsmi_y"),
) -> dict:
    """The default bandwidth by the study's rule, and the evidence for it.

    The rule: among `candidates` (bandwidths the monitor accepts), the one with the highest
    minimum within-family Spearman with accuracy over the measures `keys` (DSE and DSMI(Z; Y)),
    ties broken by the pooled Spearman of the last key; it is adopted only if its worst family
    on the last key (DSMI(Z; Y)) is at least the `baseline`'s (sqrt_dim, the paper's
    setting). A family whose Spearman is NaN counts as -1.

    Returns:
        dict with `chosen` (a label), `passes` (whether it is at least as good as the
        baseline on its worst family of the last key), `worst` (label -> (family, measure,
        Spearman) of its worst family over `keys`), `worst_mi` (label -> (family, Spearman)
        on the last key), `pooled` (label -> pooled Spearman of the last key) and `rule`.
    """
    keys = tuple(keys)
    labels = list(dict.fromkeys(entry["sigma"] for entry in table if entry["measure"] in keys))
    for key in keys:
        present = {entry["sigma"] for entry in table if entry["measure"] == key}
        missing = [label for label in (*candidates, baseline) if label not in present]
        if missing:
            raise ValueError(f"the table has no {key} rows for {missing}; it has {sorted(present)}")

    def value(entry: dict) -> float:
        return entry["spearman"] if math.isfinite(entry["spearman"]) else -1.0

    def within(label: str, measures) -> list[dict]:
        return [e for e in table if e["sigma"] == label and e["measure"] in measures and e["family"] != "all"]

    worst, worst_mi, pooled = {}, {}, {}
    for label in labels:
        lowest = min(within(label, keys), key=value)
        worst[label] = (lowest["family"], lowest["measure"], value(lowest))
        lowest_mi = min(within(label, keys[-1:]), key=value)
        worst_mi[label] = (lowest_mi["family"], value(lowest_mi))
        pooled[label] = next(
            value(e) for e in table if e["sigma"] == label and e["measure"] == keys[-1] and e["family"] == "all"
        )
    chosen = max(candidates, key=lambda label: (worst[label][2], pooled[label]))
    names = " and ".join(MEASURES[key] for key in keys)
    return {
        "chosen": chosen,
        "passes": worst_mi[chosen][1] >= worst_mi[baseline][1],
        "worst": worst,
        "worst_mi": worst_mi,
        "pooled": pooled,
        "rule": (
            f"the bandwidth among {', '.join(candidates)} with the highest minimum within-family Spearman with "
            f"accuracy over {names} (ties: the higher pooled Spearman of {MEASURES[keys[-1]]}), adopted if its "
            f"worst family on {MEASURES[keys[-1]]} is at least {baseline}'s"
        ),
    }


def format_choice(choice: dict, baseline: str = "sqrt_dim") -> str:
    """The rule, each bandwidth's worst family and pooled Spearman, and the verdict, as text."""
    header = f"{'sigma':<10}{'worst (family, measure)':<26}{'Spearman':>9}{'worst MI':>10}{'pooled MI':>10}"
    lines = [f"Rule: {choice['rule']}.", "", header]
    for label, (family, measure, value) in choice["worst"].items():
        where = f"{family}, {measure}"
        lines.append(
            f"{label:<10}{where:<26}{value:>9.3f}{choice['worst_mi'][label][1]:>10.3f}{choice['pooled'][label]:>10.3f}"
        )
    chosen = choice["chosen"]
    verdict = "at least as good as" if choice["passes"] else "WORSE than"
    family, value = choice["worst_mi"][chosen]
    lines += [
        "",
        f"chosen: {chosen} (worst over both measures: {choice['worst'][chosen][2]:.3f}; worst family of the MI: "
        f"{family} at {value:.3f}), {verdict} {baseline} on its worst family ({choice['worst_mi'][baseline][1]:.3f})",
    ]
    return "\n".join(lines)

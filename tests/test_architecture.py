"""The package's shape, checked from its source: import direction, no cycles, sizes.

Stages, bottom first; a module may import its own stage and the stages below it:
kernel (0) <- probe, report (1) <- distributed (2) <- measure (3) <- integrations (4).
The package's shims (`dse_callback/__init__.py`, `lightning.py`, `solvers/`) may import
anything. Every import counts, also those inside functions.
"""

from __future__ import annotations

import ast
import pathlib
from collections import defaultdict

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "dse_callback"
STAGES = {"kernel": 0, "probe": 1, "report": 1, "distributed": 2, "measure": 3, "integrations": 4}
FRAMEWORKS = ("lightning", "pytorch_lightning", "transformers", "wandb", "mlflow", "comet_ml")


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: pathlib.Path) -> set[str]:
    """Every module `path` imports, anywhere in it, as absolute names."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = ".".join(base[: len(base) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module
            found.add(module)
            # `from . import x` imports the submodule x
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def package_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = defaultdict(set)
    for name, path in modules.items():
        for imported in imports_of(path):
            if imported in modules and imported != name:
                graph[name].add(imported)
    return {name: graph[name] for name in modules}


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def stage_violations(graph) -> list[str]:
    problems = []
    for module, imported in graph.items():
        stage = stage_of(module)
        if stage is None:
            continue  # a shim
        for target in imported:
            target_stage = stage_of(target)
            if target_stage is None:
                problems.append(f"{module} imports the shim {target}")
            elif STAGES[target_stage] > STAGES[stage] or (
                STAGES[target_stage] == STAGES[stage] and target_stage != stage
            ):
                problems.append(f"{module} ({stage}) imports {target} ({target_stage})")
    return problems


def cycles(graph) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_imports_run_one_way_from_the_integrations_down_to_the_kernel():
    assert stage_violations(package_graph()) == []


def test_there_is_no_import_cycle_not_even_through_a_function_level_import():
    assert cycles(package_graph()) == []


def test_frameworks_are_imported_only_in_the_integrations():
    for path in PACKAGE.rglob("*.py"):
        if stage_of(module_name(path)) == "integrations":
            continue
        frameworks = {name for name in imports_of(path) if name.split(".")[0] in FRAMEWORKS}
        assert not frameworks, f"{path.relative_to(PACKAGE.parent)} imports {sorted(frameworks)}"


def test_the_checks_catch_a_broken_tree():
    graph = package_graph()
    broken = {
        **graph,
        "dse_callback.kernel.entropy": graph["dse_callback.kernel.entropy"] | {"dse_callback.measure.tracker"},
    }
    assert stage_violations(broken) == [
        "dse_callback.kernel.entropy (kernel) imports dse_callback.measure.tracker (measure)"
    ]
    looped = {**graph, "dse_callback.kernel.geometry.distances": {"dse_callback.kernel.entropy"}}
    assert any("dse_callback.kernel.geometry.distances" in cycle for cycle in cycles(looped))
    sideways = {**graph, "dse_callback.probe.capture": {"dse_callback.report.history"}}
    assert stage_violations(sideways) == [
        "dse_callback.probe.capture (probe) imports dse_callback.report.history (report)"
    ]


@pytest.mark.parametrize("root", ["dse_callback", "experiments"])
def test_modules_stay_small_and_folders_uncrowded(root):
    folder = PACKAGE.parent / root
    modules = [path for path in folder.rglob("*.py")]
    long = {
        str(path.relative_to(PACKAGE.parent)): n for path in modules if (n := len(path.read_text().splitlines())) > 300
    }
    assert long == {}
    per_folder = defaultdict(int)
    for path in modules:
        if path.name != "__init__.py":
            per_folder[str(path.parent.relative_to(PACKAGE.parent))] += 1
    assert {name: count for name, count in per_folder.items() if count > 10} == {}

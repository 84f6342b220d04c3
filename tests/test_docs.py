"""The documentation site builds warning-free, and covers the package: every exported name
and every module has its entry.

`docs/api.md` documents each name of `dse_callback.__all__` once, with an autodoc directive
under `.. currentmodule:: dse_callback`; the stage pages `docs/api/*.md` hold one
`automodule` per module of the package. Both are read from the pages' source, so these
checks need no Sphinx; the build itself needs the [docs] extra and skips without it.
"""

from __future__ import annotations

import importlib.util
import pathlib
import re
import subprocess
import sys

import pytest

import dse_callback

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
_DIRECTIVE = re.compile(r"^\s*\.\. (currentmodule|auto\w+)::\s*(\S+)", re.MULTILINE)


def documented_objects(text: str) -> set[str]:
    """Full names of the objects that autodoc directives in `text` describe (modules included)."""
    found, module = set(), None
    for directive, target in _DIRECTIVE.findall(text):
        if directive == "currentmodule":
            module = target
        elif directive == "automodule" or module is None or target.startswith(module + "."):
            found.add(target)
        else:
            found.add(f"{module}.{target}")
    return found


def package_modules() -> set[str]:
    """Every module of the package, as dotted names (packages by their own name)."""
    names = set()
    for path in (ROOT / "dse_callback").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def missing_names(api_text: str) -> list[str]:
    public = {f"dse_callback.{name}" for name in dse_callback.__all__} | {"dse_callback.lightning.DSEMonitor"}
    return sorted(public - documented_objects(api_text))


def missing_modules(pages_text: str) -> list[str]:
    return sorted(package_modules() - {"dse_callback"} - documented_objects(pages_text))


def all_pages_text() -> str:
    return "\n".join(path.read_text() for path in sorted(DOCS.rglob("*.md")))


def test_every_exported_name_has_its_entry_in_the_api_reference():
    assert missing_names((DOCS / "api.md").read_text()) == []


def test_every_module_of_the_package_has_its_entry_on_a_stage_page():
    assert missing_modules(all_pages_text()) == []


def test_the_coverage_checks_catch_a_name_or_a_module_left_out():
    api = (DOCS / "api.md").read_text()
    without_rankme = re.sub(r"^\.\. autofunction:: rankme\n", "", api, flags=re.MULTILINE)
    assert without_rankme != api
    assert missing_names(without_rankme) == ["dse_callback.rankme"]
    # "Measuring any tensor" lists it under currentmodule dse_callback; elsewhere it is another name
    moved = api.replace(".. autofunction:: rankme\n", ".. currentmodule:: other\n.. autofunction:: rankme\n")
    assert "dse_callback.rankme" in missing_names(moved)
    pages = all_pages_text()
    without_slq = pages.replace(".. automodule:: dse_callback.kernel.solvers.slq\n", "")
    assert missing_modules(without_slq) == ["dse_callback.kernel.solvers.slq"]


def _conf():
    spec = importlib.util.spec_from_file_location("docs_conf", DOCS / "conf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plain_text_bars_are_escaped_in_prose_only():
    lines = [
        "p_i = |lambda_i|^t, and `a|b` or ``|x|`` stay::",
        "",
        "    G = exp(-|z_i - z_j|^2)",
        "",
        "Then |x| again.",
        ">>> abs(-1) | 0",
        "1",
        ":type sigma: float | str",
    ]
    assert _conf().escape_plain_text_bars(lines) == [
        r"p_i = \|lambda_i\|^t, and `a|b` or ``|x|`` stay::",
        "",
        "    G = exp(-|z_i - z_j|^2)",
        "",
        r"Then \|x\| again.",
        ">>> abs(-1) | 0",
        "1",
        ":type sigma: float | str",
    ]


def test_the_site_builds_without_a_warning(tmp_path):
    """The build command of docs/index.md, into a temporary folder: any warning fails it."""
    for module in ("sphinx", "furo", "myst_parser"):
        pytest.importorskip(module, reason="the [docs] extra is not installed")
    output = tmp_path / "html"
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "docs", str(output)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-6000:]
    assert {"index.html", "math.html", "reproducing.html", "speed.html", "architecture.html", "api.html"} <= {
        path.name for path in output.glob("*.html")
    }
    assert (output / "_images" / "mnist_cpu_plane.png").is_file()  # the figures under results/ come along

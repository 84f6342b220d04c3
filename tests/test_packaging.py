"""The wheel: only `dse*` top-level packages, py.typed, the LICENSE, a version that matches
`dse_callback.__version__`, and a `dse-experiment` that runs from a fresh virtual environment."""

from __future__ import annotations

import configparser
import os
import pathlib
import shutil
import subprocess
import sys
import venv
import zipfile

import pytest

import dse_callback

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The repository folders of the packages, and the names they install under (setup.cfg's package_dir).
SOURCES = {"dse_callback": "dse_callback", "experiments": "dse_experiments"}


def declared_packages() -> set[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return {line.strip() for line in config["options"]["packages"].splitlines() if line.strip()}


def source_packages() -> set[str]:
    found = set()
    for folder, installed in SOURCES.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((installed, *parts)))
    return found


def test_setup_cfg_lists_every_package_of_the_tree():
    assert declared_packages() == source_packages()


def test_the_check_sees_a_package_missing_from_the_list(tmp_path, monkeypatch):
    for folder in ("dse_callback", "dse_callback/new_stage", "experiments"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / "__init__.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert source_packages() == {"dse_callback", "dse_callback.new_stage", "dse_experiments"}
    (tmp_path / "setup.cfg").write_text((pathlib.Path(__file__).resolve().parents[1] / "setup.cfg").read_text())
    assert declared_packages() != source_packages()  # the real list lacks the new package


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
    """`pip wheel . --no-deps` of a copy of the sources (the build leaves nothing in the checkout)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    for folder in SOURCES:
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        str(source),
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(out),
    ]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=600)
    (built,) = out.glob("*.whl")
    return built


def test_the_wheel_holds_only_dse_packages_with_py_typed_the_license_and_the_version(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = f"dse_callback-{dse_callback.__version__}.dist-info"
    assert {name.split("/")[0] for name in names} == {"dse_callback", "dse_experiments", dist_info}
    assert "dse_callback/py.typed" in names and f"{dist_info}/licenses/LICENSE" in names
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    assert f"Version: {dse_callback.__version__}" in metadata
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info}/entry_points.txt").decode()
    assert "dse-experiment = dse_experiments.cli:main" in entry_points


def test_the_wheel_installs_into_a_fresh_environment_and_runs(wheel, tmp_path):
    # The dependencies (torch, Lightning, ...) come from this environment; the package itself only from the wheel.
    environment = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(environment)
    python = environment / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q"]
    subprocess.run([*pip, str(wheel)], check=True, capture_output=True, text=True, timeout=300)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    probe = (
        "import dse_callback, dse_experiments, torch; "
        "print(dse_callback.__file__, dse_experiments.__file__, dse_callback.__version__, "
        "dse_callback.diffusion_spectral_entropy(torch.eye(4) * 1e3, warn_saturation=False))"
    )
    shown = subprocess.run([python, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-3000:]
    package_file, experiments_file, version, dse = shown.stdout.split()
    assert package_file.startswith(str(environment)) and experiments_file.startswith(str(environment))
    assert version == dse_callback.__version__ and float(dse) == pytest.approx(2.0)
    command = environment / "bin" / "dse-experiment"
    helped = subprocess.run([command, "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert helped.returncode == 0, helped.stderr[-3000:]
    assert "fit" in helped.stdout

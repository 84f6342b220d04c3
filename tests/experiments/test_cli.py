"""Every config under configs/ parses and runs one tiny step on tiny generated data."""

import pathlib

import pytest
import yaml

from dse_experiments.cli import main, run
from dse_experiments.plot import labelled_histories, plot_runs, read_history

from fake_datasets import accept_tiny_files, write_cifar10, write_mnist, write_stl10

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[2] / "configs"
# configs/population/ holds `dse-experiment population` studies, not LightningCLI configs.
CONFIGS = sorted(path for path in CONFIG_DIR.rglob("*.yaml") if path.parent.name != "population")
QUICKSTART = CONFIG_DIR / "quickstart.yaml"


def test_there_is_a_config_for_every_paper_run():
    names = {str(path.relative_to(path.parents[2])) for path in CONFIGS if path.parent.parent.name == "paper"}
    expected = {
        f"paper/{d}/{r}.yaml" for d in ("mnist", "cifar10", "stl10") for r in ("supervised", "contrastive", "overfit")
    }
    assert names == expected
    assert {path.name for path in CONFIGS if path.parent.name == "init_study"} == {
        "conv_std_0.01.yaml",
        "conv_std_0.1.yaml",
    }


@pytest.fixture
def tiny_data_root(tmp_path, monkeypatch):
    root = tmp_path / "data"
    write_mnist(root, n_train=16, n_test=12)
    write_cifar10(root, per_batch=4, n_test=12)
    write_stl10(root, n_train=16, n_test=12)
    accept_tiny_files(monkeypatch)
    return root


@pytest.mark.parametrize("config", CONFIGS, ids=lambda path: str(path.relative_to(path.parents[1])))
def test_config_parses_and_runs_one_tiny_step(config, tiny_data_root, tmp_path):
    main(
        [
            "fit",
            "--config",
            str(config),
            "--trainer.fast_dev_run",
            "1",
            "--trainer.accelerator",
            "cpu",
            "--trainer.default_root_dir",
            str(tmp_path / "run"),
            "--data.data_dir",
            str(tiny_data_root),
            "--data.image_size",
            "32",
            "--data.batch_size",
            "4",
            "--data.num_workers",
            "0",
            "--data.train_subset",
            "8",
            "--dse.probe_size",
            "12",
            # Measure and run the contrastive linear probe after this one epoch too.
            "--dse.every_n_epochs",
            "1",
            "--model.linear_probe_every",
            "1",
        ]
    )
    history = next((tmp_path / "run").rglob("dse_history.csv"), None)
    assert history is not None and set(read_history(history)["epoch"]) == {0.0, 1.0}


def test_seed_links_to_the_label_permutation_and_the_resolved_config_is_saved(tmp_path):
    cli = run(
        [
            "fit",
            "--config",
            str(QUICKSTART),
            "--seed_everything",
            "5",
            "--trainer.max_epochs",
            "1",
            "--trainer.limit_train_batches",
            "2",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
            "--data.regime",
            "overfit",
            "--dse.metrics",
            "[dse]",
        ]
    )
    assert cli.datamodule.hparams.label_seed == 5 and cli.model.hparams.regime == "overfit"
    saved = yaml.safe_load(next(tmp_path.rglob("config.yaml")).read_text())
    assert saved["seed_everything"] == 5 and saved["data"]["regime"] == "overfit"
    assert saved["dse"]["metrics"] == ["dse"]
    assert next(tmp_path.rglob("dse_curves.png")).stat().st_size > 10_000


def test_the_console_script_exits_zero(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from dse_experiments.cli import main; sys.exit(main())",
            "fit",
            "--config",
            str(QUICKSTART),
            "--trainer.fast_dev_run",
            "1",
            "--trainer.default_root_dir",
            str(tmp_path),
            "--dse.metrics",
            "[dse]",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_plot_overlays_runs_from_their_history_files(tmp_path):
    for name, slope in (("a", 1.0), ("b", 2.0)):
        folder = tmp_path / name
        folder.mkdir()
        rows = ["epoch,dse,dsmi_y,dsmi_x,val_acc"] + [f"{e},{slope * e},{e / 2},{e / 3},{0.1 * e}" for e in range(4)]
        (folder / "dse_history.csv").write_text("\n".join(rows) + "\n")
    main(["plot", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "figure.png")])
    assert (tmp_path / "figure.png").stat().st_size > 10_000
    assert [label for label, _ in labelled_histories([tmp_path / "a", tmp_path])] == [
        "a",
        f"{tmp_path.name}/a",
        f"{tmp_path.name}/b",
    ]
    with pytest.raises(FileNotFoundError, match="no dse_history"):
        plot_runs([tmp_path / "missing"], tmp_path / "x.png")

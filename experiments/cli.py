"""`dse-experiment`: LightningCLI for the paper's studies, plus `plot`.

    dse-experiment fit --config configs/paper/cifar10/supervised.yaml --model.backbone vit --seed_everything 2
    dse-experiment plot runs/mnist_cpu --out mnist.png

The DSEMonitor has its own config block, `dse:` (so a callbacks list in a later config
cannot drop it). The data module's regime, image size, class count and channels flow into
the model, and the run's seed into the overfitting regime's label permutation. Lightning
saves the resolved config as config.yaml in each run's log directory; after `fit`, the DSE
curves are also drawn to dse_curves.png there.
"""

from __future__ import annotations

import pathlib
import sys

from pytorch_lightning.cli import LightningCLI

from dse_callback import DSEMonitor

from .data import PaperData
from .init_sweep import main as init_sweep_main
from .module import ExperimentModule
from .plot import main as plot_main
from .plot import plot_runs
from .population.study import main as population_main
from .toy import toy_main


def _seed_to_int(seed) -> int:
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else 0


class ExperimentCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(DSEMonitor, "dse")
        parser.link_arguments("data.regime", "model.regime")
        parser.link_arguments("data.image_size", "model.image_size")
        parser.link_arguments("seed_everything", "data.label_seed", compute_fn=_seed_to_int)
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.in_channels", "model.in_channels", apply_on="instantiate")

    def after_fit(self) -> None:
        if not self.trainer.is_global_zero:
            return
        log_dir = pathlib.Path(self.trainer.log_dir or self.trainer.default_root_dir)
        if not list(log_dir.glob("dse_history*.csv")):
            return
        figure = plot_runs([log_dir], log_dir / "dse_curves.png", title=str(log_dir))
        print(f"DSE curves: {figure}\nTensorBoard: tensorboard --logdir {log_dir.parent}")


# Subcommands that are not LightningCLI's: each takes the arguments after its name.
SUBCOMMANDS = {"plot": plot_main, "population": population_main, "init-sweep": init_sweep_main, "toy": toy_main}


def run(argv=None) -> ExperimentCLI | None:
    """Run `dse-experiment`; returns the CLI (its trainer, model and datamodule), None for the others."""
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] in SUBCOMMANDS:
        SUBCOMMANDS[words[0]](words[1:])
        return None
    # LightningCLI reads sys.argv itself; passing `args` too makes it warn that both were given.
    return ExperimentCLI(
        ExperimentModule,
        PaperData,
        args=None if argv is None else words,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
    )


def main(argv=None) -> None:
    """The console script: its return value becomes the exit status, so it returns nothing."""
    run(argv)


if __name__ == "__main__":
    main()

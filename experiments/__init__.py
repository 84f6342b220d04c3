"""Rerunning the paper: data modules, backbones, training regimes, the CLI and plots."""

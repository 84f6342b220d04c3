"""Adapters to training frameworks: the only place a framework is imported.

- `monitor_logic`: the Lightning hooks over a `DSETracker` (Trainer duck-typed);
- `pl_callback`, `lightning_callback`: `DSEMonitor` for each Lightning namespace;
- `trainer_access`, `probe_source`: what the monitor reads from a Lightning Trainer (its
  loaders, watched keys and runtime; the validation data, whatever its schedule);
- `figures`: the figures of a tracker's latest probe, sent to loggers, for every adapter;
- `huggingface`: `DSETrainerCallback` for `transformers.Trainer` (loaded on first use), and
  `hf_trainer_access`: what it reads from that Trainer.

May import every other stage; nothing imports this one but the package's shims.
"""

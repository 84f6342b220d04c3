"""Adapters to training frameworks: the only place a framework is imported.

- `monitor_logic`: the Lightning hooks over a `DSETracker` (Trainer duck-typed);
- `pl_callback`, `lightning_callback`: `DSEMonitor` for each Lightning namespace;
- `trainer_access`: what the monitor reads from a Lightning Trainer;
- `huggingface`: `DSETrainerCallback` for `transformers.Trainer` (loaded on first use), and
  `hf_trainer_access`: what it reads from that Trainer.

May import every other stage; nothing imports this one but the package's shims.
"""

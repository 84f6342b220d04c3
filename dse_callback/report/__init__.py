"""Reporting a probe: the history file, the figures, and where figures go.

- `history`: the CSV history, rewritten safely, and `report_safely`;
- `figures`: matplotlib figures (spectrum, information plane), headless;
- `tensorboard`: the probe's figures and the custom-scalar layout for TensorBoard writers;
- `loggers`: `log_figure`, one figure writer for any logger (TensorBoard, W&B, MLflow,
  Comet; PNG files for CSV or none).

Imports nothing of the package but `kernel`; loggers are duck-typed.
"""

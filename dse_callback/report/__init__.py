"""Reporting a probe: the history file, the figures, and where figures go.

- `history`: the CSV history, rewritten safely, and `report_safely`;
- `figures`: matplotlib figures (spectrum, information plane), headless;
- `tensorboard`: figures and the custom-scalar layout for TensorBoard writers.

Imports nothing of the package but `kernel`; loggers are duck-typed.
"""

"""The HTML report of a training run: `build_report(run_dir, out)` → `<out>/report.html`.

Shows the evaluation scores and confusion matrix (from `evaluation.json`), an image | ground truth |
prediction grid for test samples, training curves (from `history.csv`), the per-epoch prediction
strips, per-split dataset statistics and the resolved configuration. See `training.report.builder`.
"""

from training.report.builder import REPORT_HTML, build_report, default_out

__all__ = ["REPORT_HTML", "build_report", "default_out"]

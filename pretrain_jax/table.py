"""Runs every method of a family's table config and writes the comparison table.

  python -m pretrain_jax.table --config configs/table.py:demo --workdir runs/table_demo
  python -m pretrain_jax.table --config configs/<family>_table.py:<variant> --workdir W

For each method in ``config.methods`` it loads ``configs/<method>.py`` (beside the table
config) at ``config.variant``, runs ``train_and_evaluate`` in ``<workdir>/<method>`` (a
finished run there is reused, so an interrupted table resumes, but only if it was run
with exactly this config: otherwise it is refused with the key that differs), then writes
``table.md``, ``table.json`` and ``table.png`` into the workdir (local or ``gs://``) and
prints the Markdown table. The family's table config names its columns (keys of the
runs' results.json) and the columns plotted as bars.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import os
import sys
from typing import Any, Sequence

from etils import epath

from pretrain_jax.train.config import load_method_config, parse_flags

TABLE_FILES = ("table.md", "table.json", "table.png")

# Headers of the columns the families define; other keys are shown under their own name.
COLUMN_HEADERS = {
    "method": "Method",
    "supervision": "Supervision",
    "pretrain_seconds": "Pretraining time",
    "linear_probe_test_accuracy": "Linear probe %",
    "knn_test_accuracy": "kNN %",
    "words_per_second": "Words/s",
    "ws353_spearman": "WS353 ρ",
    "analogy_semantic": "Analogy sem %",
    "analogy_syntactic": "Analogy syn %",
    "analogy_accuracy": "Analogy all %",
    "oov_handled": "OOV handled",
    "objective": "Pretraining objective",
    "lm_val_perplexity": "LM val perplexity",
    "rotten_tomatoes_test_accuracy": "Rotten Tomatoes test %",
    "fine_food_test_accuracy": "Fine food test %",
    "likelihood": "Likelihood",
    "test_nll": "Test NLL (nats)",
    "test_nll_std_error": "± s.e.",
    "published_nll": "Published NLL",
    "published_source": "Published in",
}

__all__ = ["run_table", "markdown_table", "format_seconds", "format_cell", "plot_table",
           "load_method_config", "ReusedRunMismatchError"]


class ReusedRunMismatchError(ValueError):
  """A finished run in the table's workdir was made with another config."""


def format_seconds(seconds: float) -> str:
  """``75.3`` -> ``"1m 15s"``; under a minute ``"12.3s"``."""
  if seconds < 60:
    return f"{seconds:.1f}s"
  minutes, rest = divmod(int(round(seconds)), 60)
  return f"{minutes}m {rest:02d}s"


def format_cell(key: str, value: Any) -> str:
  """One table cell: ``*_accuracy`` as a percentage, ``*_seconds`` as a duration.

  Args:
    key: the results.json key of the column.
    value: the row's value (None or absent is shown as ``—``).

  Returns:
    The cell's text.
  """
  if value is None:
    return "—"
  if isinstance(value, bool):
    return "yes" if value else "no"
  if key.endswith("accuracy") or key.startswith("analogy_"):
    return f"{100 * value:.1f}"
  if key.endswith("per_second"):
    return f"{value / 1000:.0f}k"
  if key.endswith("seconds"):
    return format_seconds(value)
  if isinstance(value, float):
    return f"{value:.4g}"
  return str(value)


def markdown_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
  """Rows of results.json dicts -> a Markdown table of ``columns`` (results keys)."""
  headers = [COLUMN_HEADERS.get(key, key) for key in columns]
  aligns = ["---" if key in ("method", "supervision", "likelihood", "published_source") else "---:"
            for key in columns]
  lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(aligns) + "|"]
  for row in rows:
    lines.append("| " + " | ".join(format_cell(key, row.get(key)) for key in columns) + " |")
  return "\n".join(lines) + "\n"


def plot_table(rows: list[dict[str, Any]], path: str | os.PathLike, title: str,
               columns: Sequence[str]) -> None:
  """Grouped horizontal bars of ``columns`` (accuracies, in %) per method, saved as PNG."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  names = [row["method"] for row in rows]
  y = np.arange(len(rows))
  height = 0.8 / max(1, len(columns))
  fig, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 2.0))
  values_seen = []
  for index, key in enumerate(columns):
    values = [100 * (row.get(key) or 0.0) for row in rows]
    values_seen += values
    offset = (index - (len(columns) - 1) / 2) * height
    ax.barh(y + offset, values, height=height, label=COLUMN_HEADERS.get(key, key).replace(" %", ""))
    if index == 0:
      for yi, value in zip(y, values):
        ax.text(value + 0.3, yi + offset, f"{value:.1f}", va="center", fontsize=8)
  ax.set_yticks(y, names)
  ax.invert_yaxis()
  ax.set_xlim(max(0.0, min(values_seen, default=0.0) - 10), 100)
  ax.set_xlabel("accuracy (%)")  # What is measured: the title (table config).
  ax.set_title(title)
  ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=len(columns), frameon=False)
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=120)
  plt.close(fig)
  epath.Path(path).write_bytes(buffer.getvalue())


def check_reusable(row: dict[str, Any], config: Any, run_dir: epath.Path) -> None:
  """Refuses a finished run made with another config than the table's.

  Raises:
    ReusedRunMismatchError: ``row`` (its results.json) records no config, or one that
      differs; the one-line message names the first differing key.
  """
  from pretrain_jax.train.checkpoint import config_difference, normalize_config  # pylint: disable=g-import-not-at-top

  if "config" not in row:
    raise ReusedRunMismatchError(
        f"{run_dir} holds a finished run that records no config (written by an older version); "
        f"delete {run_dir} or use a new --workdir.")
  diff = config_difference(row["config"], normalize_config(config), ignored=())
  if diff is not None:
    key, old, new = diff
    raise ReusedRunMismatchError(
        f"{run_dir} holds a finished run with {key}={old!r} but this table runs {key}={new!r}; "
        f"delete {run_dir} or use a new --workdir.")


def run_table(table_config, config_dir: str | os.PathLike, workdir: str | os.PathLike, *,
              progress: bool = True) -> list[dict[str, Any]]:
  """Runs (or reuses) every method's run and writes the three table files.

  Args:
    table_config: a table config (``configs/table.py`` or ``configs/<family>_table.py``):
      ``variant``, ``seed``, ``methods``, ``columns`` (results keys shown),
      ``plot_columns`` (accuracy keys drawn as bars), ``title``.
    config_dir: the directory holding ``<method>.py`` configs.
    workdir: the table's directory, local or ``gs://…``.
    progress: show each run's progress bar.

  Returns:
    The rows (results.json of each method, in table order).

  Raises:
    FileExistsError: ``workdir`` already holds a finished table (nothing is touched).
    ReusedRunMismatchError: a finished run in ``workdir`` was made with another config.
    As ``train_and_evaluate`` for each run.
  """
  from pretrain_jax.train.loop import RESULTS_FILE, as_path, train_and_evaluate  # pylint: disable=g-import-not-at-top

  workdir = as_path(workdir)
  if (workdir / "table.json").exists():
    raise FileExistsError(f"{workdir} already holds a finished table (table.json); choose a new --workdir.")
  methods = list(table_config.methods)
  optional = table_config.get("optional_methods", ())
  if optional and importlib.util.find_spec(table_config.optional_module) is None:
    print(f"skipping {', '.join(optional)}: they need {table_config.optional_module} "
          "(pip install -e '.[bench]').", flush=True)
    methods = [m for m in methods if m not in optional]
  if table_config.get("row_module"):  # Rows that are more than one run each (language table).
    rows = _run_module_rows(table_config, config_dir, workdir, methods, progress)
    _write_table(rows, table_config, workdir)
    return rows
  configs = {m: load_method_config(config_dir, m, table_config.variant, table_config.seed)
             for m in methods}
  # Every reusable run is checked before anything trains.
  finished = {}
  for method, config in configs.items():
    path = workdir / method / RESULTS_FILE
    if path.exists():
      finished[method] = json.loads(path.read_text())
      check_reusable(finished[method], config, workdir / method)
  rows = []
  for index, (method, config) in enumerate(configs.items(), 1):
    run_dir = workdir / method
    print(f"[{index}/{len(configs)}] {method} ({table_config.variant}) -> {run_dir}", flush=True)
    if method in finished:
      print(f"  reusing the finished run in {run_dir}", flush=True)
      rows.append(finished[method])
    else:
      rows.append(train_and_evaluate(config, run_dir, progress=progress))
    rows[-1] = dict(rows[-1], method=method)  # Rows are named by their config (gensim_cbow).
    shown = [f"{COLUMN_HEADERS.get(key, key)} {format_cell(key, rows[-1].get(key))}"
             for key in table_config.plot_columns]
    print("  " + "  ".join(shown), flush=True)
  _write_table(rows, table_config, workdir)
  return rows


def _run_module_rows(table_config, config_dir, workdir, names, progress) -> list[dict[str, Any]]:
  """Rows made by ``table_config.row_module``'s ``run_row(name, table_config, config_dir,
  workdir, progress=...)`` (each may pretrain and fine-tune several runs under ``workdir``)."""
  module = importlib.import_module(table_config.row_module)
  rows = []
  for index, name in enumerate(names, 1):
    print(f"[{index}/{len(names)}] {name} ({table_config.variant})", flush=True)
    rows.append(module.run_row(name, table_config, str(config_dir), workdir, progress=progress))
    shown = [f"{COLUMN_HEADERS.get(key, key)} {format_cell(key, rows[-1].get(key))}"
             for key in table_config.plot_columns]
    print("  " + "  ".join(shown), flush=True)
  return rows


def _write_table(rows: list[dict[str, Any]], table_config, workdir) -> None:
  """``table.md``, ``table.png`` and ``table.json`` (written last: it marks a finished table)."""
  from pretrain_jax.train.loop import to_json  # pylint: disable=g-import-not-at-top

  dataset = rows[0].get("dataset", "") if rows else ""
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "table.md").write_text(markdown_table(rows, table_config.columns))
  plot_table(rows, workdir / "table.png", f"{dataset}, {table_config.variant}: {table_config.title}",
             table_config.plot_columns)
  (workdir / "table.json").write_text(to_json(rows))


def main(argv: list[str]) -> None:
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.WARNING)  # Orbax logs every save step at INFO.
  from pretrain_jax.train import platform  # pylint: disable=g-import-not-at-top
  platform.configure_cpu()
  config_dir = os.path.dirname(config_flags.get_config_filename(flags.FLAGS["config"]))
  table_config = flags.FLAGS.config
  try:
    rows = run_table(table_config, config_dir, flags.FLAGS.workdir)
  except (ValueError, OSError, FloatingPointError) as error:
    sys.exit(f"error: {error}")
  print()
  print(markdown_table(rows, table_config.columns))


def _define_flags() -> None:
  """The program's absl flags; defined only when run as a program (no import side effects)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  config_flags.DEFINE_config_file(
      "config", None, "Table config: configs/table.py[:smoke|demo|full] or "
      "configs/<family>_table.py[:variant].", lock_config=True)
  flags.DEFINE_string("workdir", None, "Directory of the table and its runs (local or gs://).")
  flags.mark_flags_as_required(["config", "workdir"])


if __name__ == "__main__":
  from absl import app as _app  # pylint: disable=g-import-not-at-top
  _define_flags()
  _app.run(main, flags_parser=parse_flags)

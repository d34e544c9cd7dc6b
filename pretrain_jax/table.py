"""Runs every method of a table config and writes the comparison table.

  python -m pretrain_jax.table --config configs/table.py:demo --workdir runs/table_demo

For each method in ``config.methods`` it loads ``configs/<method>.py`` (beside the table
config) at ``config.variant``, runs ``train_and_evaluate`` in ``<workdir>/<method>`` (a
method whose results.json is already there is reused, so an interrupted table resumes),
then writes ``table.md``, ``table.json`` and ``table.png`` into the workdir and prints the
Markdown table: Method | Supervision | Pretraining time | Linear probe % | kNN %.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from pretrain_jax.train.config import parse_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Table config: configs/table.py[:smoke|demo|full].", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory of the table and its runs.")
flags.mark_flags_as_required(["config", "workdir"])

TABLE_FILES = ("table.md", "table.json", "table.png")


def load_method_config(config_dir: Path, method: str, variant: str, seed: int):
  """``configs/<method>.py``'s ``get_config(variant)`` with the table's seed.

  Raises:
    FileNotFoundError: no config file for ``method`` in ``config_dir``.
  """
  path = Path(config_dir) / f"{method}.py"
  if not path.exists():
    raise FileNotFoundError(f"No config for method {method!r}: expected {path}.")
  spec = importlib.util.spec_from_file_location(f"pretrain_jax_config_{method}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(variant)
  config.seed = seed
  return config


def markdown_table(rows: list[dict[str, Any]]) -> str:
  """Rows of results.json dicts -> the Markdown comparison table."""
  lines = ["| Method | Supervision | Pretraining time | Linear probe % | kNN % |",
           "|---|---|---:|---:|---:|"]
  for row in rows:
    lines.append(f"| {row['method']} | {row['supervision']} | {format_seconds(row['pretrain_seconds'])} "
                 f"| {100 * row['linear_probe_test_accuracy']:.1f} | {100 * row['knn_test_accuracy']:.1f} |")
  return "\n".join(lines) + "\n"


def format_seconds(seconds: float) -> str:
  """``75.3`` -> ``"1m 15s"``; under a minute ``"12.3s"``."""
  if seconds < 60:
    return f"{seconds:.1f}s"
  minutes, rest = divmod(int(round(seconds)), 60)
  return f"{minutes}m {rest:02d}s"


def plot_table(rows: list[dict[str, Any]], path: Path, title: str) -> None:
  """Grouped horizontal bars of linear-probe and kNN accuracy per method, saved as PNG."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  names = [row["method"] for row in rows]
  probe = [100 * row["linear_probe_test_accuracy"] for row in rows]
  knn = [100 * row["knn_test_accuracy"] for row in rows]
  y = np.arange(len(rows))
  fig, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 2.0))
  ax.barh(y - 0.2, probe, height=0.4, label="linear probe")
  ax.barh(y + 0.2, knn, height=0.4, label="kNN (cosine)")
  for yi, value in zip(y, probe):
    ax.text(value + 0.3, yi - 0.2, f"{value:.1f}", va="center", fontsize=8)
  ax.set_yticks(y, names)
  ax.invert_yaxis()
  low = min(probe + knn)
  ax.set_xlim(max(0.0, low - 10), 100)
  ax.set_xlabel("test accuracy (%)")
  ax.set_title(title)
  ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, frameon=False)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def run_table(table_config, config_dir: Path, workdir: Path) -> list[dict[str, Any]]:
  """Runs (or reuses) every method's run and writes the three table files.

  Args:
    table_config: ``configs/table.py``'s config.
    config_dir: the directory holding ``<method>.py`` configs.
    workdir: the table's directory.

  Returns:
    The rows (results.json of each method, in table order).

  Raises:
    FileExistsError: ``workdir`` already holds a finished table (nothing is touched).
  """
  from pretrain_jax.train.loop import RESULTS_FILE, train_and_evaluate  # pylint: disable=g-import-not-at-top

  workdir = Path(workdir)
  if (workdir / "table.json").exists():
    raise FileExistsError(f"{workdir} already holds a finished table (table.json); choose a new --workdir.")
  configs = {m: load_method_config(config_dir, m, table_config.variant, table_config.seed)
             for m in table_config.methods}
  rows = []
  for index, (method, config) in enumerate(configs.items(), 1):
    run_dir = workdir / method
    print(f"[{index}/{len(configs)}] {method} ({table_config.variant}) -> {run_dir}", flush=True)
    if (run_dir / RESULTS_FILE).exists():
      print(f"  reusing the finished run in {run_dir}", flush=True)
      rows.append(json.loads((run_dir / RESULTS_FILE).read_text()))
    else:
      rows.append(train_and_evaluate(config, run_dir))
    print(f"  linear probe {100 * rows[-1]['linear_probe_test_accuracy']:.1f}%  "
          f"kNN {100 * rows[-1]['knn_test_accuracy']:.1f}%", flush=True)
  dataset = rows[0]["dataset"] if rows else ""
  (workdir / "table.md").write_text(markdown_table(rows))
  plot_table(rows, workdir / "table.png", f"{dataset}, {table_config.variant}: frozen features")
  (workdir / "table.json").write_text(json.dumps(rows, indent=2) + "\n")
  return rows


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.WARNING)  # Orbax logs every save step at INFO.
  config_dir = Path(config_flags.get_config_filename(flags.FLAGS["config"])).parent
  try:
    rows = run_table(_CONFIG.value, config_dir, Path(_WORKDIR.value))
  except (ValueError, FileNotFoundError, FileExistsError, FloatingPointError) as error:
    sys.exit(f"error: {error}")
  print()
  print(markdown_table(rows))


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)

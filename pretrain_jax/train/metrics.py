"""Metrics as JSON lines in the workdir, consistent across resumes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jax


class NonFiniteLossError(FloatingPointError):
  """The loss became NaN or Inf; the last good checkpoint is left as it was."""


def check_finite(metrics: dict[str, Any], step: int, last_good_step: int | None) -> None:
  """Raises ``NonFiniteLossError`` (one line, with what to do) if any metric is NaN/Inf.

  Args:
    metrics: host scalars of one step.
    step: the step they belong to.
    last_good_step: the newest checkpoint on disk, named in the message.
  """
  bad = sorted(name for name, value in metrics.items() if not math.isfinite(float(value)))
  if bad:
    kept = (f"the checkpoint of step {last_good_step} is intact" if last_good_step is not None
            else "no checkpoint was written")
    raise NonFiniteLossError(
        f"{', '.join(bad)} became non-finite at step {step}; stopped, {kept}. "
        "Lower --config.optim.learning_rate or check the data, then re-run the same command.")


class MetricsWriter:
  """Appends one JSON object per logged step to ``metrics.jsonl``.

  On resume from step ``s``, lines of steps after ``s`` (logged by the interrupted run
  after its last checkpoint) are dropped, so the file reads as one uninterrupted run.

  Args:
    path: the ``.jsonl`` file.
    resume_step: the step the run starts from (0 for a fresh run).
  """

  def __init__(self, path: Path, resume_step: int):
    self.path = Path(path)
    # Only process 0 writes (the workdir is shared by all hosts of a multi-host run).
    self.enabled = jax.process_index() == 0
    kept = []
    if self.path.exists():
      for line in self.path.read_text().splitlines():
        if line.strip() and json.loads(line).get("step", 0) <= resume_step:
          kept.append(line)
    if self.enabled:
      self.path.write_text("".join(line + "\n" for line in kept))
    # The newest record kept (empty for a fresh run): where a resumed run picks up.
    self.last_record = json.loads(kept[-1]) if kept else {}
    self.previous_seconds = self.last_record.get("train_seconds", 0.0)

  def write(self, step: int, metrics: dict[str, Any]) -> None:
    """Appends ``{"step": step, **metrics}`` (values as Python floats)."""
    if not self.enabled:
      return
    record = {"step": int(step), **{k: float(v) for k, v in metrics.items()}}
    with self.path.open("a") as f:
      f.write(json.dumps(record) + "\n")


def read_metrics(path: Path) -> list[dict[str, float]]:
  """All records of a ``metrics.jsonl`` file, in order."""
  return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]

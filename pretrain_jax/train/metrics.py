"""Metrics as JSON lines in the workdir (local or ``gs://``), consistent across resumes."""

from __future__ import annotations

import json
import math
import os
from typing import Any

from etils import epath
import jax


class NonFiniteLossError(FloatingPointError):
  """The loss became NaN or Inf; the last good checkpoint is left as it was."""


def check_finite(metrics: dict[str, Any], step: int, last_good_step: int | None) -> None:
  """Raises ``NonFiniteLossError`` (one line, with what to do) if any metric is NaN/Inf.

  The advice works: after this stop the loop lets the ``optim`` section differ from the
  checkpoint's on resume (``loop.NONFINITE_FILE``), so the suggested re-run is accepted.

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
        f"{', '.join(bad)} became non-finite at step {step}; stopped, {kept}. Re-run the same "
        "command with a lower --config.optim.learning_rate (optim.* may change when resuming "
        "after this stop), or check the data.")


class MetricsWriter:
  """Writes one JSON object per logged step to ``metrics.jsonl``.

  On resume from step ``s``, lines of steps after ``s`` (logged by the interrupted run
  after its last checkpoint) are dropped, so the file reads as one uninterrupted run.
  Local files are appended to; remote ones (``gs://``, which has no append) are
  rewritten whole at each write.

  Args:
    path: the ``.jsonl`` file, a local path or URL.
    resume_step: the step the run starts from (0 for a fresh run).
  """

  def __init__(self, path: str | os.PathLike, resume_step: int):
    self.path = epath.Path(path)
    # Only process 0 writes (the workdir is shared by all hosts of a multi-host run).
    self.enabled = jax.process_index() == 0
    self._local = "://" not in os.fspath(self.path)
    self._lines = []
    if self.path.exists():
      for line in self.path.read_text().splitlines():
        if line.strip() and json.loads(line).get("step", 0) <= resume_step:
          self._lines.append(line)
    if self.enabled:
      self.path.write_text("".join(line + "\n" for line in self._lines))
    # The newest record kept (empty for a fresh run): where a resumed run picks up.
    self.last_record = json.loads(self._lines[-1]) if self._lines else {}
    self.previous_seconds = self.last_record.get("train_seconds", 0.0)

  def write(self, step: int, metrics: dict[str, Any]) -> None:
    """Adds ``{"step": step, **metrics}`` (values as Python floats; NaN/Inf as null)."""
    if not self.enabled:
      return
    values = {k: float(v) for k, v in metrics.items()}
    record = {"step": int(step), **{k: v if math.isfinite(v) else None for k, v in values.items()}}
    line = json.dumps(record, allow_nan=False)
    self._lines.append(line)
    if self._local:
      with self.path.open("a") as f:
        f.write(line + "\n")
    else:
      self.path.write_text("".join(line + "\n" for line in self._lines))


def read_metrics(path: str | os.PathLike) -> list[dict[str, float]]:
  """All records of a ``metrics.jsonl`` file, in order."""
  return [json.loads(line) for line in epath.Path(path).read_text().splitlines() if line.strip()]

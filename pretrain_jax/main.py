"""Entry point: flags -> config -> ``train.loop.train_and_evaluate(config, workdir)``.

  python -m pretrain_jax.main --config configs/contrastive.py:demo --workdir runs/contrastive \
      [--config.train.num_steps=1000] [--distributed]

Running the same command again resumes from the newest good checkpoint; a workdir
holding a finished run is refused at once (before JAX is imported). Every error a user
can cause ends in one line, ``error: …``, saying what to do.
"""

from __future__ import annotations

import json
import os
import sys

from pretrain_jax.train.config import parse_flags


def _workdir_is_finished(workdir: str) -> bool:
  """Whether ``workdir`` holds results.json, checked without importing JAX."""
  if "://" in workdir:
    from etils import epath  # pylint: disable=g-import-not-at-top
    return (epath.Path(workdir) / "results.json").exists()
  return os.path.isfile(os.path.join(os.path.expanduser(workdir), "results.json"))


def main(argv: list[str]) -> None:
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top

  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  workdir = flags.FLAGS.workdir
  if _workdir_is_finished(workdir):
    sys.exit(f"error: {workdir} already holds a finished run (results.json); choose a new "
             "--workdir (nothing was changed).")
  logging.set_verbosity(logging.WARNING)  # Orbax logs every save step at INFO.
  from pretrain_jax.train import platform  # pylint: disable=g-import-not-at-top
  platform.configure_cpu()
  import jax  # pylint: disable=g-import-not-at-top

  if flags.FLAGS.distributed:
    jax.distributed.initialize()
  from pretrain_jax.train.loop import train_and_evaluate  # pylint: disable=g-import-not-at-top

  try:
    results = train_and_evaluate(flags.FLAGS.config, workdir, progress=jax.process_index() == 0)
  except (ValueError, OSError, FloatingPointError) as error:
    sys.exit(f"error: {_one_line(error)}")
  if jax.process_index() == 0:
    print(json.dumps({k: v for k, v in results.items() if k != "config"}, indent=2, sort_keys=True))


def _one_line(error: BaseException) -> str:
  """The error's message on one line; an OSError without one names its path and cause."""
  text = str(error)
  if isinstance(error, OSError) and error.filename and error.strerror:
    text = f"{error.filename}: {error.strerror}"
  return " ".join(text.split())


def _define_flags() -> None:
  """The program's absl flags; defined only when run as a program (no import side effects)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  config_flags.DEFINE_config_file(
      "config", None, "Experiment config: configs/<method>.py[:smoke|demo|full].", lock_config=True)
  flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, results); local or gs://.")
  flags.DEFINE_bool("distributed", False,
                    "Call jax.distributed.initialize() first (multi-host runs; see launch/).")
  flags.mark_flags_as_required(["config", "workdir"])


if __name__ == "__main__":
  from absl import app as _app  # pylint: disable=g-import-not-at-top
  _define_flags()
  _app.run(main, flags_parser=parse_flags)

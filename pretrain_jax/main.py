"""Entry point: flags -> config -> ``train.loop.train_and_evaluate(config, workdir)``.

  python -m pretrain_jax.main --config configs/contrastive.py:demo --workdir runs/contrastive \
      [--config.train.num_steps=1000] [--distributed]

Running the same command again resumes from the latest checkpoint; a workdir holding a
finished run is refused.
"""

from __future__ import annotations

import json
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from pretrain_jax.train.config import parse_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config: configs/<method>.py[:smoke|demo|full].", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, results).")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Call jax.distributed.initialize() first (multi-host runs; see launch/).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.WARNING)  # Orbax logs every save step at INFO.
  import jax  # pylint: disable=g-import-not-at-top

  if _DISTRIBUTED.value:
    jax.distributed.initialize()
  from pretrain_jax.train.loop import train_and_evaluate  # pylint: disable=g-import-not-at-top

  try:
    results = train_and_evaluate(_CONFIG.value, _WORKDIR.value,
                                 progress=jax.process_index() == 0)
  except (ValueError, FileNotFoundError, FloatingPointError) as error:
    sys.exit(f"error: {error}")
  if jax.process_index() == 0:
    print(json.dumps(results, indent=2, sort_keys=True))


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)

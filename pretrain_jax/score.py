"""Likelihood of a text under a trained language model: ``python -m pretrain_jax.score``.

  python -m pretrain_jax.score --workdir runs/gpt --text-file notes.txt

Loads the newest good checkpoint of ``--workdir`` and its ``tokenizer.json``, encodes the
file's text (UTF-8) with the run's byte-level BPE (any character encodes, also ones never
seen in training: it falls back to its bytes), and prints the per-token NLL in nats, the
perplexity exp(NLL) and the bits per character (total NLL / ln 2 / characters), as JSON.
The text is cut into rows of the model's context as in training
(``methods.language_models.pack_sequences``): every token but the first is predicted once.
"""

from __future__ import annotations

import argparse
import json
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  """The command line of ``score`` (``--help`` lists it)."""
  parser = argparse.ArgumentParser(prog="python -m pretrain_jax.score",
                                   description="NLL, perplexity and bits/char of a text.")
  parser.add_argument("--workdir", required=True, help="a language model's run directory")
  parser.add_argument("--text-file", "--text_file", dest="text_file", required=True,
                      help="UTF-8 text to score")
  return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
  """Runs the command line; returns the exit status."""
  args = parse_args(argv)
  try:
    with open(args.text_file, encoding="utf-8") as f:
      text = f.read()
  except (OSError, UnicodeDecodeError) as error:
    print(f"error: cannot read --text-file {args.text_file} as UTF-8 text "
          f"({getattr(error, 'strerror', None) or error.__class__.__name__})", file=sys.stderr)
    return 1
  from pretrain_jax.methods import language_models  # pylint: disable=g-import-not-at-top
  from pretrain_jax.train.loop import restore_trained  # pylint: disable=g-import-not-at-top

  try:
    trained = restore_trained(args.workdir)
    scores = language_models.score_text(trained, text)
  except (ValueError, OSError) as error:
    print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
    return 1
  print(json.dumps(scores, indent=2, sort_keys=True))
  return 0


if __name__ == "__main__":
  from pretrain_jax.train import platform  # pylint: disable=g-import-not-at-top
  platform.configure_cpu(1)  # Before JAX starts; one device: one sequence at a time.
  sys.exit(main())

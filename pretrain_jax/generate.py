"""Continue a prompt with a trained GPT: ``python -m pretrain_jax.generate``.

  python -m pretrain_jax.generate --workdir runs/gpt --prompt "It is a truth universally" \
      --max_new_tokens 40 --temperature 0.8 --top_k 40 --seed 0

Loads the newest good checkpoint of ``--workdir`` and its ``tokenizer.json``
(``train.loop.restore_trained``), encodes the prompt, and samples ``--max_new_tokens``
tokens with a KV cache (``nn.decoding.generate``: one compiled loop per prompt length,
no recompilation per token). ``--temperature 0`` is greedy decoding. A prompt longer than
the model's context is truncated from the left (its last ``max_len − max_new_tokens``
tokens are kept) with a warning. Prints the prompt followed by the continuation; every
error a user can cause ends in one line, ``error: …``.
"""

from __future__ import annotations

import argparse
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  """The command line of ``generate`` (``--help`` lists it)."""
  parser = argparse.ArgumentParser(prog="python -m pretrain_jax.generate",
                                   description="Continue a prompt with a trained GPT.")
  parser.add_argument("--workdir", required=True, help="a GPT run's directory (checkpoints, tokenizer.json)")
  parser.add_argument("--prompt", required=True, help="text to continue")
  parser.add_argument("--max_new_tokens", "--max-new-tokens", type=int, default=40,
                      help="tokens to generate (default 40)")
  parser.add_argument("--temperature", type=float, default=0.8,
                      help="softmax temperature; 0 = greedy (default 0.8)")
  parser.add_argument("--top_k", "--top-k", type=int, default=40,
                      help="sample among the k most likely tokens; 0 = all (default 40)")
  parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
  return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
  """Runs the command line; returns the exit status."""
  args = parse_args(argv)
  from pretrain_jax.methods import gpt  # pylint: disable=g-import-not-at-top
  from pretrain_jax.train.loop import restore_trained  # pylint: disable=g-import-not-at-top

  try:
    trained = restore_trained(args.workdir)
    if trained.run.config.method != gpt.NAME:
      raise ValueError(f"{args.workdir} is a {trained.run.config.method} run; generate continues "
                       "prompts with a GPT run (configs/gpt.py).")
    text = gpt.generate_text(trained, args.prompt, max_new_tokens=args.max_new_tokens,
                             temperature=args.temperature, top_k=args.top_k, seed=args.seed)
  except (ValueError, OSError) as error:
    print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
    return 1
  print(args.prompt + text)
  return 0


if __name__ == "__main__":
  from pretrain_jax.train import platform  # pylint: disable=g-import-not-at-top
  platform.configure_cpu(1)  # Before JAX starts; one device: one sequence at a time.
  sys.exit(main())

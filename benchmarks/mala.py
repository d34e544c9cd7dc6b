"""MALA chain-steps per second: pretrain_jax.samplers.langevin vs BlackJAX, side by side.

Both kernels run C vmapped chains on the same correlated 2-D Gaussian, through the same
``chains.run_chain`` loop (``lax.scan``, positions recorded), jitted, with the
compilation and a warm-up call excluded; we report the median of interleaved repeats.

Usage:
  python benchmarks/mala.py            # 1,000 chains x 1,000 steps, 5 repeats
  python benchmarks/mala.py --quick    # tiny sizes, a few seconds

BlackJAX is an optional benchmark dependency (``pip install blackjax``).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import jax
import jax.numpy as jnp

from pretrain_jax.samplers import chains, langevin

MEAN = jnp.array([1.0, -2.0])
PRECISION = jnp.linalg.inv(jnp.array([[1.0, 0.8], [0.8, 1.0]]))


def logdensity_fn(x):
  centred = x - MEAN
  return -0.5 * centred @ PRECISION @ centred


def make_runner(init_fn, step_fn, num_chains, num_steps):
  """jit(vmap(run_chain)) over keys and initial positions; returns final positions."""

  def run(key, x0_CxD):
    states = jax.vmap(init_fn)(x0_CxD)
    keys = jax.random.split(key, num_chains)
    final, positions = jax.vmap(lambda k, s: chains.run_chain(k, step_fn, s, num_steps))(
        keys, states
    )
    return final.position, positions

  return jax.jit(run)


def time_runners(runners, x0, repeats):
  """Median wall time of each runner; repeats are interleaved so load drift is shared."""
  for run in runners:
    jax.block_until_ready(run(jax.random.key(0), x0))  # compile + warm-up
  times = [[] for _ in runners]
  for r in range(repeats):
    for run, run_times in zip(runners, times):
      start = time.perf_counter()
      jax.block_until_ready(run(jax.random.key(r + 1), x0))
      run_times.append(time.perf_counter() - start)
  return [statistics.median(run_times) for run_times in times]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test")
  parser.add_argument("--num_chains", type=int, default=1000)
  parser.add_argument("--num_steps", type=int, default=1000)
  parser.add_argument("--step_size", type=float, default=0.3)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  if args.quick:
    args.num_chains, args.num_steps, args.repeats = 16, 20, 2

  try:
    import blackjax
  except ImportError as err:
    raise SystemExit(
        "benchmarks/mala.py compares against BlackJAX, an optional benchmark "
        f"dependency: pip install blackjax ({err})."
    ) from None

  x0 = jax.random.normal(jax.random.key(42), (args.num_chains, 2))
  ours = make_runner(
      lambda x: langevin.init(x, logdensity_fn),
      functools.partial(langevin.mala_step, logdensity_fn=logdensity_fn, step_size=args.step_size),
      args.num_chains,
      args.num_steps,
  )
  theirs_algorithm = blackjax.mala(logdensity_fn, args.step_size)
  theirs = make_runner(
      theirs_algorithm.init, theirs_algorithm.step, args.num_chains, args.num_steps
  )

  chain_steps = args.num_chains * args.num_steps
  t_ours, t_theirs = time_runners([ours, theirs], x0, args.repeats)
  print(
      f"MALA on a 2-D Gaussian: {args.num_chains} chains x {args.num_steps} steps, "
      f"median of {args.repeats}, backend {jax.default_backend()}, "
      f"blackjax {blackjax.__version__}"
  )
  for name, seconds in (("pretrain_jax", t_ours), ("blackjax", t_theirs)):
    print(
        f"  {name:12}  {chain_steps / seconds:14,.0f} chain-steps/s  " f"({seconds * 1e3:.1f} ms)"
    )
  print(f"  ratio ours/blackjax: {t_theirs / t_ours:.2f}x")


if __name__ == "__main__":
  main()

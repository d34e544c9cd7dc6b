"""Gibbs sampling and RBM training throughput, measured side by side in one run.

1. Ising model on a 32 x 32 torus: sweeps per second (summed over C vmapped chains) of
   the generic ``systematic_sweep`` (site by site, dense coupling matrix) and of the
   checkerboard block sweep ``ising_checkerboard_sweep``; ratio checkerboard / generic.
2. Binary RBM, 784 visible x 500 hidden, batch 100: training samples per second of our
   jitted PCD-1 and CD-1 updates + SGD versus scikit-learn's ``BernoulliRBM.partial_fit``
   (which does PCD-1 with the same batch size) on the same binary data; ratio ours /
   scikit-learn (whose faster of default and single-threaded BLAS is the baseline).

All JAX functions are jitted; compilation and a warm-up call are excluded; we report the
median of interleaved repeats.

Usage:
  python benchmarks/gibbs.py            # full sizes
  python benchmarks/gibbs.py --quick    # tiny sizes, a few seconds
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from pretrain_jax.samplers import gibbs


def median_times(fns, repeats):
  """Median wall time of each zero-argument callable; repeats interleaved."""
  for fn in fns:
    fn()  # compile + warm-up
  times = [[] for _ in fns]
  for _ in range(repeats):
    for fn, fn_times in zip(fns, times):
      start = time.perf_counter()
      fn()
      fn_times.append(time.perf_counter() - start)
  return [statistics.median(t) for t in times]


def ising_benchmark(side, num_chains, num_sweeps, repeats, beta=0.44):
  coupling = beta * gibbs.ising_grid_coupling(side, side, periodic=True)
  conditional_logits_fn = gibbs.ising_conditional_logits_fn(
      coupling, np.zeros(side * side, np.float32)
  )
  x0 = jax.random.bernoulli(jax.random.key(0), 0.5, (num_chains, side, side)).astype(jnp.int32)

  @functools.partial(jax.jit, static_argnums=2)
  def generic(key, spins_CxHxW, num):
    def one_chain(chain_key, spins_HxW):
      def body(x, sweep_key):
        return gibbs.systematic_sweep(sweep_key, x, conditional_logits_fn), None

      x, _ = jax.lax.scan(body, spins_HxW.reshape(-1), jax.random.split(chain_key, num))
      return x.reshape(side, side)

    return jax.vmap(one_chain)(jax.random.split(key, num_chains), spins_CxHxW)

  @functools.partial(jax.jit, static_argnums=2)
  def checkerboard(key, spins_CxHxW, num):
    def body(x, sweep_key):
      return gibbs.ising_checkerboard_sweep(sweep_key, x, beta), None

    x, _ = jax.lax.scan(body, spins_CxHxW, jax.random.split(key, num))
    return x

  num_checkerboard = 10 * num_sweeps  # the fast kernel runs longer for a stable timing
  t_generic, t_checkerboard = median_times(
      [
          lambda: jax.block_until_ready(generic(jax.random.key(1), x0, num_sweeps)),
          lambda: jax.block_until_ready(checkerboard(jax.random.key(2), x0, num_checkerboard)),
      ],
      repeats,
  )
  rate_generic = num_chains * num_sweeps / t_generic
  rate_checkerboard = num_chains * num_checkerboard / t_checkerboard
  print(f"Ising {side}x{side} torus, beta={beta}, {num_chains} vmapped chains:")
  print(f"  systematic_sweep (site by site)  {rate_generic:12,.1f} sweeps/s")
  print(f"  ising_checkerboard_sweep         {rate_checkerboard:12,.1f} sweeps/s")
  print(f"  ratio checkerboard/generic: {rate_checkerboard / rate_generic:.1f}x")


def rbm_benchmark(num_visible, num_hidden, batch_size, num_batches, repeats, learning_rate=0.05):
  try:
    import threadpoolctl
    from sklearn.neural_network import BernoulliRBM
  except ImportError as err:
    raise SystemExit(f"the RBM comparison needs scikit-learn: pip install scikit-learn ({err})")

  rng = np.random.default_rng(0)
  # Real-ish binary data: each example turns on a random subset of a few prototype
  # "strokes", plus pixel noise (about 15% of pixels on, like binarised MNIST).
  prototypes = rng.uniform(size=(20, num_visible)) < 0.08
  choice = rng.uniform(size=(num_batches * batch_size, 20)) < 0.1
  data = (choice.astype(np.float32) @ prototypes.astype(np.float32)) > 0
  data = (data ^ (rng.uniform(size=data.shape) < 0.02)).astype(np.float32)
  batches = data.reshape(num_batches, batch_size, num_visible)
  batches_jax = jnp.asarray(batches)

  init_params = {
      "W": jnp.asarray(rng.normal(0, 0.01, (num_hidden, num_visible)), jnp.float32),
      "b": jnp.zeros(num_hidden, jnp.float32),
      "c": jnp.zeros(num_visible, jnp.float32),
  }

  @jax.jit
  def pcd_step(params, chain_v, key, batch):
    update, chain_v = gibbs.persistent_contrastive_divergence(key, params, batch, chain_v, 1)
    params = jax.tree_util.tree_map(lambda p, u: p + learning_rate * u, params, update)
    return params, chain_v

  @jax.jit
  def cd_step(params, key, batch):
    update = gibbs.contrastive_divergence(key, params, batch, 1)
    return jax.tree_util.tree_map(lambda p, u: p + learning_rate * u, params, update)

  def run_pcd():
    params, chain_v = init_params, batches_jax[0]
    key = jax.random.key(0)
    for i in range(num_batches):
      params, chain_v = pcd_step(params, chain_v, jax.random.fold_in(key, i), batches_jax[i])
    jax.block_until_ready(params)

  def run_cd():
    params = init_params
    key = jax.random.key(1)
    for i in range(num_batches):
      params = cd_step(params, jax.random.fold_in(key, i), batches_jax[i])
    jax.block_until_ready(params)

  def run_sklearn(blas_threads=None):
    with threadpoolctl.threadpool_limits(limits=blas_threads, user_api="blas"):
      model = BernoulliRBM(
          n_components=num_hidden,
          learning_rate=learning_rate,
          batch_size=batch_size,
          n_iter=1,
          random_state=0,
      )
      for i in range(num_batches):
        model.partial_fit(batches[i])

  # OpenBLAS's multi-threaded matmuls can be far slower than one thread on a busy
  # machine, so scikit-learn runs both ways and its faster setting is the baseline.
  t_pcd, t_cd, t_sklearn_default, t_sklearn_1 = median_times(
      [run_pcd, run_cd, run_sklearn, functools.partial(run_sklearn, 1)], repeats
  )
  t_sklearn = min(t_sklearn_default, t_sklearn_1)
  samples = num_batches * batch_size
  print(
      f"RBM {num_visible} visible x {num_hidden} hidden, batch {batch_size}, "
      f"{num_batches} updates (training examples/s):"
  )
  print(f"  pretrain_jax PCD-1 + SGD        {samples / t_pcd:12,.0f} samples/s")
  print(f"  pretrain_jax CD-1 + SGD         {samples / t_cd:12,.0f} samples/s")
  print(
      f"  sklearn BernoulliRBM.partial_fit {samples / t_sklearn:11,.0f} samples/s  (PCD-1; "
      f"default BLAS threads {samples / t_sklearn_default:,.0f}, 1 thread "
      f"{samples / t_sklearn_1:,.0f})"
  )
  print(
      f"  ratio ours PCD-1 / sklearn: {t_sklearn / t_pcd:.2f}x;  "
      f"ours CD-1 / sklearn: {t_sklearn / t_cd:.2f}x"
  )


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test")
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  print(f"backend {jax.default_backend()}, jax {jax.__version__}")
  if args.quick:
    ising_benchmark(side=8, num_chains=4, num_sweeps=5, repeats=2)
    rbm_benchmark(num_visible=64, num_hidden=32, batch_size=10, num_batches=5, repeats=2)
  else:
    ising_benchmark(side=32, num_chains=16, num_sweeps=20, repeats=args.repeats)
    rbm_benchmark(
        num_visible=784, num_hidden=500, batch_size=100, num_batches=50, repeats=args.repeats
    )


if __name__ == "__main__":
  main()

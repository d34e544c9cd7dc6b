"""Attention forward+backward: ours vs ``jax.nn.dot_product_attention``, side by side.

Both sides do identical work: project a batch of sequences M [B, T, J] with the same
W^Q, W^K [H, K, J] and W^V [H, I, J], attend, concatenate heads, and take
``jax.grad`` of the sum of the output with respect to M and the three projections.
"Ours" is ``jax.vmap(multi_head_self_attention)``; the reference feeds the same
projections, laid out [B, T, H, K], to ``jax.nn.dot_product_attention`` (XLA
implementation). Each side is jit-compiled, warmed up, then timed with
``block_until_ready``; repeats alternate between the two sides so background load hits
both alike, and the median is reported.

Usage:
  python benchmarks/attention.py            # T = 128 ... 2048
  python benchmarks/attention.py --quick    # tiny sizes, a few seconds
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

from pretrain_jax.nn import attention


def make_ours(is_causal):
  """Returns the sum of vmapped multi_head_self_attention outputs as a function of inputs."""

  def loss(m_BxTxJ, w_query, w_key, w_value):
    # Built inside the traced function, as a model would, not captured as a constant.
    mask = attention.causal_mask(m_BxTxJ.shape[1]) if is_causal else None
    attend = lambda m_TxJ: attention.multi_head_self_attention(
        m_TxJ, w_query, w_key, w_value, mask=mask)
    return jnp.sum(jax.vmap(attend)(m_BxTxJ))

  return loss


def make_reference(is_causal):
  """Returns the same loss computed with jax.nn.dot_product_attention."""

  def loss(m_BxTxJ, w_query, w_key, w_value):
    q_BxTxHxK = jnp.einsum("hkj,btj->bthk", w_query, m_BxTxJ)
    k_BxTxHxK = jnp.einsum("hkj,btj->bthk", w_key, m_BxTxJ)
    v_BxTxHxI = jnp.einsum("hij,btj->bthi", w_value, m_BxTxJ)
    out_BxTxHxI = jax.nn.dot_product_attention(
        q_BxTxHxK, k_BxTxHxK, v_BxTxHxI, is_causal=is_causal, implementation="xla")
    return jnp.sum(out_BxTxHxI)

  return loss


def time_pair(fns, args, repeats):
  """Median wall time in ms of each jitted fn, warm-up excluded, repeats interleaved."""
  compiled = [jax.jit(jax.grad(fn, argnums=(0, 1, 2, 3))) for fn in fns]
  for fn in compiled:
    jax.block_until_ready(fn(*args))  # compile + warm-up
    jax.block_until_ready(fn(*args))
  times = [[] for _ in fns]
  for _ in range(repeats):
    for fn, acc in zip(compiled, times):
      start = time.perf_counter()
      jax.block_until_ready(fn(*args))
      acc.append(1e3 * (time.perf_counter() - start))
  return [statistics.median(t) for t in times]


def check_same(fns, args):
  """Both sides must compute the same gradients, or the timing comparison is moot."""
  grads = [jax.jit(jax.grad(fn, argnums=(0, 1, 2, 3)))(*args) for fn in fns]
  for ours, ref in zip(*grads):
    err = float(jnp.max(jnp.abs(ours - ref)) / (jnp.max(jnp.abs(ref)) + 1e-12))
    if err > 1e-3:
      raise AssertionError(f"gradients differ (relative max error {err:.2e})")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="tiny sizes, finishes in seconds")
  parser.add_argument("--batch", type=int, default=2)
  parser.add_argument("--heads", type=int, default=4)
  parser.add_argument("--head_dim", type=int, default=32)
  parser.add_argument("--repeats", type=int, default=7)
  flags = parser.parse_args()
  lengths = (16, 32) if flags.quick else (128, 256, 512, 1024, 2048)
  repeats = 3 if flags.quick else flags.repeats
  batch, heads, head_dim = flags.batch, flags.heads, flags.head_dim
  model_dim = heads * head_dim
  print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; forward+backward "
        f"(grad of sum of output w.r.t. M, W^Q, W^K, W^V), float32, "
        f"B={batch} H={heads} K=I={head_dim} J={model_dim}, median of {repeats}")
  print(f"{'T':>5} | {'mask':>6} | {'ours ms':>9} | {'dot_product_attention ms':>24} | ratio")
  keys = jax.random.split(jax.random.key(0), 4)
  w_query, w_key, w_value = (
      jax.random.normal(k, (heads, head_dim, model_dim)) / model_dim**0.5 for k in keys[1:])
  for num_positions in lengths:
    m = jax.random.normal(keys[0], (batch, num_positions, model_dim))
    args = (m, w_query, w_key, w_value)
    for is_causal in (False, True):
      fns = (make_ours(is_causal), make_reference(is_causal))
      check_same(fns, args)
      ours_ms, ref_ms = time_pair(fns, args, repeats)
      print(f"{num_positions:>5} | {'causal' if is_causal else 'none':>6} | {ours_ms:9.2f} |"
            f" {ref_ms:24.2f} | {ours_ms / ref_ms:.2f}", flush=True)


if __name__ == "__main__":
  main()

"""GPT train step: ms/step, tokens/s, model TFLOP/s and MFU; attention ours vs dot_product_attention.

  python benchmarks/lm.py                        # demo and full (configs/gpt.py), GPT-2 small
  python benchmarks/lm.py --quick                # tiny shapes, seconds
  python benchmarks/lm.py --dtype bfloat16       # matmuls in bf16, float32 master weights
  python benchmarks/lm.py --peak_tflops 989      # MFU against this peak per device
  python benchmarks/lm.py --shapes gpt2_small --gpt2_batch 16 --rounds 5

Like every benchmark here it first applies ``pretrain_jax.train.platform.configure_cpu()``
(XLA flags and one CPU device per core; a no-op on GPU/TPU hosts).

What is timed. For each shape, the project's real jitted step,
``loop.Pretrainer(config).jit_train_step()`` (forward, backward, global-norm clipping and
AdamW, the state donated, the batch split over the ``("data",)`` mesh of every device), on
one seeded random batch ``{"tokens": int32 [B, T + 1], "weights": float32 [B, T]}`` (all
weights 1). ``Pretrainer`` gets a ``LanguageModelInfo`` built here with the config's
``tokenizer.vocab_size`` and no tokenizer (``gpt.make_model`` reads only ``vocab_size``):
no corpus is read and no BPE trained. Each step is compiled ahead of time and run once or
twice untimed (twice when the first run takes under 5 s), then the shapes take turns:
each of ``--rounds`` rounds (default 5; 3 on CPU) runs a few steps of every shape (about
``--round_seconds`` each, from the warm-up's time, at least one), each step timed on its
own until its metrics are ready, so that other jobs on the machine slow every shape
alike. The table reports medians.

Shapes (B batch rows, T context, L layers, H heads, D width, V vocabulary):

* ``demo``, ``full``: ``configs/gpt.py`` as they are (demo: L2 H4 D64 MLP256 T64 V2048
  B32; full: L6 H8 D256 MLP1024 T128 V8192 B64).
* ``gpt2_small``: GPT-2 small's shape (Radford et al. 2019: L12 H12 D768 MLP3072 T1024
  V50257) in the project's model, so 163M parameters, not GPT-2's 124M: the output
  projection is not tied to the input embedding (+38.6M) and positions are fixed
  sinusoids (GPT-2 learns 0.8M). B = ``--gpt2_batch``, default 16 on an accelerator
  (float32 activations of the unfused T x T attention, ~3 GB per row) and one row per
  device on CPU, where a step of two rows took 39 s on a 2-core machine (and 10 GB of
  memory): there it is timed over 3 single steps after one warm-up step (``--rounds`` to
  change).
* ``--quick``: ``smoke`` (L2 H2 D32 MLP64 T32 V512 B16) and ``tiny`` (L2 H4 D64 MLP256 T64
  V1024 B8), few rounds.

Model FLOPs. The PaLM convention (Chowdhery et al. 2022, "PaLM", Appendix B): per training
token 6N + 12·L·H·Q·T (Q = D / H the head dim), where 6N is a forward (2N) and backward
(4N) pass through the parameters' matmuls and 12·L·H·Q·T the attention scores and
value-weighted sums over all T positions (no halving for the causal mask, as PaLM; Kaplan
et al. 2020, Table 1, count 6N with N non-embedding and only the scores). Here N is every
parameter except the input embedding table (a gather, no matmul): the blocks, the final
LayerNorm and the output projection D x V. Model FLOPs per step = tokens per step x that,
tokens = B·T (every position is trained). They leave out the optimiser, softmax, norms and
any recomputation; XLA's own count of the compiled step (``cost_analysis`` of one
device's program x devices: it includes the optimiser) is printed under the table.

MFU = model FLOPs per step / median step time / peak, peak = per-device peak x devices.
On a GPU the peak is the dense datasheet number of its ``device_kind`` (``GPU_PEAK_TFLOPS``:
bfloat16, and float32 matmuls as JAX runs them by default there, on TF32 tensor cores),
unless ``--peak_tflops`` (per device) says otherwise. On CPU, or a device not in the table,
the peak is measured in the same run and dtype: the best of a few 2048 x 2048 x 2048
matmuls (one per device, all devices at once, or one on a single device, whichever is
faster), reported as "measured matmul peak". That is a practical ceiling, not a datasheet.

``--dtype bfloat16``. The model has no dtype option, and this script may not change it, so
the bfloat16 run uses a ``Pretrainer`` whose step wraps ``gpt.loss_fn``: inside the loss
every parameter is cast to bfloat16 (the float32 params stay the optimiser's master
copy; gradients flow back through the cast) and the ``dtype`` of every ``nnx.Linear``,
``nnx.LayerNorm`` and ``nnx.Embed`` is set to bfloat16, so their inputs are cast too and
the projections, the MLP and the logits run in bfloat16. The residual stream stays float32
(the fixed float32 positional encodings promote the sum), the attention softmax and the
loss are float32 (``nn.attention`` and ``gpt.loss_fn`` do so). The step is otherwise the
same jitted step with the same shardings. XLA:CPU may emulate bfloat16 matmuls, so
on CPU this measures little; its matmul peak is measured in bfloat16 too.

Attention. At each shape's (B, T, H, K) and dtype, the forward and backward pass (the
gradient of the sum of the output with respect to the input M [B, T, D] and W^Q, W^K, W^V)
of the model's attention, ``jax.vmap`` of ``nn.attention.multi_head_self_attention`` with
``causal_mask(T)``, against the same projections fed to ``jax.nn.dot_product_attention``
(``is_causal=True``, ``--dpa_implementation``: default JAX's own choice, XLA in this
version; ``cudnn`` on a GPU with bfloat16). Both are jitted, their gradients checked equal,
and timed alternately; the column is the ratio of medians ours / dpa (above 1:
``dot_product_attention`` is faster, a case for routing the model through it).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pretrain_jax.train import platform  # noqa: E402  pylint: disable=g-import-not-at-top

from flax import nnx  # noqa: E402  pylint: disable=g-import-not-at-top
import jax  # noqa: E402  pylint: disable=g-import-not-at-top
import jax.numpy as jnp  # noqa: E402  pylint: disable=g-import-not-at-top
import numpy as np  # noqa: E402  pylint: disable=g-import-not-at-top

from pretrain_jax.methods import gpt  # noqa: E402  pylint: disable=g-import-not-at-top
from pretrain_jax.methods.language_models import LanguageModelInfo  # noqa: E402  pylint: disable=g-import-not-at-top
from pretrain_jax.nn import attention  # noqa: E402  pylint: disable=g-import-not-at-top
from pretrain_jax.train import loop, sharding  # noqa: E402  pylint: disable=g-import-not-at-top
from pretrain_jax.train.config import load_method_config  # noqa: E402  pylint: disable=g-import-not-at-top
from pretrain_jax.train.steps import make_train_step  # noqa: E402  pylint: disable=g-import-not-at-top

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs")

# Dense (no sparsity) peak TFLOP/s per device from NVIDIA's datasheets, first matching
# substring of ``jax.devices()[0].device_kind`` wins. "float32" is TF32: JAX's default
# precision for float32 matmuls on these GPUs.
GPU_PEAK_TFLOPS = (
    ("H100 PCIe", {"bfloat16": 756.0, "float32": 378.0}),
    ("H100", {"bfloat16": 989.0, "float32": 494.5}),  # SXM ("NVIDIA H100 80GB HBM3").
    ("H200", {"bfloat16": 989.0, "float32": 494.5}),
    ("A100", {"bfloat16": 312.0, "float32": 156.0}),
)

# GPT-2 small (Radford et al. 2019, Table 2; the 124M model of the released code).
GPT2_SMALL = {"num_layers": 12, "num_heads": 12, "model_dim": 768, "mlp_dim": 3072,
              "max_len": 1024, "vocab_size": 50257}

# The --quick shapes: configs/gpt.py's smoke, and a slightly wider one.
TINY = {"num_layers": 2, "num_heads": 4, "model_dim": 64, "mlp_dim": 256, "max_len": 64,
        "vocab_size": 1024, "batch_size": 8}


def shape_config(name: str, gpt2_batch: int):
  """The locked GPT config of a benchmark shape (module docstring).

  Args:
    name: ``smoke``, ``demo``, ``full`` (``configs/gpt.py`` variants), ``tiny`` or
      ``gpt2_small``.
    gpt2_batch: rows per step of ``gpt2_small``.

  Returns:
    A locked ``ml_collections.ConfigDict`` (existing fields overridden, none added).

  Raises:
    ValueError: an unknown shape name.
  """
  if name in ("smoke", "demo", "full"):
    return load_method_config(CONFIG_DIR, "gpt", name, seed=0)
  if name not in ("tiny", "gpt2_small"):
    raise ValueError(f"unknown shape {name!r}: use smoke, tiny, demo, full or gpt2_small.")
  shape = dict(TINY) if name == "tiny" else dict(GPT2_SMALL, batch_size=gpt2_batch)
  config = load_method_config(CONFIG_DIR, "gpt", "smoke" if name == "tiny" else "full", seed=0)
  for field in ("num_layers", "num_heads", "model_dim", "mlp_dim", "max_len"):
    config.model[field] = shape[field]
  config.tokenizer.vocab_size = shape["vocab_size"]
  config.train.batch_size = shape["batch_size"]
  return config


def benchmark_info(vocab_size: int) -> LanguageModelInfo:
  """A ``LanguageModelInfo`` of ``vocab_size`` ids without tokenizer or corpus (all that
  ``gpt.make_model`` reads is ``vocab_size``)."""
  return LanguageModelInfo(text=None, tokenizer=None, vocab_size=vocab_size, num_tokens={},
                           num_characters={}, fingerprint=f"benchmark-vocab-{vocab_size}",
                           workdir_files={})


def bfloat16_loss_fn(model: nnx.Module, batch, key, config):
  """``gpt.loss_fn`` with the model's matmuls in bfloat16 (module docstring, ``--dtype``).

  Args:
    model: the merged float32 ``Transformer`` (a copy made inside the step: changed here).
    batch: ``{"tokens": int32 [B, T + 1], "weights": float32 [B, T]}``.
    key: unused by ``gpt.loss_fn``.
    config: the run's config.

  Returns:
    ``gpt.loss_fn``'s (loss in nats per token, float32; metrics).
  """
  params = nnx.state(model, nnx.Param)
  nnx.update(model, jax.tree.map(lambda p: p.astype(jnp.bfloat16), params))
  model.set_attributes(nnx.Linear, nnx.LayerNorm, nnx.Embed, dtype=jnp.bfloat16)
  return gpt.loss_fn(model, batch, key, config)


class BFloat16Pretrainer(loop.Pretrainer):
  """``loop.Pretrainer`` whose gradient step differentiates ``bfloat16_loss_fn``."""

  def train_step_fn(self):
    return make_train_step(self.graphdef, bfloat16_loss_fn, self.optimizer, self.config)


def count_params(params) -> tuple[int, int]:
  """(all parameters, parameters in matmuls = all but the input embedding table)."""
  total = sum(int(np.size(leaf)) for leaf in jax.tree.leaves(params))
  embedding = sum(int(np.size(leaf)) for leaf in jax.tree.leaves(params["embed"]))
  return total, total - embedding


def model_flops_per_token(config, matmul_params: int) -> float:
  """PaLM's model FLOPs per trained token, 6N + 12·L·H·Q·T (Chowdhery et al. 2022, App. B).

  Args:
    config: the GPT config (``model.num_layers`` L, ``num_heads`` H, ``model_dim`` D = H·Q,
      ``max_len`` T).
    matmul_params: N, the parameters taking part in matmuls.

  Returns:
    FLOPs (multiply and add counted separately) of the forward and backward pass per token.
  """
  model = config.model
  head_dim = model.model_dim // model.num_heads
  return 6.0 * matmul_params + 12.0 * model.num_layers * model.num_heads * head_dim * model.max_len


class TrainStepBench:
  """One shape's jitted train step, state and batch, ready to be stepped and timed.

  Attributes:
    name: the shape's name.
    config: its GPT config.
    params, matmul_params: parameter counts (``count_params``).
    tokens: B·T trained tokens per step.
    model_flops: model FLOPs per step (``model_flops_per_token`` x tokens).
    xla_flops: XLA's cost-analysis FLOPs of the compiled step, all devices (NaN if
      unavailable).
    times: seconds of every timed step.
  """

  def __init__(self, name: str, config, dtype: str):
    self.name, self.config = name, config
    pretrainer = BFloat16Pretrainer if dtype == "bfloat16" else loop.Pretrainer
    run = pretrainer(config, benchmark_info(config.tokenizer.vocab_size))
    batch_size, num_positions = config.train.batch_size, config.model.max_len
    sharding.check_batch_size(batch_size, f"batch of {name}")
    rng = np.random.default_rng(0)
    host = {"tokens": rng.integers(0, config.tokenizer.vocab_size, (batch_size, num_positions + 1),
                                   dtype=np.int32),
            "weights": np.ones((batch_size, num_positions), np.float32)}
    self.batch = sharding.global_batch(host, run.mesh)
    self.state = run.init_state()
    self.params, self.matmul_params = count_params(self.state.params)
    self.tokens = batch_size * num_positions
    self.model_flops = self.tokens * model_flops_per_token(config, self.matmul_params)
    self.step = run.jit_train_step().lower(self.state, self.batch).compile()
    analysis = self.step.cost_analysis()
    if isinstance(analysis, (list, tuple)):
      analysis = analysis[0] if analysis else None
    # Under SPMD the compiled program is one device's share: scale it to the whole step.
    per_device = float(analysis.get("flops", float("nan"))) if analysis else float("nan")
    self.xla_flops = per_device * run.mesh.size
    self.times: list[float] = []

  def run_step(self) -> float:
    """One step until its metrics are ready; returns its wall seconds."""
    started = time.perf_counter()
    self.state, metrics = self.step(self.state, self.batch)
    jax.block_until_ready(metrics)
    return time.perf_counter() - started

  def warm_up(self) -> float:
    """One untimed step (it may still allocate), a second one if the first took under 5 s;
    returns the last one's seconds."""
    seconds = self.run_step()
    return self.run_step() if seconds < 5.0 else seconds


def time_train_steps(benches: list[TrainStepBench], rounds: int, round_seconds: float,
                     max_steps: int) -> None:
  """Interleaved timing: each round runs every shape's steps in turn, each timed alone.

  Args:
    benches: the shapes, warmed up or not.
    rounds: rounds (each shape's steps per round are fixed from its warm-up).
    round_seconds: wall seconds each shape aims to spend per round.
    max_steps: most steps of one shape per round.
  """
  steps = {}
  for bench in benches:
    seconds = bench.warm_up()
    steps[bench.name] = max(1, min(max_steps, round(round_seconds / max(seconds, 1e-6))))
  for _ in range(rounds):
    for bench in benches:
      bench.times.extend(bench.run_step() for _ in range(steps[bench.name]))


def attention_pair(dpa_implementation: str | None):
  """(ours, dpa): the sum of causal self-attention outputs as functions of (M, W^Q, W^K, W^V).

  Args:
    dpa_implementation: ``implementation`` of ``jax.nn.dot_product_attention`` (None: JAX's
      choice).

  Returns:
    Two functions ``(m [B, T, D], w_query [H, K, D], w_key [H, K, D], w_value [H, K, D]) ->
    float32 scalar``: the model's ``vmap(multi_head_self_attention)`` with
    ``causal_mask(T)``, and the same projections through ``dot_product_attention``.
  """

  def ours(m_BxTxD, w_query, w_key, w_value):
    mask_TxT = attention.causal_mask(m_BxTxD.shape[1])  # Built under the trace, as the model does.
    heads_BxTxHK = jax.vmap(lambda m_TxD: attention.multi_head_self_attention(
        m_TxD, w_query, w_key, w_value, mask=mask_TxT))(m_BxTxD)
    return jnp.sum(heads_BxTxHK.astype(jnp.float32))

  def dpa(m_BxTxD, w_query, w_key, w_value):
    query_BxTxHxK = jnp.einsum("hkd,btd->bthk", w_query, m_BxTxD)
    key_BxTxHxK = jnp.einsum("hkd,btd->bthk", w_key, m_BxTxD)
    value_BxTxHxK = jnp.einsum("hkd,btd->bthk", w_value, m_BxTxD)
    out_BxTxHxK = jax.nn.dot_product_attention(query_BxTxHxK, key_BxTxHxK, value_BxTxHxK,
                                               is_causal=True, implementation=dpa_implementation)
    return jnp.sum(out_BxTxHxK.astype(jnp.float32))

  return ours, dpa


def compare_attention(config, dtype: str, dpa_implementation: str | None, rounds: int,
                      round_seconds: float, max_steps: int) -> dict:
  """Forward+backward of ours vs ``dot_product_attention`` at a config's (B, T, H, K).

  Args:
    config: a GPT config (``train.batch_size`` B, ``model.max_len`` T, ``num_heads`` H,
      ``model_dim`` D, K = D / H).
    dtype: ``float32`` or ``bfloat16``, of M and the projections.
    dpa_implementation: as ``attention_pair``.
    rounds, round_seconds, max_steps: as ``time_train_steps``.

  Returns:
    ``{"ours_ms", "dpa_ms", "ratio": ours / dpa, "error": relative max gradient difference}``.

  Raises:
    AssertionError: the two gradients differ (then the timing would compare different maths).
  """
  model = config.model
  batch_size, num_positions = config.train.batch_size, model.max_len
  head_dim = model.model_dim // model.num_heads
  keys = jax.random.split(jax.random.key(0), 4)
  m = jax.random.normal(keys[0], (batch_size, num_positions, model.model_dim)).astype(dtype)
  weights = [(jax.random.normal(k, (model.num_heads, head_dim, model.model_dim))
              / math.sqrt(model.model_dim)).astype(dtype) for k in keys[1:]]
  args = (m, *weights)
  fns = [jax.jit(jax.grad(fn, argnums=(0, 1, 2, 3)))
         for fn in attention_pair(dpa_implementation)]
  grads = [fn(*args) for fn in fns]
  error = max(float(jnp.max(jnp.abs(ours.astype(jnp.float32) - ref.astype(jnp.float32)))
                    / (jnp.max(jnp.abs(ref.astype(jnp.float32))) + 1e-12))
              for ours, ref in zip(*grads))
  tolerance = 3e-2 if dtype == "bfloat16" else 1e-3
  assert error <= tolerance, f"attention gradients differ (relative max error {error:.2e})"

  def run(fn) -> float:
    started = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - started

  steps = max(1, min(max_steps, round(round_seconds / max(max(run(fn) for fn in fns), 1e-6))))
  times = [[], []]
  for _ in range(rounds):
    for fn, acc in zip(fns, times):
      acc.extend(run(fn) for _ in range(steps))
  ours_ms, dpa_ms = (1e3 * statistics.median(t) for t in times)
  return {"ours_ms": ours_ms, "dpa_ms": dpa_ms, "ratio": ours_ms / dpa_ms, "error": error}


def measure_matmul_peak(dtype: str, size: int, repeats: int = 5) -> float:
  """Best matmul rate of this machine, FLOP/s: ``size``³ matmuls in ``dtype``.

  Two layouts, the faster reported: one matmul per device on all devices at once (as the
  data-parallel step uses them), and one matmul on a single device (XLA:CPU threads one
  operation over every core).

  Args:
    dtype: ``float32`` or ``bfloat16``.
    size: n of the n x n x n matmuls.
    repeats: timed calls per layout (best taken), after a warm-up call.

  Returns:
    2·n³·(matmuls per call) / best seconds.
  """
  mesh = sharding.make_mesh()
  count = jax.device_count()
  keys = jax.random.split(jax.random.key(1), 2)
  best = 0.0
  for layout_count, layout_sharding in ((count, sharding.batch_sharding(mesh)),
                                        (1, jax.devices()[0])):
    a, b = (jax.device_put(jax.random.normal(k, (layout_count, size, size)).astype(dtype),
                           layout_sharding) for k in keys)
    matmul = jax.jit(lambda x, y: jnp.einsum("nij,njk->nik", x, y))
    jax.block_until_ready(matmul(a, b))
    for _ in range(repeats):
      started = time.perf_counter()
      jax.block_until_ready(matmul(a, b))
      best = max(best, 2.0 * size**3 * layout_count / (time.perf_counter() - started))
  return best


def device_peak(dtype: str, peak_tflops: float | None, matmul_size: int) -> tuple[float, str]:
  """The machine's peak FLOP/s for MFU (all devices) and how it was obtained.

  Args:
    dtype: the step's matmul dtype.
    peak_tflops: per-device override in TFLOP/s, or None.
    matmul_size: n of the measured matmuls (CPU or unknown device).

  Returns:
    (FLOP/s of all devices together, a description for the header).
  """
  count = jax.device_count()
  kind = jax.devices()[0].device_kind
  if peak_tflops:
    return peak_tflops * 1e12 * count, f"{peak_tflops:g} TFLOP/s per device (--peak_tflops)"
  if jax.default_backend() == "gpu":
    for substring, peaks in GPU_PEAK_TFLOPS:
      if substring in kind:
        return (peaks[dtype] * 1e12 * count,
                f"{peaks[dtype]:g} TFLOP/s per device ({kind} datasheet, dense {dtype}"
                f"{' as TF32' if dtype == 'float32' else ''})")
  flops = measure_matmul_peak(dtype, matmul_size)
  return flops, (f"measured matmul peak {flops / 1e12:.3f} TFLOP/s over {count} device(s) "
                 f"(best {matmul_size}^3 {dtype} matmul in this run, not a datasheet)")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="tiny shapes, few rounds: seconds")
  parser.add_argument("--shapes", default=None,
                      help="comma-separated: smoke, tiny, demo, full, gpt2_small "
                           "(default demo,full,gpt2_small; --quick smoke,tiny)")
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                      help="matmul dtype of the model and the attention comparison")
  parser.add_argument("--gpt2_batch", type=int, default=None,
                      help="rows per step of gpt2_small (default 16, one per device on CPU)")
  parser.add_argument("--peak_tflops", type=float, default=None,
                      help="peak TFLOP/s per device for MFU (default: GPU table or measured)")
  parser.add_argument("--dpa_implementation", default=None, choices=(None, "xla", "cudnn"),
                      help="implementation of jax.nn.dot_product_attention (default JAX's)")
  parser.add_argument("--rounds", type=int, default=None,
                      help="interleaved rounds (default 5, on CPU 3, quick 2)")
  parser.add_argument("--round_seconds", type=float, default=None,
                      help="seconds per shape per round (default 1, quick 0.2)")
  parser.add_argument("--max_steps", type=int, default=10, help="most steps per shape per round")
  args = parser.parse_args()
  settings = platform.configure_cpu()  # Before anything initialises JAX's backends.

  on_cpu = jax.default_backend() == "cpu"
  rounds = args.rounds or (2 if args.quick else 3 if on_cpu else 5)
  round_seconds = args.round_seconds or (0.2 if args.quick else 1.0)
  names = (args.shapes.split(",") if args.shapes
           else ["smoke", "tiny"] if args.quick else ["demo", "full", "gpt2_small"])
  gpt2_batch = args.gpt2_batch or (jax.device_count() if on_cpu else 16)
  print(f"jax {jax.__version__} (jaxlib {jax.lib.__version__}); {jax.device_count()} x "
        f"{jax.devices()[0].device_kind} ({jax.default_backend()}); dtype {args.dtype}"
        f"{' (bf16 matmuls, float32 master weights, residual stream and softmax)' if args.dtype == 'bfloat16' else ''}")
  if on_cpu:
    print(f"CPU defaults {settings}; {len(os.sched_getaffinity(0))} cores, load average "
          f"{os.getloadavg()[0]:.1f} (other jobs on this CPU make every number noisy)")
    if args.dtype == "bfloat16":
      print("note: XLA:CPU may emulate bfloat16 matmuls; the peak below is measured in bfloat16 too")
  peak, peak_text = device_peak(args.dtype, args.peak_tflops, 1024 if args.quick else 2048)
  print(f"peak: {peak_text}")
  print("model FLOPs per token = 6N + 12·L·H·Q·T (PaLM, Chowdhery et al. 2022, App. B), "
        "N = params in matmuls (all but the input embedding); tokens/step = B·T")
  print(f"dot_product_attention implementation: {args.dpa_implementation or 'JAX default (XLA)'}; "
        f"{rounds} interleaved rounds, medians", flush=True)

  benches = [TrainStepBench(name, shape_config(name, gpt2_batch), args.dtype) for name in names]
  time_train_steps(benches, rounds, round_seconds, args.max_steps)
  rows = []
  for bench in benches:
    seconds = statistics.median(bench.times)
    rows.append((bench, seconds, len(bench.times)))
  config_and_names = [(bench.name, bench.config) for bench in benches]
  del benches  # Frees the train states before the attention comparison.

  attention_results = {name: compare_attention(config, args.dtype, args.dpa_implementation,
                                               rounds, round_seconds, args.max_steps)
                       for name, config in config_and_names}
  print()
  print("| shape | params (N) | batch×T | ms/step | tokens/s | model TFLOP/s | MFU | attention ours/dpa |")
  print("|---|---|---|---|---|---|---|---|")
  for bench, seconds, _ in rows:
    config, result = bench.config, attention_results[bench.name]
    achieved = bench.model_flops / seconds
    print(f"| {bench.name} | {bench.params / 1e6:.2f}M ({bench.matmul_params / 1e6:.2f}M) | "
          f"{config.train.batch_size}×{config.model.max_len} | {1e3 * seconds:.1f} | "
          f"{bench.tokens / seconds:,.0f} | {achieved / 1e12:.4f} | {100 * achieved / peak:.1f}% | "
          f"{result['ratio']:.2f} |")
  print()
  for bench, seconds, count in rows:
    model, result = bench.config.model, attention_results[bench.name]
    print(f"{bench.name}: L{model.num_layers} H{model.num_heads} D{model.model_dim} "
          f"MLP{model.mlp_dim} T{model.max_len} V{bench.config.tokenizer.vocab_size}; {count} "
          f"steps timed; model {bench.model_flops / 1e9:.2f} GFLOP/step, XLA cost analysis "
          f"{bench.xla_flops / 1e9:.2f} GFLOP/step ({bench.xla_flops / bench.model_flops:.2f}x); "
          f"attention fwd+bwd ours {result['ours_ms']:.2f} ms, dpa {result['dpa_ms']:.2f} ms "
          f"(gradients agree to {result['error']:.1e})")
  if on_cpu:
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
  print("attention ours/dpa above 1: jax.nn.dot_product_attention is faster at that shape")


if __name__ == "__main__":
  main()

"""Throughput of the encoder's train step: images/s and achieved GFLOP/s.

  python benchmarks/train_step.py            # demo and full configs, every method's step
  python benchmarks/train_step.py --quick    # smoke sizes, seconds

For each (method, variant) it builds the real jitted train step of ``pretrain_jax.train``
on the variant's width and batch size, on every local device, and reports the median
wall time of several steps after a warm-up, the input images per second, and the FLOPs
per step from XLA's cost analysis divided by that time. FLOPs are XLA's count of the
compiled step (forward, backward and optimiser update); the rate is what this machine
achieved, not a peak.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import jax
import numpy as np

from pretrain_jax.table import load_method_config
from pretrain_jax.train import loop, sharding

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def measure(method: str, variant: str, repeats: int) -> dict:
  """Median step time of ``method`` at ``variant``'s width and batch size."""
  config = load_method_config(CONFIGS, method, variant, seed=0)
  run = loop.Pretrainer(config)
  batch_size = config.train.batch_size
  rng = np.random.default_rng(0)
  height, width, channels = run.info.image_shape
  host = {"image": rng.integers(0, 256, (batch_size, height, width, channels), dtype=np.uint8),
          "label": rng.integers(0, run.info.num_classes, (batch_size,), dtype=np.int32)}
  batch = sharding.global_batch(host, run.mesh)
  step = run.jit_train_step()
  state = run.init_state()
  compiled = step.lower(state, batch).compile()
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0]
  flops = float(analysis.get("flops", float("nan"))) if analysis else float("nan")
  for _ in range(2):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  seconds = statistics.median(times)
  return {"method": method, "variant": variant, "width": config.model.width, "batch": batch_size,
          "ms": 1e3 * seconds, "images_per_s": batch_size / seconds, "gflops": flops / seconds / 1e9}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="smoke sizes, few repeats")
  parser.add_argument("--methods", default="supervised,contrastive,rotation,autoencoder")
  args = parser.parse_args()
  variants = ("smoke",) if args.quick else ("demo", "full")
  repeats = 3 if args.quick else 10
  print(f"devices: {jax.device_count()} x {jax.devices()[0].device_kind}")
  print(f"{'method':<12} {'variant':<7} {'width':>5} {'batch':>5} {'ms/step':>9} {'images/s':>9} {'GFLOP/s':>8}")
  for variant in variants:
    for method in args.methods.split(","):
      r = measure(method, variant, repeats)
      print(f"{r['method']:<12} {r['variant']:<7} {r['width']:>5} {r['batch']:>5} {r['ms']:>9.1f} "
            f"{r['images_per_s']:>9.0f} {r['gflops']:>8.1f}", flush=True)


if __name__ == "__main__":
  main()

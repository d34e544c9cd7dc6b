"""Faster defaults for XLA on CPU: YNNPACK fusions off where they are slow, one device per core.

``configure_cpu()`` must run before JAX initialises its backends (before the first
``jax.devices()``, array creation or jit call); importing this module changes nothing.
On a CPU-only host it sets, unless the user already chose:

* ``XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-reduce,-individual_convolution``
  (only when ``XLA_FLAGS`` is unset). XLA's CPU backend hands stand-alone convolutions and
  reductions to YNNPACK; for the small-channel 3x3 convolutions of ``nn.encoder.ConvEncoder``
  its weight-gradient convolutions ran at 7-26 GFLOP/s and the GroupNorm statistics
  (reductions) were split from their producers. Without these two fusion types the
  convolutions go to XLA's own (Eigen) kernels and the reductions fuse with their
  elementwise neighbours. The flag is experimental: before it is set, a subprocess
  ``python -c 'import jax; jax.devices()'`` checks that this jaxlib accepts it (XLA aborts
  the whole process on an unknown flag). The verdict is cached per jaxlib version in
  ``~/.cache/pretrain_jax/xla_flag_probe.json``; a rejected flag gives a one-line warning
  and is left out (so does a probe that cannot start JAX at all, which is not cached).
* ``jax.config.update("jax_num_cpu_devices", n)`` with ``n`` one device per core usable
  by this process, rounded down to a power of two and at most 8 (only when neither
  ``JAX_NUM_CPU_DEVICES``, ``jax_num_cpu_devices`` nor ``--xla_force_host_platform_device_count``
  already chose a count). One XLA CPU device runs one jitted program at a time, with
  parallelism inside each operation only; the ``("data",)`` mesh of ``train.sharding``
  then runs the batch's shards concurrently, one per core. The power of two keeps every
  batch size of ``configs/`` (64, 128, 512, and ``eval.batch_size`` 1000 = 8 x 125)
  divisible by the device count, as ``sharding.check_batch_size`` requires.

On a GPU or TPU host (``JAX_PLATFORMS`` names a platform other than ``cpu``, or it is unset
and a GPU/TPU plugin is installed) nothing is changed. The math is unchanged: the flag
only picks kernels, and data parallelism gives the same step up to float32 rounding.

Opting out: set ``XLA_FLAGS`` yourself (even to an empty string: the flag is then not
added), ``JAX_NUM_CPU_DEVICES=1`` for one device, or ``PRETRAIN_JAX_CPU_DEFAULTS=0`` to
skip ``configure_cpu`` altogether.

Measured on a 2-core AMD EPYC (jax 0.10.2, torch 2.13.0 with 2 threads; ``benchmarks/
train_step.py --vs-torch``): without these settings the supervised demo step ran at 0.62x
the speed of the same step in PyTorch; with them, on a quiet machine, 1.02x (supervised)
and 0.97x (contrastive) at width 16 / batch 128 and 0.98x / 0.99x at width 64 / batch 512.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
from pathlib import Path
import subprocess
import sys
from typing import Sequence
import warnings

# The XLA flags ``configure_cpu`` adds when the user has not set XLA_FLAGS.
FAST_CPU_XLA_FLAGS: tuple[str, ...] = (
    "--xla_cpu_experimental_ynn_fusion_type=-reduce,-individual_convolution",
)

# Opt-out switch: "0" (or "false", "no", "off") and configure_cpu changes nothing.
OPT_OUT_ENV = "PRETRAIN_JAX_CPU_DEFAULTS"

# Most CPU devices configure_cpu creates: eval.batch_size = 1000 must split evenly.
MAX_CPU_DEVICES = 8

# Seconds allowed for the subprocess that checks a flag (it imports jax and lists devices).
_PROBE_TIMEOUT_S = 120


def default_cache_path() -> Path:
  """``~/.cache/pretrain_jax/xla_flag_probe.json``: where flag probes' verdicts are kept."""
  return Path(os.path.expanduser("~")) / ".cache" / "pretrain_jax" / "xla_flag_probe.json"


def configure_cpu(num_devices: int | None = None, *,
                  xla_flags: Sequence[str] = FAST_CPU_XLA_FLAGS,
                  cache_path: str | os.PathLike | None = None) -> dict:
  """Applies the fast CPU defaults (module docstring) if this is a CPU host and JAX is fresh.

  Call it first thing in a program or benchmark, before anything touches a JAX device.

  Args:
    num_devices: CPU devices to create; default one per usable core, rounded down to a
      power of two, at most ``MAX_CPU_DEVICES``, unless ``JAX_NUM_CPU_DEVICES``,
      ``jax_num_cpu_devices`` or ``--xla_force_host_platform_device_count`` in
      ``XLA_FLAGS`` already set a count. An explicit value always wins.
    xla_flags: the flags to add to an unset ``XLA_FLAGS``, each checked once in a
      subprocess (injectable for tests).
    cache_path: JSON file of probe verdicts; default ``default_cache_path()``.

  Returns:
    What this call changed: ``{"xla_flags": the XLA_FLAGS value set or None,
    "num_cpu_devices": the device count set or None, "skipped": why nothing was
    changed, or None}``.

  Raises:
    ValueError: ``num_devices`` below 1.
  """
  if num_devices is not None and num_devices < 1:
    raise ValueError(f"num_devices={num_devices} must be >= 1 (or None for one per core).")
  changed = {"xla_flags": None, "num_cpu_devices": None, "skipped": None}
  if os.environ.get(OPT_OUT_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
    changed["skipped"] = f"{OPT_OUT_ENV}=0"
    return changed
  accelerator = _accelerator_reason()
  if accelerator:
    changed["skipped"] = accelerator
    return changed

  import jax  # pylint: disable=g-import-not-at-top  # Importing jax creates no backend.
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top

  if xla_bridge.backends_are_initialized():
    warnings.warn("pretrain_jax.train.platform.configure_cpu() was called after JAX "
                  "initialised its backends: CPU defaults not applied (call it first).",
                  stacklevel=2)
    changed["skipped"] = "backends already initialised"
    return changed

  if "XLA_FLAGS" not in os.environ and xla_flags:
    accepted = _accepted_flags(tuple(xla_flags), Path(cache_path) if cache_path else default_cache_path())
    if accepted:
      os.environ["XLA_FLAGS"] = " ".join(accepted)
      changed["xla_flags"] = os.environ["XLA_FLAGS"]

  count = num_devices
  if count is None and not _device_count_chosen(jax):
    count = _default_device_count()
  if count is not None:
    jax.config.update("jax_num_cpu_devices", count)
    changed["num_cpu_devices"] = count
  return changed


def _accelerator_reason() -> str | None:
  """Why this looks like a GPU/TPU host (JAX_PLATFORMS or an installed plugin), or None."""
  platforms = os.environ.get("JAX_PLATFORMS", "").strip()
  if platforms:
    others = [p.strip() for p in platforms.split(",") if p.strip() and p.strip() != "cpu"]
    return f"JAX_PLATFORMS={platforms}" if others else None
  plugins = {entry.name for entry in importlib.metadata.entry_points(group="jax_plugins")}
  try:
    namespace = importlib.util.find_spec("jax_plugins")
  except (ImportError, ValueError):
    namespace = None
  if namespace is not None and namespace.submodule_search_locations:
    import pkgutil  # pylint: disable=g-import-not-at-top
    plugins.update(m.name for m in pkgutil.iter_modules(namespace.submodule_search_locations))
  if importlib.util.find_spec("libtpu") is not None:
    plugins.add("libtpu")
  return f"accelerator plugin installed ({', '.join(sorted(plugins))})" if plugins else None


def _device_count_chosen(jax_module) -> bool:
  """True if the user already picked a CPU device count (env var, jax config or XLA_FLAGS)."""
  if os.environ.get("JAX_NUM_CPU_DEVICES", "").strip():
    return True
  if jax_module.config.jax_num_cpu_devices != -1:
    return True
  return "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")


def _default_device_count() -> int:
  """Usable cores, rounded down to a power of two, capped at ``MAX_CPU_DEVICES``."""
  try:
    cores = len(os.sched_getaffinity(0))
  except AttributeError:  # Not on Linux.
    cores = os.cpu_count() or 1
  count = 1
  while count * 2 <= min(cores, MAX_CPU_DEVICES):
    count *= 2
  return count


def _jaxlib_version() -> str:
  try:
    return importlib.metadata.version("jaxlib")
  except importlib.metadata.PackageNotFoundError:
    return "unknown"


def _probe(flags: str) -> bool | None:
  """Whether a fresh Python starts JAX's CPU backend with ``XLA_FLAGS=flags``.

  Returns:
    True or False; None when the answer is not the flags' doing (the probe timed out, or
    could not start, or fails even with no flags).
  """
  def starts(xla_flags: str) -> bool | None:
    env = dict(os.environ, XLA_FLAGS=xla_flags, JAX_PLATFORMS="cpu")
    try:
      result = subprocess.run([sys.executable, "-c", "import jax; jax.devices()"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=_PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
      return None
    return result.returncode == 0

  verdict = starts(flags)
  if verdict is False and not starts(""):
    return None  # JAX does not start here at all: say nothing about the flags.
  return verdict


def _accepted_flags(flags: tuple[str, ...], cache_path: Path) -> list[str]:
  """The subset of ``flags`` this jaxlib accepts; probes uncached ones, warns for the rest.

  Only definite verdicts are cached; an inconclusive probe leaves the flag out this time
  and is retried by the next process.
  """
  key = _jaxlib_version()
  try:
    cache = json.loads(cache_path.read_text())
    if not isinstance(cache, dict):
      cache = {}
  except (OSError, ValueError):
    cache = {}
  verdicts = cache.setdefault(key, {})
  if not isinstance(verdicts, dict):
    verdicts = cache[key] = {}
  unknown = [flag for flag in flags if flag not in verdicts]
  if unknown:
    if len(unknown) > 1 and _probe(" ".join(unknown)):
      found = {flag: True for flag in unknown}
    else:
      found = {flag: _probe(flag) for flag in unknown}
    verdicts.update({flag: verdict for flag, verdict in found.items() if verdict is not None})
    try:
      cache_path.parent.mkdir(parents=True, exist_ok=True)
      tmp = cache_path.with_name(f"{cache_path.name}.{os.getpid()}.tmp")
      tmp.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
      os.replace(tmp, cache_path)  # Atomic: concurrent test workers may probe together.
    except OSError:
      pass  # A read-only home only costs a probe next time.
  for flag in flags:
    if flag not in verdicts:
      warnings.warn(f"could not check {flag} with jaxlib {key} (JAX failed to start in a "
                    "subprocess); running without it this time.", stacklevel=3)
    elif not verdicts[flag]:
      warnings.warn(f"XLA (jaxlib {key}) rejects {flag}; running without it (slower convolutions "
                    "on CPU).", stacklevel=3)
  return [flag for flag in flags if verdicts.get(flag)]

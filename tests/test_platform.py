"""pretrain_jax.train.platform: the CPU defaults, each checked in a fresh Python process.

``configure_cpu`` only acts before JAX creates its backends, and the test session's JAX is
long initialised (tests/conftest.py), so every case runs in a subprocess with a clean
environment and its own probe cache.
"""

import json
import math
import os
import subprocess
import sys

import pytest

from pretrain_jax.train import platform

FAST_FLAG = platform.FAST_CPU_XLA_FLAGS[0]
BOGUS_FLAG = "--xla_cpu_pretrain_jax_no_such_flag=true"

# The variables configure_cpu reads; each case starts without them unless it sets them.
_CONTROLLED = ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES", "JAX_PLATFORMS", platform.OPT_OUT_ENV)


@pytest.fixture(scope="module")
def cache_path(tmp_path_factory):
  """One probe cache for the module: the real flag is probed once, not per test."""
  return tmp_path_factory.mktemp("platform") / "xla_flag_probe.json"


def run_fresh(code_kwargs: str, cache_path, env: dict[str, str] | None = None,
              before: str = "", after: str = "") -> tuple[dict, str]:
  """Runs ``configure_cpu(<code_kwargs>)`` in a new interpreter; returns (report, stderr).

  The report holds the call's return value, ``XLA_FLAGS`` afterwards and the number of
  JAX devices (initialising the CPU backend), unless ``after`` replaces the device query.
  """
  child_env = {k: v for k, v in os.environ.items() if k not in _CONTROLLED}
  child_env["JAX_PLATFORMS"] = "cpu"  # A CPU host even where an accelerator plugin is installed.
  child_env.update(env or {})
  script = "\n".join([
      "import json, os",
      before,
      "from pretrain_jax.train import platform",
      f"changed = platform.configure_cpu({code_kwargs}{', ' if code_kwargs else ''}"
      f"cache_path={str(cache_path)!r})",
      "import jax",
      after or "devices = jax.device_count()",
      "print(json.dumps({'changed': changed, 'xla_flags': os.environ.get('XLA_FLAGS'), "
      "'devices': devices}))",
  ])
  result = subprocess.run([sys.executable, "-c", script], env=child_env, capture_output=True,
                          text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def expected_device_count() -> int:
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  return 2 ** int(math.log2(min(cores, platform.MAX_CPU_DEVICES)))


def test_import_has_no_side_effects():
  env = {k: v for k, v in os.environ.items() if k not in _CONTROLLED}
  script = ("import os\nfrom pretrain_jax.train import platform\n"
            "from jax._src import xla_bridge\n"
            "assert 'XLA_FLAGS' not in os.environ\n"
            "assert not xla_bridge.backends_are_initialized()\n"
            "import jax\nassert jax.config.jax_num_cpu_devices == -1\n")
  result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
  assert result.returncode == 0, result.stderr[-3000:]


def test_sets_flags_and_one_device_per_core(cache_path):
  report, _ = run_fresh("", cache_path)
  assert report["xla_flags"] == FAST_FLAG
  assert report["changed"] == {"xla_flags": FAST_FLAG, "num_cpu_devices": expected_device_count(),
                               "skipped": None}
  assert report["devices"] == expected_device_count()
  verdicts = json.loads(cache_path.read_text())
  assert verdicts[platform._jaxlib_version()] == {FAST_FLAG: True}


def test_user_xla_flags_are_left_alone(cache_path):
  user_flags = "--xla_cpu_enable_fast_math=false"
  report, _ = run_fresh("", cache_path, env={"XLA_FLAGS": user_flags})
  assert report["xla_flags"] == user_flags
  assert report["changed"]["xla_flags"] is None


def test_empty_xla_flags_opts_out_of_the_flags_only(cache_path):
  report, _ = run_fresh("", cache_path, env={"XLA_FLAGS": ""})
  assert report["xla_flags"] == ""
  assert report["changed"]["num_cpu_devices"] == expected_device_count()


def test_user_device_count_is_left_alone(cache_path):
  report, _ = run_fresh("", cache_path, env={"JAX_NUM_CPU_DEVICES": "3"})
  assert report["changed"]["num_cpu_devices"] is None
  assert report["devices"] == 3
  report, _ = run_fresh("", cache_path, env={"XLA_FLAGS": "--xla_force_host_platform_device_count=3"})
  assert report["changed"] == {"xla_flags": None, "num_cpu_devices": None, "skipped": None}
  assert report["devices"] == 3


def test_explicit_device_count_wins(cache_path):
  report, _ = run_fresh("num_devices=3", cache_path, env={"JAX_NUM_CPU_DEVICES": "2"})
  assert report["changed"]["num_cpu_devices"] == 3
  assert report["devices"] == 3


def test_opt_out_changes_nothing(cache_path):
  report, _ = run_fresh("", cache_path, env={platform.OPT_OUT_ENV: "0"})
  assert report["xla_flags"] is None
  assert report["changed"] == {"xla_flags": None, "num_cpu_devices": None,
                               "skipped": f"{platform.OPT_OUT_ENV}=0"}
  assert report["devices"] == 1


def test_accelerator_host_is_left_alone(cache_path):
  # No backend is initialised here (there is no GPU): only the decision is checked.
  report, _ = run_fresh("", cache_path, env={"JAX_PLATFORMS": "cuda"}, after="devices = None")
  assert report["xla_flags"] is None
  assert report["changed"] == {"xla_flags": None, "num_cpu_devices": None,
                               "skipped": "JAX_PLATFORMS=cuda"}


def test_unknown_flag_degrades_to_a_warning(tmp_path):
  cache = tmp_path / "probe.json"
  flags = (BOGUS_FLAG, FAST_FLAG)
  report, stderr = run_fresh(f"xla_flags={flags!r}", cache)
  # The process survived, ran without the rejected flag and kept the accepted one.
  assert report["xla_flags"] == FAST_FLAG
  assert report["devices"] == expected_device_count()
  warning_lines = [line for line in stderr.splitlines() if "rejects" in line]
  assert len(warning_lines) == 1 and BOGUS_FLAG in warning_lines[0], stderr[-3000:]
  assert json.loads(cache.read_text())[platform._jaxlib_version()] == {BOGUS_FLAG: False,
                                                                      FAST_FLAG: True}
  # The cached verdict is reused: the flag is still left out, with the same warning.
  report, stderr = run_fresh(f"xla_flags={(BOGUS_FLAG,)!r}", cache)
  assert report["xla_flags"] is None
  assert "rejects" in stderr


def test_a_probe_that_cannot_start_jax_is_not_cached(tmp_path):
  # The probes import a stand-in `jax` that exits: no verdict about the flag is possible.
  fake = tmp_path / "fake"
  fake.mkdir()
  (fake / "jax.py").write_text("raise SystemExit(3)\n")
  cache = tmp_path / "probe.json"
  report, stderr = run_fresh("", cache, before=f"import jax; os.environ['PYTHONPATH'] = {str(fake)!r}")
  assert report["xla_flags"] is None
  assert report["devices"] == expected_device_count()
  assert "could not check" in stderr
  assert json.loads(cache.read_text())[platform._jaxlib_version()] == {}


def test_after_backend_initialisation_it_only_warns(cache_path):
  report, stderr = run_fresh("", cache_path, before="import jax; jax.devices()")
  assert report["changed"]["skipped"] == "backends already initialised"
  assert report["xla_flags"] is None
  assert report["devices"] == 1
  assert "after JAX initialised its backends" in stderr


def test_rejects_a_non_positive_device_count():
  with pytest.raises(ValueError, match="num_devices"):
    platform.configure_cpu(num_devices=0)

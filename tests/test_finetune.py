"""Fine-tuning on the spine: pretrained weights loaded exactly, a planted signal learned,
frozen backbones stay frozen, resume, the validation-then-test protocol, refusals."""

import contextlib
import json

from flax import nnx
import jax
import numpy as np
import pytest

from pretrain_jax.data import datasets, sentiment
from pretrain_jax.eval import finetune as finetune_eval
from pretrain_jax.methods import finetune
from pretrain_jax.train import loop
from pretrain_jax.train.checkpoint import CheckpointMismatchError

from test_train import smoke_config

pytestmark = pytest.mark.xdist_group("gpt")  # Shares conftest's gpt_smoke_run with test_gpt.

_GOOD, _BAD = ("wonderful", "superb", "delightful"), ("dreadful", "awful", "tedious")


def _planted_split(rng, count):
  """Reviews whose label is planted: a positive or a negative word among neutral text."""
  texts, labels = [], []
  for _ in range(count):
    label = int(rng.integers(2))
    word = rng.choice(_GOOD if label else _BAD)
    filler = " ".join(rng.choice(["the", "film", "was", "quite", "a", "story", "of", "her"], 4))
    texts.append(f"{filler} {word} {filler}.")
    labels.append(label)
  return sentiment.LabelledTexts(texts, np.asarray(labels, np.int32))


@contextlib.contextmanager
def _planted_task():
  rng = np.random.default_rng(0)
  data = {"train": _planted_split(rng, 320), "val": _planted_split(rng, 96),
          "test": _planted_split(rng, 80)}
  real = datasets.load_for_config

  def load(config):
    if config.data.name == "rotten_tomatoes":
      return config.data.name, data
    return real(config)

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(datasets, "load_for_config", load)
    yield data


def _config(pretrained_workdir, **overrides):
  settings = dict(finetune__pretrained_workdir=str(pretrained_workdir), data__train_limit=0,
                  train__num_epochs=3, optim__learning_rate=3e-3)
  return smoke_config("finetune", **dict(settings, **overrides))


def _backbone(state):
  return jax.device_get(nnx.to_pure_dict(state.params)["backbone"])


def test_warm_start_loads_the_pretrained_weights_exactly(gpt_smoke_run):
  workdir, _ = gpt_smoke_run
  pretrained = jax.device_get(nnx.to_pure_dict(loop.restore_trained(workdir).state.params))
  with _planted_task() as data:
    config = _config(workdir)
    info, _ = finetune.prepare_data(config, None, data)
    state = loop.Pretrainer(config, info, num_steps=10).init_state()
    jax.tree.map(np.testing.assert_array_equal, _backbone(state), pretrained)
    config = _config(workdir, finetune__from_scratch=True)
    info, _ = finetune.prepare_data(config, None, data)
    scratch = _backbone(loop.Pretrainer(config, info, num_steps=10).init_state())
  assert not np.allclose(scratch["embed"]["embedding"], pretrained["embed"]["embedding"])


def test_planted_signal_is_learned_and_resume_gives_identical_numbers(gpt_smoke_run, tmp_path,
                                                                      monkeypatch):
  workdir, _ = gpt_smoke_run
  with _planted_task():
    straight = loop.train_and_evaluate(_config(workdir), tmp_path / "straight", progress=False)
    assert straight["val_accuracy"] >= 0.9, straight["val_accuracy"]
    real_host_batch = loop.iterators.host_batch

    def dies_at_45(split, seed, step, batch_size):
      if step == 45:
        raise RuntimeError("killed at step 45")
      return real_host_batch(split, seed, step, batch_size)

    monkeypatch.setattr(loop.iterators, "host_batch", dies_at_45)
    with pytest.raises(RuntimeError, match="killed"):
      loop.train_and_evaluate(_config(workdir), tmp_path / "killed", progress=False)
    monkeypatch.setattr(loop.iterators, "host_batch", real_host_batch)
    resumed = loop.train_and_evaluate(_config(workdir), tmp_path / "killed", progress=False)
  for key in ("final_loss", "val_accuracy", "num_steps"):
    assert resumed[key] == straight[key], key


def test_head_only_keeps_the_backbone_exactly(gpt_smoke_run, tmp_path):
  workdir, _ = gpt_smoke_run
  pretrained = jax.device_get(nnx.to_pure_dict(loop.restore_trained(workdir).state.params))
  with _planted_task():
    loop.train_and_evaluate(_config(workdir, finetune__head_only=True, train__num_epochs=1),
                            tmp_path / "head", progress=False)
  trained = loop.restore_trained(tmp_path / "head")
  jax.tree.map(np.testing.assert_array_equal, _backbone(trained.state), pretrained)


def test_selection_tests_only_the_pair_chosen_on_validation(gpt_smoke_run, tmp_path, monkeypatch):
  workdir, _ = gpt_smoke_run
  scored = []
  real_accuracy = finetune.accuracy

  def counting(trained, split, config):
    scored.append(len(split["label"]))
    return real_accuracy(trained, split, config)

  monkeypatch.setattr(finetune, "accuracy", counting)
  with _planted_task() as data:
    config = _config(workdir, train__num_epochs=2)
    results = finetune_eval.select_and_test(config, tmp_path / "sel", learning_rates=(1e-5, 3e-3),
                                            progress=False)
  assert len(results["grid"]) == 4  # 2 rates x 2 epochs, each scored on validation.
  best = max(results["grid"], key=lambda row: row["val_accuracy"])
  assert (results["learning_rate"], results["val_accuracy"]) == (best["learning_rate"],
                                                                 best["val_accuracy"])
  assert results["learning_rate"] == 3e-3 and results["test_accuracy"] >= 0.9
  # Validation (96 texts) scored by each run's evaluate and at every grid point; test (80) once.
  assert scored.count(len(data["val"].labels)) == 2 + 4 and scored.count(len(data["test"].labels)) == 1
  assert json.loads((tmp_path / "sel" / "results.json").read_text())["epochs"] == results["epochs"]
  with pytest.raises(loop.FinishedRunError):
    finetune_eval.select_and_test(config, tmp_path / "sel", progress=False)


def test_bad_pretrained_workdirs_are_refused_in_one_line(gpt_smoke_run, tmp_path):
  workdir, _ = gpt_smoke_run
  with _planted_task():
    with pytest.raises(FileNotFoundError, match="holds no checkpoints") as error:
      loop.train_and_evaluate(_config(tmp_path / "nothing"), tmp_path / "a", progress=False)
    assert "\n" not in str(error.value) and not (tmp_path / "a").exists()
    # A run fine-tuned from one pretrained checkpoint cannot resume from another.
    loop.train_and_evaluate(_config(workdir, train__num_epochs=1), tmp_path / "b", progress=False)
    (tmp_path / "b" / "results.json").unlink()
    from_scratch = _config(workdir, train__num_epochs=1, finetune__from_scratch=True)
    with pytest.raises(CheckpointMismatchError, match="finetune.from_scratch|data_fingerprint"):
      loop.train_and_evaluate(from_scratch, tmp_path / "b", progress=False)


def test_tfidf_row_beats_the_majority_class_and_picks_c_on_validation():
  data = sentiment.load_sentiment("rotten_tomatoes")
  majority = max(np.mean(data["test"].labels), 1 - np.mean(data["test"].labels))
  scores = finetune_eval.tfidf_baseline("rotten_tomatoes", train_limit=3000, c_grid=(0.01, 10.0))
  assert scores["C"] == 10.0  # C = 0.01 underfits to the majority class on validation.
  assert scores["test_accuracy"] > majority + 0.05, (scores, majority)


def test_mean_vectors_row_reads_word2vec_text_vectors(tmp_path, monkeypatch):
  # Two planted directions: the positive words along axis 0, the negative ones along axis 1.
  words = list(_GOOD) + list(_BAD) + ["the", "film"]
  rows = [[1, 0]] * 3 + [[0, 1]] * 3 + [[0.5, 0.5]] * 2
  vectors_file = tmp_path / "vectors.txt"
  vectors_file.write_text(f"{len(words)} 2\n" + "".join(
      f"{w} {a} {b}\n" for w, (a, b) in zip(words, rows)))
  rng = np.random.default_rng(1)
  planted = {"train": _planted_split(rng, 200), "val": _planted_split(rng, 50),
             "test": _planted_split(rng, 50)}
  monkeypatch.setattr(sentiment, "load_sentiment", lambda name: planted)
  scores = finetune_eval.mean_vectors_baseline(vectors_file, "rotten_tomatoes")
  assert scores["test_accuracy"] == 1.0
  words_seen = [w for t in planted["train"].texts for w in t.replace(".", "").split()]
  assert scores["coverage"] == pytest.approx(np.mean([w in words for w in words_seen]))

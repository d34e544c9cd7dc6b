"""GPT on the spine: packing, held-out scoring against an independent loop, the trained run
reloaded for ``generate`` and ``score``, resume after an interruption, refused tokenizers."""

import json
import math
import shutil

from flax import nnx
import jax
import numpy as np
import pytest

from pretrain_jax import generate as generate_cli
from pretrain_jax import score as score_cli
from pretrain_jax.data import tokenizers
from pretrain_jax.methods import gpt, language_models
from pretrain_jax.train import loop

from test_train import smoke_config


pytestmark = pytest.mark.xdist_group("gpt")  # Shares conftest's gpt_smoke_run with test_finetune.


def _config(**overrides):
  return smoke_config("gpt", **overrides)


def test_pack_sequences_predicts_every_token_but_the_first_once():
  stream = np.arange(100, 123, dtype=np.int32)  # 23 tokens, 22 to predict.
  for max_len in (1, 4, 5, 22, 30):
    packed = language_models.pack_sequences(stream, max_len, pad_id=0)
    tokens, weights = packed["tokens"], packed["weights"]
    assert tokens.shape == (math.ceil(22 / max_len), max_len + 1)
    predicted = tokens[:, 1:][weights > 0]
    np.testing.assert_array_equal(predicted, stream[1:])  # Each once, in order.
    np.testing.assert_array_equal(tokens[1:, 0], tokens[:-1, -1])  # Rows overlap by one.
    assert np.all(tokens[:, 1:][weights == 0] == 0)  # Only padding carries weight 0.
    np.testing.assert_array_equal(language_models.unpack_stream(packed), stream)
    dropped = language_models.pack_sequences(stream, max_len)  # Train: no partial row.
    assert dropped["tokens"].shape[0] == 22 // max_len and dropped["weights"].all()


_APPLY = jax.jit(lambda graphdef, state, tokens: nnx.merge(graphdef, state)(tokens),
                 static_argnums=0)


def _next_token_logits(model, prefix, max_len):
  """float64 [V] logits after ``prefix`` from one forward pass of the prefix alone: it is
  right-padded to max_len so that one compiled program serves every length (the padding
  comes after the position read, which a causal model never sees)."""
  tokens = np.zeros((1, max_len), np.int32)
  tokens[0, :len(prefix)] = prefix
  graphdef, state = nnx.split(model)
  logits = _APPLY(graphdef, state, tokens)
  return np.asarray(logits, np.float64)[0, len(prefix) - 1]


@pytest.fixture
def trained_run(gpt_smoke_run):
  return gpt_smoke_run


def test_smoke_run_learns_and_reports_baselines(trained_run):
  workdir, results = trained_run
  vocab_size = results["vocab_size"]
  # From ln V (uniform) at initialisation to below the add-one unigram on held-out text.
  assert results["final_loss"] < math.log(vocab_size) - 0.8
  assert results["val_perplexity"] < results["val_unigram_perplexity"]
  assert results["val_bigram_kneser_ney_perplexity"] < results["val_unigram_perplexity"]
  for split in ("val", "test"):
    assert results[f"{split}_perplexity"] == pytest.approx(math.exp(results[f"{split}_nll"]))
    assert 0 < results[f"{split}_bits_per_character"] < 8
  saved = tokenizers.BpeTokenizer.load(workdir / "tokenizer.json")
  assert saved.vocab_size == vocab_size
  assert "CONTINUATION" in (workdir / "samples.txt").read_text()


def test_score_equals_an_independent_loop_over_positions(trained_run, tmp_path):
  workdir, _ = trained_run
  trained = loop.restore_trained(workdir)
  model, tokenizer = trained.model(), trained.run.info.tokenizer
  max_len = trained.run.config.model.max_len
  text = "It is a truth universally acknowledged, that a single man in possession of a good " \
         "fortune, must be in want of a wife. Naïve café — 你好 🙂!"  # Bytes never seen too.
  scores = language_models.score_text(trained, text)
  ids = tokenizer.encode(text)
  assert len(ids) > max_len + 2, "the text must span several rows"
  total = 0.0
  for t in range(1, len(ids)):  # Token t is read in the row starting at ((t - 1) // T) * T.
    start = ((t - 1) // max_len) * max_len
    logits = _next_token_logits(model, ids[start:t], max_len)
    log_z = np.log(np.sum(np.exp(logits - logits.max()))) + logits.max()
    total += log_z - logits[ids[t]]
  nll = total / (len(ids) - 1)
  assert scores["num_tokens"] == len(ids) - 1
  assert scores["nll"] == pytest.approx(nll, rel=1e-5)
  assert scores["perplexity"] == pytest.approx(math.exp(nll), rel=1e-5)
  assert scores["bits_per_character"] == pytest.approx(total / math.log(2) / len(text), rel=1e-5)

  text_file = tmp_path / "text.txt"
  text_file.write_text(text, encoding="utf-8")
  assert score_cli.main(["--workdir", str(workdir), "--text-file", str(text_file)]) == 0


def test_completion_log_likelihoods_equal_an_independent_loop(trained_run):
  workdir, _ = trained_run
  trained = loop.restore_trained(workdir)
  model, tokenizer = trained.model(), trained.run.info.tokenizer
  prompt = "happy = unhappy\nkind = unkind\nable ="
  completions = [" unable", " disable", " capable of", " un"]
  scores = gpt.completion_log_likelihoods(trained, prompt, completions)
  prompt_ids = tokenizer.encode(prompt)
  for completion, score in zip(completions, scores):
    ids = prompt_ids + tokenizer.encode(completion)
    total = 0.0
    for t in range(len(prompt_ids), len(ids)):  # ln p(token t | tokens < t), one pass each.
      logits = _next_token_logits(model, ids[:t], trained.run.config.model.max_len)
      log_z = np.log(np.sum(np.exp(logits - logits.max()))) + logits.max()
      total += logits[ids[t]] - log_z
    assert score == pytest.approx(total, rel=1e-5)
  assert np.all(scores < 0)

  for bad, match in (("", "prompt is empty"), ("a " * 40, "shorten the prompt")):
    with pytest.raises(ValueError, match=match):
      gpt.completion_log_likelihoods(trained, bad, [" x"])
  with pytest.raises(ValueError, match="no completions"):
    gpt.completion_log_likelihoods(trained, prompt, [])
  with pytest.raises(ValueError, match="encodes to no tokens"):
    gpt.completion_log_likelihoods(trained, prompt, [" a", ""])


def test_generate_cli_continues_and_refuses_bad_settings(trained_run, capsys):
  workdir, results = trained_run
  args = ["--workdir", str(workdir), "--prompt", "It is a truth", "--max_new_tokens", "8",
          "--temperature", "0"]
  assert generate_cli.main(args) == 0
  first = capsys.readouterr().out
  assert first.startswith("It is a truth") and len(first) > len("It is a truth\n")
  assert generate_cli.main(args) == 0
  assert capsys.readouterr().out == first, "greedy decoding is deterministic"
  bad = {"--prompt": "", "--temperature": "-1", "--top_k": str(results["vocab_size"] + 1),
         "--max_new_tokens": "0"}
  for flag, value in bad.items():
    settings = dict(zip(args[::2], args[1::2]), **{flag: value})
    argv = [item for pair in settings.items() for item in pair]
    assert generate_cli.main(argv) == 1, flag
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, (flag, err)


def test_long_prompt_is_truncated_from_the_left_with_a_warning(trained_run):
  workdir, _ = trained_run
  trained = loop.restore_trained(workdir)
  max_len = trained.run.config.model.max_len
  ids = list(range(10, 10 + 2 * max_len))
  with pytest.warns(UserWarning, match="keeping only the last"):
    long = gpt.continue_tokens(trained, ids, max_new_tokens=4, temperature=0.0, top_k=0, seed=0)
  kept = ids[-(max_len - 4):]
  short = gpt.continue_tokens(trained, kept, max_new_tokens=4, temperature=0.0, top_k=0, seed=0)
  np.testing.assert_array_equal(long, short)


def test_interrupted_run_resumes_to_identical_numbers(trained_run, tmp_path, monkeypatch):
  straight_dir, straight = trained_run
  workdir = tmp_path / "killed"
  real_host_batch = loop.iterators.host_batch

  def dies_at_30(split, seed, step, batch_size):
    if step == 30:
      raise RuntimeError("killed at step 30")
    return real_host_batch(split, seed, step, batch_size)

  monkeypatch.setattr(loop.iterators, "host_batch", dies_at_30)
  with pytest.raises(RuntimeError, match="killed"):
    loop.train_and_evaluate(_config(), workdir, progress=False)
  assert (workdir / "checkpoints" / "20").is_dir() and not (workdir / "results.json").exists()
  monkeypatch.setattr(loop.iterators, "host_batch", real_host_batch)
  resumed = loop.train_and_evaluate(_config(), workdir, progress=False)
  for key in ("final_loss", "val_nll", "test_nll", "sample", "num_steps"):
    assert resumed[key] == straight[key], key


def test_a_workdir_with_another_tokenizer_is_refused_and_left_intact(trained_run, tmp_path):
  straight_dir, _ = trained_run
  workdir = tmp_path / "run"
  shutil.copytree(straight_dir, workdir)
  (workdir / "results.json").unlink()  # As if evaluation had been interrupted.
  before = {str(p.relative_to(workdir)): p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
  with pytest.raises(tokenizers.TokenizerMismatchError, match="tokenizer.json") as error:
    loop.train_and_evaluate(_config(tokenizer__vocab_size=400), workdir, progress=False)
  assert "\n" not in str(error.value)
  after = {str(p.relative_to(workdir)): p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
  assert after == before, "a refused run must not touch the workdir"


def test_restore_refuses_a_checkpoint_whose_tokenizer_was_replaced(trained_run, tmp_path):
  straight_dir, _ = trained_run
  workdir = tmp_path / "run"
  shutil.copytree(straight_dir, workdir)
  other = tokenizers.train_bpe(["some other text entirely, with other merges " * 50],
                               vocab_size=300)
  other.save(workdir / "tokenizer.json")
  with pytest.raises(ValueError, match="data_fingerprint"):
    loop.restore_trained(workdir)


def test_results_are_strict_json(trained_run):
  workdir, _ = trained_run
  def refuse(constant):
    raise AssertionError(f"results.json holds {constant}, which strict JSON cannot")

  results = json.loads((workdir / "results.json").read_text(), parse_constant=refuse)
  assert results["method"] == "gpt" and results["num_parameters"] > 0
  # Every number of the run is there and finite (NaN would be written as null).
  for key in ("val_nll", "test_nll", "val_bigram_kneser_ney_perplexity", "train_tokens_per_second"):
    assert isinstance(results[key], float) and math.isfinite(results[key]), key

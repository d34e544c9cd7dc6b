"""Throughput of the encoder's train step: images/s and achieved GFLOP/s, and against PyTorch.

  python benchmarks/train_step.py               # demo and full configs, every method's step
  python benchmarks/train_step.py --quick       # smoke sizes, seconds
  python benchmarks/train_step.py --vs-torch    # supervised and contrastive vs PyTorch
  python benchmarks/train_step.py --vs-torch --quick

Every mode first applies ``pretrain_jax.train.platform.configure_cpu()`` (the project's
CPU defaults: XLA flags and one device per core; a no-op on GPU/TPU hosts).

For each (method, variant) it builds the real jitted train step of ``pretrain_jax.train``
on the variant's width and batch size, on every local device, and reports the median
wall time of several steps after a warm-up, the input images per second, and the FLOPs
per step from XLA's cost analysis divided by that time. FLOPs are XLA's count of the
compiled step (forward, backward and optimiser update); the rate is what this machine
achieved, not a peak.

``--vs-torch`` (needs the optional ``torch`` extra: ``pip install -e .[torch]``) times the
same training step written in PyTorch eager mode against the project's real jitted step
(``loop.Pretrainer(config).jit_train_step()``), for ``supervised`` and ``contrastive`` at
the demo (width 16, batch 128) and full (width 64, batch 512) sizes. What is the same on
both sides:

* the network: ``ConvEncoder`` (3x3 convs with XLA's "SAME" padding, GroupNorm with the
  JAX module's groups and epsilon, ReLU, global mean pool) + linear classifier, or +
  MLP projection head and NT-Xent (Chen et al. 2020, eq. 1); the parameter counts are
  printed and must be equal, and the JAX parameters are copied into the torch model and
  both losses compared on one un-augmented batch before timing;
* the update: global-norm gradient clipping, then AdamW with the warm-up + cosine
  learning rate of ``train.optimizers.make_optimizer`` (the schedule's values are taken
  from optax itself);
* the work: both steps start from the same uint8 batch already in memory and include
  the method's augmentations (random resized crop with bilinear resampling and flip;
  for contrastive also intensity jitter and Gaussian blur of two views), because the
  JAX step cannot be run without them. Torch draws its own random numbers, so the views
  differ, not their cost.

The two sides alternate (a round of JAX steps, then a round of torch steps, repeated) so
that a machine shared with other jobs slows both alike; each step is timed on its own
(JAX: until its metrics are ready) and the table reports the medians and the ratio
torch time / JAX time (above 1: JAX is faster), plus each side's median process CPU time
per step (all threads: the work done, less sensitive to other jobs than wall time; a
spinning OpenMP barrier counts too). Torch runs with
``torch.set_num_threads(cores)`` and its faster memory format (channels-last or not,
measured at start-up), fused AdamW.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from pretrain_jax.objectives.infonce import contrastive_loss
from pretrain_jax.table import load_method_config
from pretrain_jax.train import loop, platform, sharding

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def random_batch(info, batch_size: int) -> dict[str, np.ndarray]:
  """A seeded batch of the dataset's shape: ``{"image": uint8 [B, H, W, C], "label": int32 [B]}``."""
  rng = np.random.default_rng(0)
  return {"image": rng.integers(0, 256, (batch_size, *info.image_shape), dtype=np.uint8),
          "label": rng.integers(0, info.num_classes, (batch_size,), dtype=np.int32)}


def measure(method: str, variant: str, repeats: int) -> dict:
  """Median step time of ``method`` at ``variant``'s width and batch size."""
  config = load_method_config(CONFIGS, method, variant, seed=0)
  run = loop.Pretrainer(config)
  batch_size = config.train.batch_size
  host = random_batch(run.info, batch_size)
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


# Methods whose step --vs-torch re-implements in PyTorch.
TORCH_METHODS = ("supervised", "contrastive")


def same_padding(size: int, stride: int, kernel: int = 3) -> tuple[int, int]:
  """XLA's "SAME" padding ``(low, high)`` of one spatial axis (the extra pixel goes high).

  Args:
    size: input length in pixels.
    stride: the convolution's stride.
    kernel: the kernel's length in pixels.

  Returns:
    Pixels of zero padding before and after, so that the output has ``ceil(size / stride)``
    pixels (TensorFlow / XLA convention; PyTorch's ``padding=1`` is symmetric instead).
  """
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def learning_rates(config, num_values: int) -> np.ndarray:
  """The learning rate of steps ``0 .. num_values - 1``, from the optax schedule itself.

  Mirrors ``train.optimizers.make_optimizer``: warm-up from 0, cosine to
  ``optim.end_learning_rate`` at ``train.num_steps``; steps past it stay there.

  Returns:
    float64 ``[num_values]`` learning rates.
  """
  optim, num_steps = config.optim, config.train.num_steps
  warmup = min(optim.warmup_steps, max(num_steps - 1, 0))
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=optim.learning_rate, warmup_steps=warmup,
      decay_steps=max(num_steps, warmup + 1), end_value=optim.end_learning_rate)
  return np.asarray([float(schedule(step)) for step in range(num_values)])


def make_torch_run(method: str, config, jax_model: nnx.Module, jax_params, image_shape: tuple[int, int, int],
                   channels_last: bool):
  """The torch twin of ``method``'s model, loss, augmentations and update.

  Args:
    method: ``supervised`` or ``contrastive``.
    config: the run's config (model, optim, method sections).
    jax_model: the JAX model (read for its structure: strides, groups, epsilon).
    jax_params: the JAX parameters (``nnx.State``), copied into the torch model.
    image_shape: ``(H, W, C)`` of the images.
    channels_last: use PyTorch's NHWC memory format for activations and weights.

  Returns:
    ``(model, loss_fn, step_fn)``: the ``torch.nn.Module``; ``loss_fn(model, images float
    [B, C, H, W] in [0, 1], labels int64 [B]) -> (loss, metric)``; and
    ``step_fn(images uint8 [B, C, H, W], labels int64 [B], step) -> (loss, grad_norm)``
    (augment, forward, backward, clip, AdamW), each returned value a 0-d tensor.
  """
  import torch  # pylint: disable=g-import-not-at-top
  import torch.nn.functional as F  # pylint: disable=g-import-not-at-top

  height, width, channels = image_shape
  encoder = jax_model.encoder

  class ConvEncoder(torch.nn.Module):
    """``nn.encoder.ConvEncoder`` in NCHW: conv -> GroupNorm -> ReLU, x4, mean pool."""

    def __init__(self):
      super().__init__()
      self.convs, self.norms, self.pads = torch.nn.ModuleList(), torch.nn.ModuleList(), []
      size = (height, width)
      previous = channels
      for conv, norm in zip(encoder.convs, encoder.norms):
        stride = conv.strides[0]
        (top, bottom), (left, right) = (same_padding(size[0], stride), same_padding(size[1], stride))
        symmetric = top == bottom and left == right
        out = conv.kernel.shape[-1]
        self.convs.append(torch.nn.Conv2d(previous, out, 3, stride=stride,
                                          padding=(top, left) if symmetric else 0))
        self.pads.append(None if symmetric else (left, right, top, bottom))
        self.norms.append(torch.nn.GroupNorm(norm.num_groups, out, eps=norm.epsilon))
        previous, size = out, (-(-size[0] // stride), -(-size[1] // stride))

    def forward(self, images):
      x = images * 2.0 - 1.0
      for conv, norm, pad in zip(self.convs, self.norms, self.pads):
        if pad is not None:
          x = F.pad(x, pad)
        x = F.relu(norm(conv(x)))
      return x.mean((2, 3))

  class Model(torch.nn.Module):
    """Encoder + linear classifier (supervised) or + MLP projection head (contrastive)."""

    def __init__(self):
      super().__init__()
      self.encoder = ConvEncoder()
      if method == "supervised":
        self.classifier = torch.nn.Linear(*jax_model.classifier.kernel.shape)
      else:
        self.hidden = torch.nn.Linear(*jax_model.projection.hidden.kernel.shape)
        self.out = torch.nn.Linear(*jax_model.projection.out.kernel.shape)

    def forward(self, images):
      features = self.encoder(images)
      if method == "supervised":
        return self.classifier(features)
      return self.out(F.relu(self.hidden(features)))

  model = Model()
  pure = nnx.to_pure_dict(jax_params)
  tensor = lambda array: torch.from_numpy(np.array(array, np.float32))  # noqa: E731
  with torch.no_grad():
    for i, (conv, norm) in enumerate(zip(model.encoder.convs, model.encoder.norms)):
      conv.weight.copy_(tensor(pure["encoder"]["convs"][i]["kernel"]).permute(3, 2, 0, 1))
      conv.bias.copy_(tensor(pure["encoder"]["convs"][i]["bias"]))
      norm.weight.copy_(tensor(pure["encoder"]["norms"][i]["scale"]))
      norm.bias.copy_(tensor(pure["encoder"]["norms"][i]["bias"]))
    heads = ({"classifier": pure["classifier"]} if method == "supervised" else
             {"hidden": pure["projection"]["hidden"], "out": pure["projection"]["out"]})
    for name, leaves in heads.items():
      getattr(model, name).weight.copy_(tensor(leaves["kernel"]).T)
      getattr(model, name).bias.copy_(tensor(leaves["bias"]))
  memory_format = torch.channels_last if channels_last else torch.contiguous_format
  model = model.to(memory_format=memory_format)

  def nt_xent(a, b, temperature):
    views = torch.cat([a, b])
    views = views * torch.rsqrt(torch.clamp((views * views).sum(-1, keepdim=True), min=1e-16))
    logits = views @ views.T / temperature
    logits = logits.masked_fill(torch.eye(len(views), dtype=torch.bool), torch.finfo(torch.float32).min)
    n = len(a)
    partner = torch.cat([torch.arange(n) + n, torch.arange(n)])
    return F.cross_entropy(logits, partner), (logits[:n, n:].argmax(-1) == torch.arange(n)).float().mean()

  def loss_fn(net, images, labels):
    if method == "supervised":
      logits = net(images)
      return F.cross_entropy(logits, labels), (logits.argmax(-1) == labels).float().mean()
    num_images = len(images) // 2
    projections = net(images)
    return nt_xent(projections[:num_images], projections[num_images:],
                   config.contrastive.temperature)

  def crop_flip_grid(num, scale):
    """Affine grids of random resized crops (``augment.sample_crop_box``) and flips."""
    area = torch.empty(num).uniform_(*scale) * (height * width)
    aspect = torch.exp(torch.empty(num).uniform_(np.log(3 / 4), np.log(4 / 3)))
    crop_w = torch.clamp(torch.sqrt(area * aspect), max=width)
    crop_h = torch.clamp(torch.sqrt(area / aspect), max=height)
    top = torch.rand(num) * (height - crop_h)
    left = torch.rand(num) * (width - crop_w)
    flip = torch.where(torch.rand(num) < 0.5, -1.0, 1.0)
    theta = torch.zeros(num, 2, 3)
    # Output pixel centre t in [-1, 1] samples the input at s t + b (align_corners=False):
    # the crop's own pixel-centre grid, mirrored when flipped.
    theta[:, 0, 0] = flip * crop_w / width
    theta[:, 0, 2] = (2 * left + crop_w) / width - 1
    theta[:, 1, 1] = crop_h / height
    theta[:, 1, 2] = (2 * top + crop_h) / height - 1
    return F.affine_grid(theta, (num, channels, height, width), align_corners=False)

  def crop_and_flip(images, scale):
    grid = crop_flip_grid(len(images), scale)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)

  def jitter_and_blur(views, settings):
    """``augment.intensity_jitter`` (p = 0.8) then ``augment.gaussian_blur``, per view."""
    num = len(views)
    factor = torch.empty(num, 1, 1, 1).uniform_(1 - settings.contrast, 1 + settings.contrast)
    shift = torch.empty(num, 1, 1, 1).uniform_(-settings.brightness, settings.brightness)
    mean = views.mean((1, 2, 3), keepdim=True)
    jittered = torch.clamp((views - mean) * factor + mean + shift, 0.0, 1.0)
    views = torch.where(torch.rand(num, 1, 1, 1) < 0.8, jittered, views)
    radius = 3  # ceil(3 * sigma_max) with gaussian_blur's default sigma_range (0.1, 1.0).
    sigma = torch.empty(num, 1).uniform_(0.1, 1.0)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    weights = torch.exp(-0.5 * (taps / sigma) ** 2)
    weights = (weights / weights.sum(-1, keepdim=True)).repeat_interleave(channels, 0)
    flat = F.pad(views.reshape(1, num * channels, height, width), (radius,) * 4, mode="replicate")
    blurred = F.conv2d(flat, weights.view(-1, 1, 2 * radius + 1, 1), groups=num * channels)
    blurred = F.conv2d(blurred, weights.view(-1, 1, 1, 2 * radius + 1), groups=num * channels)
    blurred = blurred.reshape(num, channels, height, width)
    return torch.where(torch.rand(num, 1, 1, 1) < settings.blur_probability, blurred, views)

  def augment(images):
    if method == "supervised":
      return crop_and_flip(images, tuple(config.supervised.crop_scale))
    settings = config.contrastive
    both = torch.cat([images, images])
    return jitter_and_blur(crop_and_flip(both, tuple(settings.crop_scale)), settings)

  params = list(model.parameters())
  optimizer = torch.optim.AdamW(params, lr=0.0, betas=(0.9, 0.999), eps=1e-8,
                                weight_decay=config.optim.weight_decay, fused=True)
  rates = learning_rates(config, config.train.num_steps + 1)
  clip = config.optim.grad_clip_norm

  def step_fn(images_u8, labels, step):
    with torch.no_grad():
      views = augment(images_u8.float() / 255.0).contiguous(memory_format=memory_format)
    optimizer.param_groups[0]["lr"] = float(rates[min(step, len(rates) - 1)])
    optimizer.zero_grad(set_to_none=True)
    loss, _ = loss_fn(model, views, labels)
    loss.backward()
    grads = [p.grad for p in params]
    with torch.no_grad():
      grad_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
      torch._foreach_mul_(grads, clip / torch.clamp(grad_norm, min=clip))  # optax.clip_by_global_norm
    optimizer.step()
    return loss.detach(), grad_norm

  return model, loss_fn, step_fn


def jax_reference_loss(method: str, config, model: nnx.Module, images: np.ndarray,
                       labels: np.ndarray) -> float:
  """The JAX model's loss on un-augmented float images (the torch twin's check).

  Args:
    method: ``supervised`` or ``contrastive`` (then the first and second halves of
      ``images`` are the two views).
    config: the run's config.
    model: the JAX model.
    images: float32 ``[B, H, W, C]`` in [0, 1].
    labels: int ``[B]``.

  Returns:
    The loss in nats (per example, or per view).
  """
  outputs = model(jnp.asarray(images))
  if method == "supervised":
    return float(optax.softmax_cross_entropy_with_integer_labels(outputs, jnp.asarray(labels)).mean())
  half = len(images) // 2
  return float(contrastive_loss(outputs[:half], outputs[half:], config.contrastive.temperature))


def compare_with_torch(method: str, variant: str, rounds: int, steps_per_round: int) -> dict:
  """Interleaved timing of the JAX train step and its PyTorch twin on one batch.

  Args:
    method: ``supervised`` or ``contrastive``.
    variant: config variant (``smoke``, ``demo``, ``full``).
    rounds: alternations (JAX round, torch round).
    steps_per_round: steps timed one by one in each round.

  Returns:
    Sizes, parameter counts, loss difference at init, medians (ms) and the speed ratio.

  Raises:
    AssertionError: the two models have different parameter counts.
  """
  import torch  # pylint: disable=g-import-not-at-top

  config = load_method_config(CONFIGS, method, variant, seed=0)
  run = loop.Pretrainer(config)
  batch_size = config.train.batch_size
  host = random_batch(run.info, batch_size)
  state = run.init_state()
  jax_model = run.merge(state)
  jax_params = sum(leaf.size for leaf in jax.tree.leaves(state.params))

  float_images = host["image"].astype(np.float32) / 255.0
  images_u8 = torch.from_numpy(host["image"]).permute(0, 3, 1, 2).contiguous()
  labels = torch.from_numpy(host["label"].astype(np.int64))
  timings = {}
  for channels_last in (False, True):  # Give torch its faster memory format.
    model, loss_fn, step_fn = make_torch_run(method, config, jax_model, state.params,
                                             run.info.image_shape, channels_last)
    for step in range(2):
      step_fn(images_u8, labels, step)
    started = time.perf_counter()
    for step in range(2, 4):
      step_fn(images_u8, labels, step)
    timings[channels_last] = time.perf_counter() - started
  channels_last = timings[True] < timings[False]
  model, loss_fn, step_fn = make_torch_run(method, config, jax_model, state.params,
                                           run.info.image_shape, channels_last)
  torch_params = sum(p.numel() for p in model.parameters())
  assert torch_params == jax_params, (torch_params, jax_params)
  with torch.no_grad():
    nchw = torch.from_numpy(float_images).permute(0, 3, 1, 2).contiguous()
    torch_loss = float(loss_fn(model, nchw, labels)[0])
  loss_difference = abs(torch_loss - jax_reference_loss(method, config, jax_model, float_images,
                                                        host["label"]))

  batch = sharding.global_batch(host, run.mesh)
  step = run.jit_train_step()
  for _ in range(2):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  torch_step = 0
  for _ in range(2):
    step_fn(images_u8, labels, torch_step)
    torch_step += 1
  times = {"jax": [], "torch": [], "jax_cpu": [], "torch_cpu": []}
  for _ in range(rounds):
    for _ in range(steps_per_round):
      started, cpu_started = time.perf_counter(), time.process_time()
      state, metrics = step(state, batch)
      jax.block_until_ready(metrics)
      times["jax"].append(time.perf_counter() - started)
      times["jax_cpu"].append(time.process_time() - cpu_started)
    for _ in range(steps_per_round):
      started, cpu_started = time.perf_counter(), time.process_time()
      loss, _ = step_fn(images_u8, labels, torch_step)
      float(loss)
      times["torch"].append(time.perf_counter() - started)
      times["torch_cpu"].append(time.process_time() - cpu_started)
      torch_step += 1
  ms = {name: 1e3 * statistics.median(values) for name, values in times.items()}
  return {"method": method, "variant": variant, "width": config.model.width, "batch": batch_size,
          "params": jax_params, "loss_diff": loss_difference, "jax_ms": ms["jax"],
          "torch_ms": ms["torch"], "jax_cpu_ms": ms["jax_cpu"], "torch_cpu_ms": ms["torch_cpu"],
          "ratio": ms["torch"] / ms["jax"], "channels_last": channels_last}


def main_vs_torch(quick: bool, settings: dict, torch_threads: int | None = None,
                  variants: tuple[str, ...] | None = None) -> None:
  """Prints the JAX-vs-PyTorch table (``--vs-torch``).

  Args:
    quick: smoke sizes and few steps instead of demo and full.
    settings: what ``platform.configure_cpu`` changed (printed).
    torch_threads: ``torch.set_num_threads``; default one per usable core.
    variants: config variants to run; default ``smoke`` if quick, else demo and full.
  """
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise SystemExit("error: --vs-torch needs PyTorch: pip install -e .[torch]") from None
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  torch.set_num_threads(torch_threads or cores)
  variants = variants or (("smoke",) if quick else ("demo", "full"))
  rounds, steps_per_round = (2, 2) if quick else (5, 4)
  print(f"jax {jax.__version__} (jaxlib {jax.lib.__version__}), {jax.device_count()} x "
        f"{jax.devices()[0].device_kind} devices, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, "
        f"platform defaults {settings}")
  print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {cores} cores; "
        f"load average {os.getloadavg()[0]:.1f} (other jobs on this CPU slow both sides)")
  print("median wall ms per step (and process CPU ms per step, all threads)")
  print(f"{'method':<12} {'variant':<7} {'width':>5} {'batch':>5} {'params':>8} {'|dloss|':>8} "
        f"{'jax ms':>8} {'torch ms':>9} {'torch/jax':>9} {'jax cpu':>8} {'torch cpu':>9}")
  for variant in variants:
    for method in TORCH_METHODS:
      r = compare_with_torch(method, variant, rounds, steps_per_round)
      print(f"{r['method']:<12} {r['variant']:<7} {r['width']:>5} {r['batch']:>5} {r['params']:>8} "
            f"{r['loss_diff']:>8.1e} {r['jax_ms']:>8.1f} {r['torch_ms']:>9.1f} {r['ratio']:>8.2f}x "
            f"{r['jax_cpu_ms']:>8.1f} {r['torch_cpu_ms']:>9.1f}"
            f"{'  (torch channels-last)' if r['channels_last'] else ''}", flush=True)
  print(f"load average at the end {os.getloadavg()[0]:.1f}; torch/jax above 1: the JAX step is faster")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="smoke sizes, few repeats")
  parser.add_argument("--methods", default="supervised,contrastive,rotation,autoencoder")
  parser.add_argument("--vs-torch", action="store_true",
                      help="supervised and contrastive against the same step in PyTorch")
  parser.add_argument("--torch-threads", type=int, default=None,
                      help="torch.set_num_threads for --vs-torch (default: one per core)")
  parser.add_argument("--variants", default=None,
                      help="comma-separated config variants for --vs-torch (default: demo,full)")
  args = parser.parse_args()
  settings = platform.configure_cpu()  # Before anything initialises JAX's backends.
  if args.vs_torch:
    main_vs_torch(args.quick, settings, args.torch_threads,
                  tuple(args.variants.split(",")) if args.variants else None)
    return
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

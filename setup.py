"""pretrain_jax: pretraining representations in JAX/Flax and measuring what they buy."""

from setuptools import find_packages, setup

setup(
  name="pretrain_jax",
  version="0.1.0",
  description="Pretraining (supervised and self-supervised) in JAX/Flax NNX, "
  "from the lecture notes' equations to the comparison tables.",
  packages=find_packages(include=["pretrain_jax", "pretrain_jax.*"]),
  python_requires=">=3.10",
  install_requires=[
    "jax>=0.8",
    "flax>=0.12",
    "optax>=0.2.5",
    "orbax-checkpoint>=0.11",
    "ml_collections>=1.0",
    "chex>=0.1.90",
    "numpy>=1.26",
    "scikit-learn>=1.4",
    "matplotlib>=3.8",
    "tqdm>=4.66",
    "absl-py>=2.0",
    "etils[epath]>=1.7",
    # Text: BPE (HF tokenizers), the R and SWORD data files of the English corpora.
    "tokenizers>=0.20",
    "rdata>=1.0",
    "pysword>=0.2.8",
  ],
  extras_require={
    # TensorFlow Datasets: the online path to fashion_mnist / mnist.
    "tfds": ["tensorflow-datasets>=4.9", "array_record", "pillow"],
    # Test suite: pytest, notebooks executed headless, the TFDS mock path.
    "test": [
      "scipy>=1.11",
      "pytest>=8",
      "pytest-xdist>=3",
      "nbclient>=0.10",
      "nbformat>=5.10",
      "ipykernel>=6",
      "tensorflow-datasets>=4.9",
      "array_record",
      "pillow",
    ],
    # Benchmarks and reference rows: BlackJAX (samplers), gensim (word vectors).
    "bench": ["blackjax>=1.2", "gensim>=4.3"],
    # benchmarks/train_step.py --vs-torch: the same train step in PyTorch (CPU build is enough).
    "torch": ["torch>=2.1"],
    # Accelerator hosts: JAX's CUDA 12 or TPU wheels (the README's H100 numbers: jax
    # 0.11.2, flax 0.12.10). CPU CI pins jax 0.10.2 in constraints.txt.
    "cuda": ["jax[cuda12]>=0.10.2,<0.12", "flax>=0.12.8"],
    "tpu": ["jax[tpu]>=0.10.2,<0.12", "flax>=0.12.8"],
  },
)

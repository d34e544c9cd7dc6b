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
        # Benchmarks compare against BlackJAX.
        "bench": ["blackjax>=1.2"],
    },
)

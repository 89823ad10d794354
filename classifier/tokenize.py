"""Turn texts into padded BERT inputs with a model directory's ``tokenizer.json``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from classifier.errors import ModelLoadError

TOKENIZER_FILE = "tokenizer.json"
# Characters kept per allowed token before tokenizing. Truncation only happens after the
# whole text is tokenized, so without this a 1 MB prompt would cost a full tokenization to
# keep 128 tokens. WordPiece tokens rarely span more than a few characters, so 32 per token
# never cuts text that would have survived truncation, except in pathological whitespace.
CHARS_PER_TOKEN = 32


class TextTokenizer:
    """A model directory's tokenizer with padding off and truncation at ``max_tokens``.

    Safe to share between threads: after construction it is only read.
    """

    def __init__(self, model_dir: Path, max_tokens: int) -> None:
        if max_tokens < 2:
            raise ValueError(f"max_tokens must be at least 2 ([CLS] and [SEP]), got {max_tokens}")
        path = Path(model_dir) / TOKENIZER_FILE
        if not path.parent.is_dir():
            raise ModelLoadError(path.parent, "model directory does not exist")
        if not path.is_file():
            raise ModelLoadError(path, "tokenizer.json is missing")
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on malformed files
            raise ModelLoadError(path, f"not a valid tokenizers file: {exc}") from exc
        padding = tokenizer.padding or {}
        self.pad_id = int(padding.get("pad_id", 0))
        # The packaged tokenizer pads every input to 128 tokens; padding per batch instead
        # means a short prompt costs a few tokens of compute, not 128.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max_tokens)
        self.max_tokens = max_tokens
        self._tokenizer = tokenizer
        self._max_chars = max_tokens * CHARS_PER_TOKEN

    def token_ids(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text[: self._max_chars]).ids)

    def words(self) -> frozenset[str]:
        """The vocabulary's whole words (pieces that begin a word), lower case: a word the
        model knows is spelt right (the response cache's typo check)."""
        marker = "\u2581"  # sentencepiece's word start
        return frozenset(
            piece[1:].lower()
            for piece in self._tokenizer.get_vocab()
            if piece.startswith(marker) and len(piece) > 2
        )

    def batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and attention mask [n, longest] int64, right-padded to the longest."""
        rows = [self.token_ids(text) for text in texts]
        width = max((len(r) for r in rows), default=0)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return ids, mask

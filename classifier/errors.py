"""Exceptions raised by the classifier package.

Every error the package raises on purpose derives from ``ClassifierError``, so a caller
(the ext_proc boundary) can map the whole family to one response with a single ``except``:

    ClassifierError
    ├── ModelBuildError   building the ONNX model from the packaged weights failed
    ├── ModelLoadError    a model directory is missing a file or holds an unusable model
    ├── LabelError        the labels / threshold / fallback given to a classifier are invalid
    ├── InferenceError    onnxruntime failed while encoding or classifying text
    └── EvalDataError     an evaluation file is unreadable or has a malformed line
"""

from __future__ import annotations

from pathlib import Path


class ClassifierError(Exception):
    """Base class of every error raised by the classifier package."""


class ModelBuildError(ClassifierError):
    """The encoder could not be built (weights package missing, unexpected tensors...)."""


class ModelLoadError(ClassifierError):
    """A model directory cannot be used; ``path`` names the offending file or directory."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class LabelError(ClassifierError, ValueError):
    """Invalid label set, threshold or fallback given to a classifier."""


class InferenceError(ClassifierError):
    """The ONNX runtime failed on an input it should have accepted."""


class EvalDataError(ClassifierError, ValueError):
    """An evaluation data file is malformed; the message names the file and line."""

    def __init__(self, path: Path | str, line: int | None, reason: str) -> None:
        self.path = Path(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {reason}")

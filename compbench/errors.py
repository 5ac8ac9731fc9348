"""Errors compbench raises for bad input: each carries one clear, user-facing message."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CompbenchError(Exception):
    """Base class: the CLI prints the message alone and exits with status 2."""


class UnknownNameError(CompbenchError, KeyError):
    """A name (model, compressor, task, ...) that is not registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        self.kind = kind
        self.name = name
        self.known = sorted(known)
        self.close = difflib.get_close_matches(name, self.known, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(self.close)}?" if self.close else ""
        super().__init__(
            f"unknown {kind} {name!r}.{hint} Known {kind}s: {', '.join(self.known)}."
        )

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


class InvalidInputError(CompbenchError, ValueError):
    """An argument outside its allowed range or of the wrong kind."""


class DeviceUnavailableError(CompbenchError, RuntimeError):
    """A device was asked for (e.g. CUDA) that this machine does not have."""


class ModelLoadError(CompbenchError, RuntimeError):
    """A model could not be loaded from the hub or a local directory."""


class SchemaVersionError(CompbenchError, ValueError):
    """A results file written with a schema version this compbench cannot read."""


class CorruptResultsError(CompbenchError, ValueError):
    """A results file that is not valid compbench JSONL."""


class ResultsWriteError(CompbenchError, OSError):
    """A results file (or the folder it goes in) that cannot be written."""


class UncountedOpError(CompbenchError, RuntimeError):
    """The MAC counter met a matmul-like operator it has no handler for.

    Raised instead of silently counting it as zero."""

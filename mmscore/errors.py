"""The errors a user sees: one base class, one kind per thing that went wrong, each a one-line message.

The CLI catches :class:`MmscoreError` in one place and prints ``error: <message>``; library callers
catch the kind they care about. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class MmscoreError(Exception):
    """Something the user can act on; ``str(error)`` is the whole message, in one line."""


class InputError(MmscoreError, ValueError):
    """The input cannot be scored or trained on (wrong type, unreadable, missing columns)."""


class OutputError(MmscoreError, OSError):
    """The output cannot be written (disk full, permissions); the final path is left untouched."""


class ResumeMismatch(InputError):
    """``--resume`` found parts written for a different input, model or chunk size."""


class InvalidModelError(MmscoreError, ValueError):
    """A model directory that mmscore cannot use (missing files, wrong labels, unknown encoder)."""


class EncoderUnavailable(MmscoreError, ValueError):
    """An encoder named by a spec (registered name, keras-hub preset, preset folder) cannot be found or loaded."""


class ScoringError(MmscoreError, RuntimeError):
    """Scoring stopped for a reason that is not the input file's (a failing stage, the model step)."""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message`` (just the type when there is no message), at most ``limit`` chars."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:limit]}" if lines else type(exc).__name__


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of ``exc``'s message (its type name when it has none)."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__


def require_folder(path, option: str) -> None:
    """:class:`InputError` when a folder option (``--image-root``, ``--photos``...) names something else."""
    from pathlib import Path

    if path is not None and not Path(path).is_dir():
        raise InputError(f"{path}: {option} must be a folder")

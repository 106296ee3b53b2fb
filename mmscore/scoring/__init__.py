"""Scoring: chunks of rows in, labelled rows out, by one of the engines below.

- :mod:`~mmscore.scoring.chunks`: one chunk -> the same rows with the output columns (every engine's unit);
- :mod:`~mmscore.scoring.run`: a run's options, tallies, resume key and facts (shared by every engine);
- :mod:`~mmscore.scoring.local_engine`: this process, chunk by chunk, the next prepared while one is scored;
- :mod:`~mmscore.scoring.ray_engine`: the same chunks on a Ray cluster (optional extra ``mmscore[ray]``).

An engine is a module with ``score(job, on_progress) -> RunSummary`` over an :class:`EngineJob`; adding one
is a new module plus one line in :data:`ENGINES`.
"""

from importlib import import_module

# engine name -> the module that runs it (imported on use: Ray loads only for --engine ray)
ENGINES = {"local": "mmscore.scoring.local_engine", "ray": "mmscore.scoring.ray_engine"}


def engine(name: str):
    """The engine module called ``name`` (its ``score(job, on_progress)`` runs a checked run)."""
    return import_module(ENGINES[name])

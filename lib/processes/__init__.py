"""Diffusion / degradation processes behind one interface (see ``base.py``), and their registry.

    >>> from lib.processes import make_process
    >>> proc = make_process("edge_preserving", T=500)
"""
from __future__ import annotations

from typing import Dict, Type

from lib.processes.base import DiffusionProcess, StepOutput

PROCESSES: Dict[str, Type[DiffusionProcess]] = {}


def register(cls: Type[DiffusionProcess]) -> Type[DiffusionProcess]:
    """Class decorator: add a process to ``PROCESSES`` under ``cls.name``."""
    if cls.name in PROCESSES and PROCESSES[cls.name] is not cls:
        raise ValueError(f"process name {cls.name!r} registered twice")
    PROCESSES[cls.name] = cls
    return cls


def make_process(name: str, config=None, **overrides) -> DiffusionProcess:
    """Build a registered process by name, from a config object and/or field overrides."""
    if name not in PROCESSES:
        raise ValueError(f"unknown process {name!r}; valid names: {sorted(PROCESSES)}")
    return PROCESSES[name](config, **overrides)


def process_from_dict(d: dict) -> DiffusionProcess:
    """Rebuild a process from ``config_dict()`` output (as stored in checkpoints)."""
    d = dict(d)
    name = d.pop("process")
    cls = PROCESSES.get(name)
    if cls is None:
        raise ValueError(f"unknown process {name!r}; valid names: {sorted(PROCESSES)}")
    import dataclasses
    fields = {f.name for f in dataclasses.fields(cls.config_cls)}
    unknown = sorted(set(d) - fields)
    if unknown:   # refused, as make_process refuses them: a stored field we cannot honour is not dropped silently
        raise ValueError(f"{name}: unknown config field(s) {unknown} (stored by another version of "
                         f"lib/processes?); valid fields: {sorted(fields)}")
    return cls(cls.config_cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}))


# Importing the process modules registers them.
from lib.processes import bndm, cold, ddpm, edge_preserving, ihdm  # noqa: E402,F401

__all__ = ["DiffusionProcess", "StepOutput", "PROCESSES", "register", "make_process", "process_from_dict"]

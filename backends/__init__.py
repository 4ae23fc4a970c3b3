"""Backends by name. Each turns a fixed architecture (:class:`archlang.ir.graph.Graph`) into a
framework module object (``build``) and into standalone source text (``emit``).

A backend's framework is imported only when the backend is asked for, so ``import archlang``
never imports torch or jax.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from archlang.errors import ArchError

BACKENDS: tuple[str, ...] = ("torch", "flax")

# what to install when a backend's framework is missing
_EXTRAS = {"torch": "torch", "flax": "jax"}


@dataclass(frozen=True, slots=True)
class Backend:
    name: str
    build: Callable[[Any], Any]  # Graph -> module object
    emit: Callable[[Any], str]  # Graph -> Python source


def get_backend(name: str) -> Backend:
    """The backend called `name`; raises ArchError for an unknown or uninstalled one."""
    if name not in BACKENDS:
        raise ArchError(f"unknown backend '{name}'; the backends are {', '.join(BACKENDS)}")
    try:
        module = importlib.import_module(f"archlang.backends.{name}")
    except ImportError as e:
        raise ArchError(
            f"the {name} backend cannot be loaded ({e}); "
            f"install it with `pip install 'archlang[{_EXTRAS[name]}]'`") from e
    return Backend(name, module.build, module.emit)

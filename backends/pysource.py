"""Writing Python source: the pieces both backends' emitters share.

Generated models name their submodules by the spec's paths (`self.layer1["0"].conv1`), pass
constructor arguments as literals, and sometimes pass a name or an expression verbatim.
"""

from __future__ import annotations

import json
import keyword
import math
from dataclasses import dataclass
from typing import Any


class Verbatim(str):
    """Source text written as is (a class or a variable name), not as a string literal."""


@dataclass(frozen=True, slots=True)
class ModuleRef:
    """The module of another layer, passed as an argument (the embedding a head is tied to)."""

    path: str


def is_attribute_name(segment: str) -> bool:
    """Whether generated code can write ``.segment`` (else it indexes ``["segment"]``)."""
    return segment.isidentifier() and not keyword.iskeyword(segment)


def python_str(text: str) -> str:
    # JSON's escapes are valid in Python strings, and its double quotes match common style
    return json.dumps(text)


def access(path: str) -> str:
    """The expression for the module at `path`: ``self.layer1["0"].conv1``."""
    first, *rest = path.split(".")
    expr = f"self.{first}" if is_attribute_name(first) else f"getattr(self, {python_str(first)})"
    for part in rest:
        expr += f".{part}" if is_attribute_name(part) else f"[{python_str(part)}]"
    return expr


def assign(path: str, value: str, set_root: str) -> str:
    """The statement storing `value` at `path`; `set_root` is the framework's way to set a
    root-level child whose name is not an identifier ("self.add_module", "setattr")."""
    parent, _, name = path.rpartition(".")
    if not parent:
        if is_attribute_name(name):
            return f"self.{name} = {value}"
        self_arg = "" if set_root.startswith("self.") else "self, "
        return f"{set_root}({self_arg}{python_str(name)}, {value})"
    key = f".{name}" if is_attribute_name(name) else f"[{python_str(name)}]"
    return f"{access(parent)}{key} = {value}"


def render_call(target: str, args: tuple[Any, ...], kwargs: tuple[tuple[str, Any], ...]) -> str:
    parts = [literal(v) for v in args] + [f"{k}={literal(v)}" for k, v in kwargs]
    return f"{target}({', '.join(parts)})"


def literal(value: Any) -> str:
    if isinstance(value, Verbatim):
        return str(value)
    if isinstance(value, ModuleRef):
        return access(value.path)
    if isinstance(value, str):
        return python_str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return f'float("{value}")'
    if isinstance(value, tuple):
        inner = ", ".join(literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    raise TypeError(f"cannot write {value!r} as Python source")

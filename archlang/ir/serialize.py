"""JSON (de)serialisation of the Space IR: every frozen node as {"node": class, ...fields}.

Spans are left out (they are not part of a node's identity); a round trip gives an equal space.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from archlang.ir import expr as E
from archlang.ir import space as S

FORMAT = "archlang.space/1"

_CLASSES: dict[str, type] = {
    cls.__name__: cls
    for module in (E, S)
    for cls in vars(module).values()
    if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == module.__name__
}


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"node": type(value).__name__}
        for f in dataclasses.fields(value):
            if f.name != "span":
                out[f.name] = _encode(getattr(value, f.name))
        return out
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot serialise {type(value).__name__}")  # pragma: no cover


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        cls = _CLASSES[value["node"]]
        return cls(**{k: _decode(v) for k, v in value.items() if k != "node"})
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    return value


def space_to_json(space: S.Space, indent: int | None = None) -> str:
    return json.dumps({"format": FORMAT, "space": _encode(space)}, indent=indent)


def space_from_json(text: str) -> S.Space:
    data = json.loads(text)
    if data.get("format") != FORMAT:
        raise ValueError(f"not an archlang space (format {data.get('format')!r})")
    return _decode(data["space"])

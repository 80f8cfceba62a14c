"""JSON encoding in one place, so every result is written and served byte-for-byte the same way.

Floats keep their shortest round-trip repr (`33.0`, never `33`); NaN and Infinity are refused
rather than written as invalid JSON. Items are separated by `", "`, keys from values by `": "`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(", ", ": "))


@dataclass(frozen=True, slots=True)
class Encoded:
    """A document already written by these rules: `dumps` hands its bytes on as they are.

    So that a runner may return its answer encoded (`Registry.encode`, lestats/data/json_text.py).
    """

    data: bytes


def dumps(value: Any) -> bytes:  # noqa: ANN401 - any JSON-ready value
    """Encode a JSON-ready value (or pass an `Encoded` one on) as UTF-8 bytes."""
    if type(value) is Encoded:
        return value.data
    return _encoder.encode(value).encode()


def text(value: Any) -> str:  # noqa: ANN401 - any JSON-ready value
    """The JSON text of a value, as `dumps` writes it (for documents written piece by piece)."""
    return _encoder.encode(value)


def loads(data: bytes | str) -> Any:  # noqa: ANN401 - whatever the document holds
    """Decode a JSON document."""
    return json.loads(data)

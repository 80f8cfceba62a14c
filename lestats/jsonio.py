"""JSON encoding in one place, so every result is written and served byte-for-byte the same way.

Floats keep their shortest round-trip repr (`33.0`, never `33`); NaN and Infinity are refused
rather than written as invalid JSON.
"""

from __future__ import annotations

import json
from typing import Any

_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(", ", ": "))


def dumps(value: Any) -> bytes:  # noqa: ANN401 - any JSON-ready value
    """Encode a JSON-ready value as UTF-8 bytes."""
    return _encoder.encode(value).encode()


def loads(data: bytes | str) -> Any:  # noqa: ANN401 - whatever the document holds
    """Decode a JSON document."""
    return json.loads(data)

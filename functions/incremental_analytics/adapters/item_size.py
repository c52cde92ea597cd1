"""An item's size as DynamoDB counts it, from its attribute JSON: what its 400 KB limit applies to and what a write
is billed by (1 write unit per KB, rounded up).

"Item sizes and formats" (Amazon DynamoDB Developer Guide): an attribute is its name's UTF-8 bytes plus its value's
size; a string its UTF-8 bytes; a binary its bytes; a number 1 byte per two significant digits plus 1; a boolean or
null 1 byte; a list or map 3 bytes plus, per element, 1 byte (and a map element's name) and the element's size.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from typing import Any


def value_size(value: Mapping[str, Any]) -> int:
    """The size of one attribute value in DynamoDB's attribute JSON (`{"S": ...}`, `{"N": ...}`, ...)."""
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        return _number_size(data)
    if kind == "B":
        return len(data) if isinstance(data, bytes) else len(base64.b64decode(data))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + value_size(element) for element in data)
    if kind == "M":
        return 3 + sum(1 + len(name.encode()) + value_size(element) for name, element in data.items())
    if kind == "SS":
        return sum(len(element.encode()) for element in data)
    if kind == "NS":
        return sum(_number_size(element) for element in data)
    if kind == "BS":
        return sum(len(element) if isinstance(element, bytes) else len(base64.b64decode(element)) for element in data)
    raise ValueError(f"not a DynamoDB attribute value: {kind}")


def item_size(item: Mapping[str, Any] | None) -> int:
    """An item's size in bytes as DynamoDB counts it (its attributes' names and values)."""
    return sum(len(name.encode()) + value_size(value) for name, value in (item or {}).items())


def _number_size(text: str) -> int:
    mantissa = text.lstrip("-").split("e")[0].split("E")[0]
    digits = mantissa.replace(".", "").strip("0") or "0"
    return math.ceil(len(digits) / 2) + 1

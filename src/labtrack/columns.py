"""Packed metric columns: how ``runs/log-series`` carries many numbers cheaply.

A column of a series is a JSON array, or a string of base64 holding
little-endian int64 (``"q"``: steps, timestamps) or float64 (``"d"``: values).
Packing and unpacking run in C; parsing a million numbers out of JSON text
would cost the server as much as storing them.  NaN and ±Inf travel as they are.

An unpacked column is a list whose type says what it holds (``Int64Column``,
``Float64Column``): every item is an int64 or a float by construction, so the
store's checks skip the per-item type and range scans that a JSON array needs.
"""

from __future__ import annotations

import base64
import binascii
import sys
from array import array
from collections.abc import Iterable
from typing import Any

STEP, VALUE = "q", "d"


class Int64Column(list):  # type: ignore[type-arg]
    """A column unpacked from int64: every item is an ``int`` within int64."""

    __slots__ = ()


class Float64Column(list):  # type: ignore[type-arg]
    """A column unpacked from float64: every item is a ``float`` (NaN and ±Inf included)."""

    __slots__ = ()


_TYPED = {STEP: Int64Column, VALUE: Float64Column}


def pack(typecode: str, column: Iterable[Any]) -> str:
    """The base64 text of a column of ints (``"q"``) or floats (``"d"``)."""
    packed = array(typecode, column)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def unpack(typecode: str, text: str) -> list[Any]:
    """The numbers of a packed column; ValueError if ``text`` is not one."""
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as e:
        raise ValueError(str(e)) from None
    column = array(typecode)
    column.frombytes(raw)  # ValueError unless a whole number of items
    if sys.byteorder != "little":
        column.byteswap()
    return column.tolist()


def last(value: Any, typecode: str) -> Any:
    """A column's last item as a column of one (empty if it has none), a packed column decoded
    only at its end; ValueError if packed text does not end in a whole item."""
    if not isinstance(value, str):
        return value[-1:]
    padding = len(value) - len(value.rstrip("="))
    size = len(value) // 4 * 3 - padding  # the bytes the text holds
    if len(value) % 4 or size % 8:
        raise ValueError("not base64 of whole 8-byte items")
    if not size:
        return _TYPED[typecode]()
    first = size - 8  # where the last item starts; base64 decodes 3 bytes from 4 characters
    raw = base64.b64decode(value[first // 3 * 4:], validate=True)[first % 3:]
    item = array(typecode)
    item.frombytes(raw)
    if sys.byteorder != "little":
        item.byteswap()
    return _TYPED[typecode](item.tolist())


def column(value: Any, typecode: str) -> Any:
    """A column as sent: unpacked if it is packed text (a typed column), else as it is
    (the checks judge it)."""
    return _TYPED[typecode](unpack(typecode, value)) if isinstance(value, str) else value

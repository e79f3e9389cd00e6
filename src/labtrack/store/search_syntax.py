"""The text of MLflow's search grammar: filter strings and order_by entries, parsed.

``parse_filter`` splits ``metrics.rmse < 1 AND params.`lr` = '0.1'`` into
``Clause``s and ``parse_order`` reads ``metrics.rmse DESC`` (or a logged-model
order dict) into an ``OrderKey``; only the grammar is checked here.  What a
clause means for each kind of object, and its SQL, is :mod:`search`'s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

from labtrack.errors import InvalidParameterValue

Scalar = Union[str, int, float]
Value = Union[Scalar, tuple[Scalar, ...], None]

_ENTITIES = {
    "metric": "metric", "metrics": "metric",
    "param": "param", "params": "param", "parameter": "param", "parameters": "param",
    "tag": "tag", "tags": "tag",
    "attribute": "attribute", "attributes": "attribute", "attr": "attribute", "run": "attribute",
    "dataset": "dataset", "datasets": "dataset",
}
PLURAL = {"metric": "metrics", "param": "params", "tag": "tags", "dataset": "datasets"}
# Bare keys may hold the characters metric names commonly use (train/loss, a-b, ns:k).
_BARE = re.compile(r"[A-Za-z_][\w.\-/:]*")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
INTEGER = re.compile(r"[+-]?\d+")
_SYMBOL_OPS = ("!=", ">=", "<=", "=", ">", "<")
NUMERIC_OPS = frozenset(_SYMBOL_OPS)
TEXT_OPS = frozenset({"=", "!=", "LIKE", "ILIKE"})
LIST_OPS = frozenset({"IN", "NOT IN"})
NULL_OPS = frozenset({"IS NULL", "IS NOT NULL"})


# labtrack's extension: ``metrics.<key>.min|max|last`` is a summary of the metric's whole
# history (min and max ignore NaN; last is the latest value, as plain ``metrics.<key>``).
# A bare key whose last dotted part is one of these names the summary of the key before it
# (``metrics.loss.min``, ``metrics.val.loss.max``); a metric whose own name ends so is
# written in backquotes (metrics.`loss.min`), and backquotes followed by .min|.max|.last
# name a summary of a key with dots (metrics.`val.loss`.min).  Any other dotted key keeps
# MLflow's meaning: ``metrics.val.loss`` is the metric "val.loss".
METRIC_STATS = ("min", "max", "last")
_STAT_AFTER_QUOTE = re.compile(r"\.(min|max|last)(?![\w.\-/:])", re.IGNORECASE)


@dataclass(frozen=True)
class Clause:
    """One parsed ``<entity>.<key> <op> <value>``; ``text`` is its source, for messages."""

    entity: str  # attribute, metric, param, tag or dataset
    key: str
    op: str  # upper case: "=", "NOT IN", "IS NULL", ...
    value: Value
    text: str
    stat: str | None = None  # metrics only: "min", "max" or "last" (see METRIC_STATS)

    def fail(self, message: str) -> InvalidParameterValue:
        return InvalidParameterValue(f"Invalid filter clause {self.text!r}: {message}")


class _Scanner:
    """A cursor over one filter or order_by string; every method skips leading blanks."""

    def __init__(self, text: str, label: str, entities: Mapping[str, str] | None = None) -> None:
        self.text, self.label, self.pos = text, label, 0
        self.entities = _ENTITIES if entities is None else entities  # traces name others

    def fail(self, message: str) -> InvalidParameterValue:
        where = f"at position {self.pos}" if self.pos < len(self.text) else "at the end"
        return InvalidParameterValue(f"Invalid {self.label} {self.text!r}: {message} ({where})")

    def peek(self) -> str:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1
        return self.text[self.pos:self.pos + 1]

    def at_end(self) -> bool:
        return self.peek() == ""

    def keyword(self, *words: str) -> str | None:
        """Consume the next bare word if it is one of ``words`` (any case)."""
        self.peek()
        match = _BARE.match(self.text, self.pos)
        if match and match.group().upper() in words:
            self.pos = match.end()
            return match.group().upper()
        return None

    def quoted(self) -> str:
        """Consume a '...', "..." or `...` literal."""
        quote, start = self.text[self.pos], self.pos
        self.pos += 1
        parts = []
        while True:
            end = self.text.find(quote, self.pos)
            if end < 0:
                self.pos = start
                raise self.fail(f"unclosed {quote} quote")
            parts.append(self.text[self.pos:end])
            self.pos = end + 1
            if not self.text.startswith(quote, self.pos):
                return "".join(parts)
            parts.append(quote)  # a doubled quote stands for one
            self.pos += 1

    def identifier(self) -> tuple[str, str]:
        """Consume ``[entity.]key`` with the key bare, `backticked` or "quoted"."""
        if self.peek() in ("`", '"'):
            return "attribute", self._key(self.quoted())
        match = _BARE.match(self.text, self.pos)
        if not match:
            raise self.fail("expected an identifier such as metrics.rmse or tags.`a b`")
        start, word = self.pos, match.group()
        self.pos = match.end()
        if word.endswith(".") and self.text[self.pos:self.pos + 1] in ("`", '"'):
            prefix, key = word[:-1], self._key(self.quoted())
        else:
            prefix, dot, key = word.partition(".")
            if not dot:
                return "attribute", word
            key = self._key(key)
        entity = self.entities.get(prefix.lower())
        if entity is None:
            self.pos = start
            raise self.fail(f"unknown entity {prefix!r}; expected one of "
                            + ", ".join(sorted(set(self.entities))))
        return entity, key

    def metric_identifier(self) -> tuple[str, str, str | None]:
        """``identifier()`` plus a metric's summary suffix (see METRIC_STATS): (entity, key, stat)."""
        entity, key = self.identifier()
        if entity != "metric":
            return entity, key, None
        if self.text[self.pos - 1:self.pos] in ("`", '"'):
            match = _STAT_AFTER_QUOTE.match(self.text, self.pos)
            if match:
                self.pos = match.end()
                return entity, key, match.group(1).lower()
            return entity, key, None
        head, dot, last = key.rpartition(".")
        if dot and head and last.lower() in METRIC_STATS:
            return entity, head, last.lower()
        return entity, key, None

    def _key(self, key: str) -> str:
        if not key.strip():
            raise self.fail("empty key")
        return key

    def operator(self) -> str:
        word = self.keyword("IS", "NOT", "IN", "LIKE", "ILIKE")
        if word == "IS":
            negated = self.keyword("NOT")
            if not self.keyword("NULL"):
                raise self.fail("expected NULL after IS" + (" NOT" if negated else ""))
            return "IS NOT NULL" if negated else "IS NULL"
        if word == "NOT":
            if not self.keyword("IN"):
                raise self.fail("expected IN after NOT")
            return "NOT IN"
        if word:
            return word
        self.peek()
        for op in _SYMBOL_OPS:
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return op
        raise self.fail("expected an operator: = != < <= > >= LIKE ILIKE IN NOT IN IS [NOT] NULL")

    def value(self) -> Scalar | tuple[Scalar, ...]:
        ch = self.peek()
        if ch in ("'", '"'):
            return self.quoted()
        if ch == "(":
            return self._list()
        match = _NUMBER.match(self.text, self.pos)
        if match and not re.match(r"[\w.]", self.text[match.end():match.end() + 1]):
            self.pos = match.end()
            text = match.group()
            return int(text) if INTEGER.fullmatch(text) else float(text)
        raise self.fail("expected a value: a quoted string, a number or a ('list')")

    def _list(self) -> tuple[Scalar, ...]:
        self.pos += 1  # the "("
        items: list[Scalar] = []
        while True:
            if self.peek() == ")" and items:  # allows a trailing comma, as in Python
                self.pos += 1
                return tuple(items)
            if self.peek() in ("(", ")"):
                raise self.fail("expected a quoted string or a number in the list")
            items.append(self.value())  # type: ignore[arg-type]  # "(" excluded above
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != ")":
                raise self.fail("expected ',' or ')' in the list")


MAX_CLAUSES = 200  # AND-ed clauses in one filter; far beyond what a person writes


def parse_filter(text: str | None, entities: Mapping[str, str] | None = None) -> list[Clause]:
    """Split a filter string into clauses; only the grammar is checked here.

    ``entities`` maps the prefixes a kind of object knows (``metrics.``...) to
    entity names; runs' by default.
    """
    if text is None or not str(text).strip():
        return []
    scan = _Scanner(str(text), "filter", entities)
    clauses = []
    while True:
        start = scan.pos
        entity, key, stat = scan.metric_identifier()
        op = scan.operator()
        value = None if op in NULL_OPS else scan.value()
        clauses.append(Clause(entity, key, op, value, scan.text[start:scan.pos].strip(), stat))
        if len(clauses) > MAX_CLAUSES:
            # 3,000 ANDs took 7 s to compile and then failed in SQLAlchemy (issue #19).
            raise InvalidParameterValue(f"Invalid filter: more than {MAX_CLAUSES} clauses")
        if scan.at_end():
            return clauses
        if scan.keyword("OR"):
            raise scan.fail("OR is not supported; join clauses with AND")
        if not scan.keyword("AND"):
            raise scan.fail("expected AND between clauses")
        if scan.at_end():
            raise scan.fail("expected a clause after AND")


@dataclass(frozen=True)
class OrderKey:
    entity: str
    key: str
    ascending: bool
    dataset_name: str | None = None
    dataset_digest: str | None = None
    stat: str | None = None  # metrics only: "min", "max" or "last" (see METRIC_STATS)


def parse_order(entry: Any, entities: Mapping[str, str] | None = None) -> OrderKey:
    """Parse ``"<ident> [ASC|DESC]"`` or a logged-model ``{"field_name", "ascending", ...}``."""
    if isinstance(entry, Mapping):
        ascending = entry.get("ascending", True)
        if not isinstance(ascending, bool):
            raise InvalidParameterValue(f"Invalid order_by {entry!r}: ascending must be a boolean")
        scan = _Scanner(str(entry.get("field_name") or ""), "order_by field_name")
        entity, key = scan.identifier()
        if not scan.at_end():
            raise scan.fail("unexpected text after the field name")
        return OrderKey(entity, key, ascending, entry.get("dataset_name") or None,
                         entry.get("dataset_digest") or None)
    if not isinstance(entry, str):
        raise InvalidParameterValue(f"Invalid order_by clause {entry!r}: expected a string")
    scan = _Scanner(entry, "order_by clause", entities)
    entity, key, stat = scan.metric_identifier()
    direction = scan.keyword("ASC", "DESC")
    if not scan.at_end():
        raise scan.fail("expected ASC or DESC" if direction is None else "unexpected text")
    return OrderKey(entity, key, direction != "DESC", stat=stat)

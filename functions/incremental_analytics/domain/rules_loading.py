"""Loading rules files: JSON, YAML and the 2021 Honeycode column layout (CSV), validated all at once.

Every problem is reported together, each as `rules[i].field: what is wrong` (JSON, YAML) or
`row N, column C: what is wrong` (CSV, N as a spreadsheet numbers rows: the header is row 1).
When there is any problem nothing is returned: a rules file is applied whole or not at all.

Whatever a file holds (any bytes, any size, any nesting, YAML aliases), the answer is the rules or a RulesError
with the list of problems, in bounded time and memory: the limits (rules_validation.py) are checked before the
work they bound.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError

from incremental_analytics.domain.honeycode import load_honeycode_csv
from incremental_analytics.domain.rules import Rule
from incremental_analytics.domain.rules_validation import (
    DELETE_ALL_HINT,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_YAML_NODES,
    NO_RULES,
    RulesError,
    json_path,
    key_shown,
    max_rules,
    shown,
    validate_rule_dicts,
)

# RulesError is what loading raises: callers take it from here with the loaders.
__all__ = ["RulesError", "decode", "load_json", "load_rules_file", "load_yaml", "rules_from_document"]

# -- public entry points ---------------------------------------------------------------------------------------


def load_rules_file(name: str, content: bytes | str, *, size: int | None = None) -> list[Rule]:
    """Load a rules file by its name's extension: .csv (Honeycode layout), .yaml/.yml, else JSON.

    `size` is the file's size in bytes when `content` holds only its beginning (a reader that stops after
    MAX_FILE_BYTES + 1 bytes); the file is refused if either is over the limit.
    """
    total = max(size or 0, len(content))
    if total > MAX_FILE_BYTES:
        raise RulesError([f"the file is {total:,} bytes; a rules file may hold at most {MAX_FILE_BYTES:,} bytes"])
    text = content if isinstance(content, str) else decode(content)
    if "\x00" in text:
        raise RulesError(["the file holds NUL characters: it is not UTF-8 text (UTF-16 needs its byte-order mark)"])
    if not text.strip():
        raise RulesError([f"{NO_RULES}: the file is empty"])
    lowered = name.lower()
    if lowered.endswith(".csv"):
        return load_honeycode_csv(text)
    if lowered.endswith((".yaml", ".yml")):
        return load_yaml(text)
    return load_json(text)


_BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)


def decode(content: bytes) -> str:
    """UTF-8 (with or without a byte-order mark), or UTF-16/32 with one (Excel's "Unicode text").

    Nothing is guessed: other encodings (Windows-1252, Latin-1, ...) are refused, since a wrong guess would
    silently turn an event name into another one."""
    encoding, label = "utf-8", "UTF-8"
    for mark, codec, name in _BYTE_ORDER_MARKS:
        if content.startswith(mark):
            encoding, label = codec, name
            break
    try:
        return content.decode(encoding)
    except UnicodeDecodeError as error:
        start = error.start
        line = content.count(b"\n", 0, start) + 1
        column = start - (content.rfind(b"\n", 0, start) + 1) + 1
        raise RulesError(
            [
                f"the file is not {label} text: byte 0x{content[start]:02X} at line {line}, column {column} "
                f"cannot be read (save the file as UTF-8, e.g. a spreadsheet's 'CSV UTF-8')"
            ]
        ) from None


def load_json(text: str) -> list[Rule]:
    depth = _json_depth(text)
    if depth > MAX_DEPTH:
        raise RulesError([f"not valid rules: nested {depth} levels deep, more than {MAX_DEPTH}"])
    try:
        document = json.loads(text, parse_float=Decimal, parse_int=_json_int, parse_constant=_json_constant)
    except json.JSONDecodeError as error:
        raise RulesError([f"line {error.lineno}, column {error.colno}: not valid JSON ({error.msg})"]) from None
    except _Refused as error:
        raise RulesError([f"not valid JSON: {error}"]) from None
    return rules_from_document(document)


class _Refused(ValueError):
    pass


_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_LONGEST_INTEGER = 50  # digits of a JSON integer literal; the contract's largest takes 38


def _json_depth(text: str) -> int:
    """How deep the brackets nest, outside strings (the parser recurses per level: check before parsing)."""
    depth = deepest = 0
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in ("]", "}"):
            depth -= 1
    return deepest


def _json_int(literal: str) -> int:
    if len(literal.lstrip("-")) > _LONGEST_INTEGER:
        raise _Refused(f"a whole number of {len(literal.lstrip('-')):,} digits")
    return int(literal)


def _json_constant(literal: str) -> Any:
    raise _Refused(f"{literal} is not a JSON number")


def load_yaml(text: str) -> list[Rule]:
    try:
        document = yaml.load(text, Loader=_RulesYamlLoader)  # a SafeLoader, bounded (below)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise RulesError([f"not valid YAML: {error.problem or error.context}{where}"]) from None
    except (yaml.YAMLError, ValueError) as error:  # ValueError: a whole number of over 4,300 digits
        raise RulesError([f"not valid YAML: {error}"]) from None
    return rules_from_document(document)


_YAML_INT = "tag:yaml.org,2002:int"
_YAML_FLOAT = "tag:yaml.org,2002:float"
_YAML_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_INTEGER_TEXT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_DECIMAL_TEXT = re.compile(r"[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(?:\.[0-9]*)?[eE][-+]?[0-9]+)")


class _RulesYamlLoader(yaml.SafeLoader):
    """YAML's safe loader, bounded, with numbers read as the JSON numbers they look like.

    - Aliases cannot blow up: the values the document expands to are counted as its nodes are composed, each
      alias as the whole node it repeats, and composing stops as soon as they pass MAX_YAML_NODES (a "billion
      laughs" is refused at its sixth level); nesting is limited to MAX_DEPTH.
    - Numbers are plain decimals, read exactly (floats as Decimal): YAML 1.1's `1_000`, `0x1F`, `0755` and
      `1:30` are text, so a target written so is reported, not read as another number.
    - Dates stay the text the author wrote (2021-01-01), checked by the contract like any other date.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._expanded: dict[int, int] = {}  # id(node) -> the values it expands to, once composed
        self._values = 0  # the values of the document so far, aliases expanded
        self._depth = 0

    def _mark(self) -> Any:
        return self.peek_event().start_mark  # type: ignore[no-untyped-call]

    def _count(self, values: int, mark: Any) -> None:
        self._values += values
        if self._values > MAX_YAML_NODES:
            problem = f"more than {MAX_YAML_NODES:,} values, counting what each alias repeats"
            raise ComposerError(None, None, problem, mark)

    def compose_node(self, parent: Any, index: Any) -> Any:
        mark = self._mark()
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            if id(node) not in self._expanded:
                raise ComposerError(None, None, "an alias refers to a node that contains it", mark)
            self._count(self._expanded[id(node)], mark)
            return node
        self._count(1, mark)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep", mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if isinstance(node, yaml.SequenceNode):
            children: Iterable[Any] = node.value
        elif isinstance(node, yaml.MappingNode):
            children = (child for pair in node.value for child in pair)
        else:
            children = ()
        self._expanded[id(node)] = 1 + sum(self._expanded[id(child)] for child in children)
        return node

    def construct_plain_int(self, node: Any) -> int:
        text = self.construct_scalar(node)
        if not _INTEGER_TEXT.fullmatch(text) or len(text.lstrip("+-")) > _LONGEST_INTEGER:
            raise ConstructorError(None, None, f"{shown(text)} is not a whole number", node.start_mark)
        return int(text)

    def construct_exact_decimal(self, node: Any) -> Decimal:
        text = self.construct_scalar(node)
        if not _DECIMAL_TEXT.fullmatch(text):
            raise ConstructorError(None, None, f"{shown(text)} is not a number", node.start_mark)
        try:
            return Decimal(text)
        except InvalidOperation:  # an exponent beyond what a decimal can hold
            raise ConstructorError(None, None, f"{shown(text)} is not a number", node.start_mark) from None


_RulesYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag not in (_YAML_INT, _YAML_FLOAT, _YAML_TIMESTAMP)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_RulesYamlLoader.add_implicit_resolver(_YAML_INT, re.compile(f"^{_INTEGER_TEXT.pattern}$"), list("-+0123456789"))
_RulesYamlLoader.add_implicit_resolver(_YAML_FLOAT, re.compile(f"^{_DECIMAL_TEXT.pattern}$"), list("-+.0123456789"))
_RulesYamlLoader.add_constructor(_YAML_INT, _RulesYamlLoader.construct_plain_int)
_RulesYamlLoader.add_constructor(_YAML_FLOAT, _RulesYamlLoader.construct_exact_decimal)


def rules_from_document(document: Any) -> list[Rule]:
    """A parsed JSON/YAML document: a list of rules, or `{"rules": [...], "allow_empty"?: bool}`."""
    allow_empty = False
    if isinstance(document, Mapping) and "rules" in document:
        problems = [
            f"{key_shown(key)}: unknown top-level key (expected 'rules' and 'allow_empty')"
            for key in document
            if key not in ("rules", "allow_empty")
        ]
        allow_empty = document.get("allow_empty", False)
        if not isinstance(allow_empty, bool):
            problems.append("allow_empty: must be true or false")
        if problems:
            raise RulesError(sorted(problems))
        document = document["rules"]
    if not isinstance(document, list):
        raise RulesError(["the file must hold a list of rules, or an object with a 'rules' list"])
    if len(document) > max_rules():
        raise RulesError([f"{len(document):,} rules; a rules file may hold at most {max_rules():,}"])
    if not document and not allow_empty:
        raise RulesError([f"{NO_RULES}: the list of rules is empty ({DELETE_ALL_HINT})"])
    by_index = validate_rule_dicts(document)
    problems = [f"rules[{index}]{json_path(p.path)}: {p.message}" for index, found in by_index for p in found]
    if problems:
        raise RulesError(problems)
    return [Rule.from_dict(entry) for entry in document]

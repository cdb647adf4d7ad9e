"""A small JSON-schema validator and YAML helpers that keep line numbers.

The agent may not depend on ``jsonschema`` (cloud-init's import of it alone costs ~80 ms), and
the modules only describe their keys with a small subset: ``type``, ``properties``,
``additionalProperties``, ``patternProperties``, ``items``, ``enum``, ``const``, ``oneOf``,
``anyOf``, ``allOf``, ``required``, ``minItems``, ``maxItems``, ``minimum``, ``maximum``,
``minLength``, ``pattern``. That subset is enough to say "users[0].groups: expected a list or a
string, got an integer (line 7)" which is what a person fixing user-data needs.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence

from metaboot.errors import UserDataError
from metaboot.guest import pyyaml
from metaboot.guest.records import dataclass

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any

PathT = tuple[str | int, ...]

_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


@dataclass(frozen=True)
class SchemaProblem:
    path: PathT
    message: str
    line: int | None = None

    @property
    def where(self) -> str:
        return format_path(self.path)

    def __str__(self) -> str:
        place = self.where or "(top level)"
        line = f" (line {self.line})" if self.line else ""
        return f"{place}: {self.message}{line}"


def format_path(path: PathT) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _matches_type(value: Any, wanted: str) -> bool:
    actual = type_of(value)
    if wanted == "number":
        return actual in ("integer", "number")
    return actual == wanted


def _describe(schema: Mapping[str, Any]) -> str:
    """A short human phrase for what a schema accepts ("a string", "one of 'a', 'b'")."""
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    if "const" in schema:
        return repr(schema["const"])
    kind = schema.get("type")
    if isinstance(kind, str):
        items = schema.get("items")
        if kind == "array" and isinstance(items, Mapping) and isinstance(items.get("type"), str):
            inner = str(_TYPE_NAMES.get(items["type"], items["type"]))
            return f"a list of {inner.removeprefix('an ').removeprefix('a ')}s"
        return _TYPE_NAMES.get(kind, kind)
    if isinstance(kind, list):
        return " or ".join(_TYPE_NAMES.get(str(k), str(k)) for k in kind)
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return " or ".join(d for d in (_describe(s) for s in schema[key]) if d)
    return "a valid value"


def validate(value: Any, schema: Mapping[str, Any], path: PathT = ()) -> list[SchemaProblem]:
    """Every problem of ``value`` against ``schema`` (empty list: valid)."""
    problems: list[SchemaProblem] = []
    _check(value, schema, path, problems)
    return problems


def _check(value: Any, schema: Mapping[str, Any], path: PathT, out: list[SchemaProblem]) -> None:
    if not schema:
        return
    kind = schema.get("type")
    if kind is not None:
        kinds = [kind] if isinstance(kind, str) else list(kind)
        if not any(_matches_type(value, k) for k in kinds):
            out.append(
                SchemaProblem(
                    path,
                    f"expected {_describe(schema)}, got {_summary(value)}",
                )
            )
            return
    if "enum" in schema and value not in schema["enum"]:
        out.append(SchemaProblem(path, f"expected {_describe(schema)}, got {value!r}"))
        return
    if "const" in schema and value != schema["const"]:
        out.append(SchemaProblem(path, f"expected {schema['const']!r}, got {value!r}"))
        return
    for key in ("oneOf", "anyOf"):
        if key in schema:
            _check_alternatives(value, schema[key], path, out, exactly_one=key == "oneOf")
    for sub in schema.get("allOf", ()):
        _check(value, sub, path, out)
    if isinstance(value, Mapping):
        _check_object(value, schema, path, out)
    elif isinstance(value, list | tuple):
        _check_array(value, schema, path, out)
    elif isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            out.append(SchemaProblem(path, f"must be at least {schema['minLength']} characters"))
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append(SchemaProblem(path, f"{value!r} does not match {schema['pattern']!r}"))
    elif type_of(value) in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            out.append(SchemaProblem(path, f"must be at least {schema['minimum']}"))
        if "maximum" in schema and value > schema["maximum"]:
            out.append(SchemaProblem(path, f"must be at most {schema['maximum']}"))


def _check_alternatives(
    value: Any,
    alternatives: Sequence[Mapping[str, Any]],
    path: PathT,
    out: list[SchemaProblem],
    *,
    exactly_one: bool,
) -> None:
    results = [validate(value, alt, path) for alt in alternatives]
    passing = sum(1 for r in results if not r)
    if passing == 1 or (passing > 1 and not exactly_one):
        return
    if passing > 1:
        # Ambiguity in a schema fragment is the schema's fault, not the user's.
        return
    # Report the errors of the alternative that got furthest: the one whose type matched.
    typed = [
        r
        for alt, r in zip(alternatives, results, strict=True)
        if not any(p.path == path and p.message.startswith("expected") for p in r)
    ]
    if len(typed) == 1:
        out.extend(typed[0])
        return
    described = " or ".join(d for d in (_describe(a) for a in alternatives) if d)
    out.append(SchemaProblem(path, f"expected {described}, got {_summary(value)}"))


def _summary(value: Any) -> str:
    kind = type_of(value)
    if kind in ("string", "integer", "number", "boolean"):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return _TYPE_NAMES.get(kind, kind)


def _check_object(
    value: Mapping[str, Any], schema: Mapping[str, Any], path: PathT, out: list[SchemaProblem]
) -> None:
    for name in schema.get("required", ()):
        if name not in value:
            out.append(SchemaProblem(path, f"missing required key {name!r}"))
    props: Mapping[str, Any] = schema.get("properties", {})
    patterns: Mapping[str, Any] = schema.get("patternProperties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        sub_path = (*path, str(key))
        if key in props:
            _check(item, props[key], sub_path, out)
            continue
        matched = False
        for pattern, sub in patterns.items():
            if re.search(pattern, str(key)):
                matched = True
                _check(item, sub, sub_path, out)
        if matched:
            continue
        if extra is False:
            out.append(SchemaProblem(sub_path, "unknown key"))
        elif isinstance(extra, Mapping):
            _check(item, extra, sub_path, out)


def _check_array(
    value: Sequence[Any], schema: Mapping[str, Any], path: PathT, out: list[SchemaProblem]
) -> None:
    if "minItems" in schema and len(value) < schema["minItems"]:
        out.append(SchemaProblem(path, f"must have at least {schema['minItems']} item(s)"))
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        out.append(SchemaProblem(path, f"must have at most {schema['maxItems']} item(s)"))
    items = schema.get("items")
    if isinstance(items, Mapping):
        for index, item in enumerate(value):
            _check(item, items, (*path, index), out)


# ---- YAML with line numbers ---------------------------------------------------------------


def load_yaml(text: str | bytes, what: str) -> Any:
    """Parse YAML safely; a syntax error becomes a UserDataError naming ``what``, the line and
    the column (1-based), and the parser's own explanation."""
    yaml = pyyaml.module()
    try:
        return yaml.load(text, Loader=pyyaml.safe_loader())  # a safe loader, C or Python
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = err.problem or err.context or "syntax error"
        raise UserDataError(f"{what}: invalid YAML{where}: {problem}") from None
    except yaml.YAMLError as err:
        raise UserDataError(f"{what}: invalid YAML: {err}") from None
    except (ValueError, RecursionError) as err:
        # PyYAML raises ValueError for e.g. an out-of-range timestamp.
        raise UserDataError(f"{what}: invalid YAML: {err}") from None


@functools.lru_cache(maxsize=4)
def line_map(text: str | bytes, first_line: int = 1) -> dict[PathT, int]:
    """Map each key path of a YAML document to the line it starts on (for error messages).

    Remembered per document (callers only read it): the runner asks where each top-level
    key of a part came from, and composing the document again for every key cost more than
    parsing it."""
    yaml = pyyaml.module()
    try:
        node = yaml.compose(text, Loader=pyyaml.safe_loader())
    except (yaml.YAMLError, ValueError, RecursionError):
        return {}
    lines: dict[PathT, int] = {}
    offset = first_line - 1

    def walk(current: Any, path: PathT, depth: int) -> None:
        if depth > 64:
            return
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                key = getattr(key_node, "value", None)
                if not isinstance(key, str):
                    continue
                sub = (*path, key)
                lines[sub] = key_node.start_mark.line + 1 + offset
                walk(value_node, sub, depth + 1)
        elif isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):
                sub = (*path, index)
                lines[sub] = item.start_mark.line + 1 + offset
                walk(item, sub, depth + 1)

    if node is not None:
        walk(node, (), 0)
    return lines


def locate(problems: list[SchemaProblem], lines: Mapping[PathT, int]) -> list[SchemaProblem]:
    """Attach the line of the deepest known prefix of each problem's path."""
    placed = []
    for problem in problems:
        line = None
        for cut in range(len(problem.path), 0, -1):
            line = lines.get(problem.path[:cut])
            if line is not None:
                break
        placed.append(SchemaProblem(problem.path, problem.message, line))
    return placed

"""Reading `params.yaml`: a hardened YAML reader (no aliases, merge keys or duplicate keys; size and
encoding checked) and the check against the schema in `pipeline/core/config.py`, with one line per
problem naming its key."""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from pipeline.core.config import Params
from pipeline.core.errors import ConfigError

PARAMS_PATH = Path("params.yaml")


MAX_PROBLEMS_SHOWN = 10  # a pasted file of the wrong kind would otherwise list thousands
MAX_VALUE_SHOWN = 60  # characters of a refused value echoed back


def locate(raw: object, location: tuple[int | str, ...]) -> str:
    """The dotted key of a problem: `download.sources.0.url`, as the user wrote it.

    Pydantic adds a union member's tag (`http`) to the location; it is not a key of the file, so
    it is left out. The last part is always kept: a missing key is named although it is absent.
    """
    parts: list[str] = []
    node = raw
    for position, part in enumerate(location):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif position < len(location) - 1:
            continue
        parts.append(str(part))
    return ".".join(parts)


def schema_classes(annotation: object) -> list[type[BaseModel]]:
    """The schema classes inside a field's type: through `Annotated`, `list`, unions."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [found for arg in typing.get_args(annotation) for found in schema_classes(arg)]


def model_at(location: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The schema class whose keys sit at `location` (a problem's location minus its key);
    pydantic puts a source's `kind` tag (`http`) in the location, which picks the class."""
    candidates: list[type[BaseModel]] = [Params]
    for part in location:
        if isinstance(part, int):
            continue  # an item of a list: the same item type
        tagged = [c for c in candidates if part in typing.get_args(kind_of(c))]
        if tagged:
            candidates = tagged
            continue
        fields = {f.alias or n: f for n, f in candidates[0].model_fields.items()}
        if part not in fields:
            return None
        candidates = schema_classes(fields[part].annotation)
        if not candidates:
            return None
    return candidates[0] if len(candidates) == 1 else None


def kind_of(model: type[BaseModel]) -> object:
    field = model.model_fields.get("kind")
    return field.annotation if field else None


def suggestion(location: tuple[int | str, ...]) -> str:
    """` (did you mean 'units'?)` for an unknown key close to a known one, else ``."""
    model = model_at(location[:-1])
    if model is None:
        return ""
    known = [field.alias or name for name, field in model.model_fields.items()]
    close = difflib.get_close_matches(str(location[-1]), known, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(known)})"


def received(value: object) -> str:
    """The value a user wrote, short enough for one line."""
    shown = repr(value)
    return shown if len(shown) <= MAX_VALUE_SHOWN else shown[: MAX_VALUE_SHOWN - 3] + "..."


def describe_problem(problem: Any, raw: object) -> str:
    """One problem as `train.units: Input should be a valid integer, got 'many'`."""
    location = locate(raw, problem["loc"])
    kind = problem["type"]
    message = problem["msg"].removeprefix("Value error, ")  # pydantic's prefix for our checks
    if kind == "union_tag_not_found":  # a source without `kind`
        kinds = "http, package_index or file"
        return f"{location}.kind: missing: every source names its kind ({kinds})"
    if kind == "extra_forbidden":
        message = "unknown key" + suggestion(problem["loc"])
    elif kind == "missing":
        message = "missing: every setting lives in params.yaml (the schema has no defaults)"
    elif "input" in problem and not isinstance(problem["input"], dict | list):
        message += f", got {received(problem['input'])}"
    return f"{location or '<top>'}: {message}"


def describe_validation_error(error: ValidationError, source: str, raw: object = None) -> str:
    """One line per problem, each naming the dotted key: `params.yaml: train.units: ...`."""
    problems = error.errors()
    lines = [f"{source}: {describe_problem(p, raw)}" for p in problems[:MAX_PROBLEMS_SHOWN]]
    if len(problems) > MAX_PROBLEMS_SHOWN:
        lines.append(f"and {len(problems) - MAX_PROBLEMS_SHOWN} more problems")
    return "; ".join(lines)


def parse_params(raw: object, source: str = "params.yaml") -> Params:
    """Check a parsed params mapping and return the frozen `Params`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, source, raw)) from None


MERGE_TAG = "tag:yaml.org,2002:merge"


MAX_PARAMS_BYTES = 1_000_000  # the real file is 2 KB; anything near this is the wrong file


UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class _PlainLoader(yaml.SafeLoader):
    """`yaml.safe_load` without anchors, aliases, merge keys or a key given twice in one mapping.

    Plain PyYAML keeps the last of two equal keys silently, so a second `encode:` block would hide
    the first. Aliases and merge keys can grow a few hundred bytes into gigabytes (each level of
    `<<: *a` multiplies the document), and a params file has no use for them.
    """

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases (&name, *name) are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                raise yaml.constructor.ConstructorError(
                    None, None, "merge keys (<<) are not allowed", key_node.start_mark
                )
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # a list or mapping as a key: PyYAML refuses it as unhashable
            key = self.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_params_text(path: Path) -> str:
    """The file's text: at most `MAX_PARAMS_BYTES`, UTF-8 only."""
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_PARAMS_BYTES + 1)  # +1: tells "exactly the cap" from "over"
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found (run from the repository root)") from None
    if len(data) > MAX_PARAMS_BYTES:
        raise ConfigError(f"{path}: over {MAX_PARAMS_BYTES} bytes; is this the params file?")
    if data.startswith(UTF16_BOMS):
        raise ConfigError(f"{path}: UTF-16 text (it starts with a byte-order mark); save as UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not valid UTF-8 at byte {error.start}; save as UTF-8") from None


def parse_yaml(text: str, name: str) -> object:
    """The document in `text`, read by `_PlainLoader` (a SafeLoader: no arbitrary objects)."""
    loader = _PlainLoader(text)  # refuses a NUL or other control character at once
    loader.name = name  # later errors say `in "params.yaml", line 3`
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_params(path: Path = PARAMS_PATH) -> Params:
    """Read and check `params.yaml` (or another params file)."""
    text = read_params_text(path)
    try:
        raw = parse_yaml(text, str(path))
    except yaml.YAMLError as error:
        where = " ".join(str(error).split())  # PyYAML's message spans lines, with a caret
        raise ConfigError(f"{path}: not valid YAML: {where}") from None
    except ValueError as error:  # a value PyYAML cannot convert: an int of 5000 digits, a bad date
        reason = str(error).partition(";")[0]  # drop Python's advice to raise its digit limit
        raise ConfigError(f"{path}: not valid YAML: {reason}") from None
    except RecursionError:  # `[[[[...` nested thousands deep
        raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None
    return parse_params(raw, str(path))

"""Read YAML while keeping each key's line, so config errors can name file, line and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import UserError


class YamlDoc:
    """Parsed data plus a map from key path (tuple) to 1-based line number."""

    def __init__(self, path: Path, data: Any, lines: dict[tuple, int]) -> None:
        self.path = path
        self.data = data
        self.lines = lines

    def line(self, keypath: tuple) -> int | None:
        # Fall back to the nearest enclosing key that has a line.
        while keypath:
            if keypath in self.lines:
                return self.lines[keypath]
            keypath = keypath[:-1]
        return self.lines.get((), None)

    def error(self, keypath: tuple, message: str) -> UserError:
        line = self.line(keypath)
        where = f"{self.path}" + (f", line {line}" if line else "")
        key = ".".join(str(k) for k in keypath)
        return UserError(f"{where}: {key + ': ' if key else ''}{message}")


class DuplicateKey(Exception):
    def __init__(self, keypath: tuple, line: int, first: int) -> None:
        super().__init__(keypath)
        self.keypath, self.line, self.first = keypath, line, first


def _convert(node: yaml.Node, path: tuple, lines: dict[tuple, int]) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if key in out:  # PyYAML keeps the last one silently; a user meant one of them
                raise DuplicateKey(path + (key,), key_node.start_mark.line + 1, lines[path + (key,)])
            lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _convert(value_node, path + (key,), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, path + (i,), lines) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.YAMLError("a key must be a plain value")
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def parse_yaml(text: str, path: Path) -> YamlDoc:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        lines: dict[tuple, int] = {}
        data = None if root is None else _convert(root, (), lines)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{where}: not valid YAML ({problem})") from None
    except DuplicateKey as dup:
        key = ".".join(str(k) for k in dup.keypath)
        raise UserError(f"{path}, line {dup.line}: {key}: duplicate key (first on line {dup.first})") from None
    return YamlDoc(path, data, lines)


def load_yaml(path: Path) -> YamlDoc:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    return parse_yaml(text, path)

"""Every option of the configuration models as a dotted path, and the paths a YAML file sets.

Sections count as options too (``alerting.receivers[].console`` has no keys of its own). Items
of a list are ``key[]``, values of a map ``key.<name>``; a model inside itself (a route's
``routes``) is one option, not an endless path.
"""

import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel


def option_paths(model: type[BaseModel], prefix: str = "", stack: tuple = ()) -> set[str]:
    """Every option (and section) of `model`."""
    paths = set()
    for key, annotation in _fields(model):
        path = f"{prefix}{key}"
        paths.add(path)
        sub, suffix = _nested(annotation)
        if sub is not None and sub not in (*stack, model):
            paths |= option_paths(sub, f"{path}{suffix}.", (*stack, model))
    return paths


def set_paths(model: type[BaseModel], data: Any, prefix: str = "", stack: tuple = ()) -> set[str]:
    """The options of `model` that `data` (parsed YAML) gives a value, null included."""
    if not isinstance(data, dict):
        return set()
    paths = set()
    for key, annotation in _fields(model):
        if key not in data:
            continue
        path = f"{prefix}{key}"
        paths.add(path)
        sub, suffix = _nested(annotation)
        if sub is None or sub in (*stack, model) or data[key] is None:
            continue
        for item in _items(data[key], suffix):
            paths |= set_paths(sub, item, f"{path}{suffix}.", (*stack, model))
    return paths


def _items(value: Any, suffix: str) -> list[Any]:
    """The values a nested model is given: the value itself, a list's items, a map's values."""
    if suffix == "[]":
        return list(value)
    if suffix == ".<name>":
        return list(value.values())
    return [value]


def _fields(model: type[BaseModel]) -> list[tuple[str, Any]]:
    return [(field.alias or name, field.annotation) for name, field in model.model_fields.items()]


def _nested(annotation: Any) -> tuple[type[BaseModel] | None, str]:
    """The model a field holds, and how: directly (""), as list items, as map values."""
    if get_origin(annotation) in (Union, types.UnionType):
        for arg in get_args(annotation):
            if arg is not type(None):
                return _nested(arg)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, ""
    args = get_args(annotation)
    if get_origin(annotation) is list and _is_model(args[0]):
        return args[0], "[]"
    if get_origin(annotation) is dict and _is_model(args[1]):
        return args[1], ".<name>"
    return None, ""


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)

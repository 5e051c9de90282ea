"""Finding, reading and validating the configuration file, with errors that name file and key."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_settings import SettingsError

from schemas.config import ENV_PREFIX, CollectorConfig

DEFAULT_PATH = Path("collector.yaml")


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and the key."""


def resolve_path(explicit: str | Path | None) -> tuple[Path, bool]:
    """The file to read and whether the user named it (``--config``, then the environment)."""
    if explicit:
        return Path(explicit), True
    if env := os.environ.get(f"{ENV_PREFIX}CONFIG"):
        return Path(env), True
    return DEFAULT_PATH, False


def load_config(explicit: str | Path | None = None) -> CollectorConfig:
    """Read the YAML file (optional unless named), apply the environment, validate."""
    path, named = resolve_path(explicit)
    data: Any = {}
    if path.exists():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(error)}") from None
        except OSError as error:
            raise ConfigError(f"{path}: cannot read: {error}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of options")
    elif named:
        raise ConfigError(f"{path}: no such configuration file")
    try:
        return CollectorConfig(**data)
    except ValidationError as error:
        raise ConfigError(describe_errors(error, path)) from None
    except SettingsError as error:  # an environment value that is not valid JSON
        names = ", ".join(sorted(n for n in os.environ if n.startswith(ENV_PREFIX))) or "none"
        raise ConfigError(f"environment ({names}): {error}; write lists and maps as JSON") from None


def describe_errors(error: ValidationError, path: Path) -> str:
    """One line per problem: where it is (file or environment variable), the key, the fix."""
    lines = [f"invalid configuration ({error.error_count()} problem(s)):"]
    for item in error.errors(include_url=False):
        loc = [str(part) for part in item["loc"]]
        key = ".".join(loc) or "(top level)"
        env_name = _env_source(loc)
        where = f"environment {env_name}" if env_name else str(path)
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown option" + _suggestion(loc)
        lines.append(f"  {where}: {key}: {message}")
    return "\n".join(lines)


def _env_source(loc: list[str]) -> str | None:
    """The environment variable that set this key or a section containing it, if any."""
    for end in range(len(loc), 0, -1):
        name = ENV_PREFIX + "__".join(loc[:end]).upper()
        if name in os.environ:
            return name
    return None


def _suggestion(loc: list[str]) -> str:
    model: type[BaseModel] | None = CollectorConfig
    for part in loc[:-1]:
        if model is None or part not in model.model_fields:
            continue  # a list index or a mapping key (e.g. a model name under overrides)
        annotation = model.model_fields.get(part)
        model = _model_of(annotation.annotation if annotation else None)
    if model is None:
        return ""
    close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if (found := _model_of(arg)) is not None:
            return found
    return None


def _yaml_problem(error: yaml.YAMLError) -> str:
    """Where and what, without PyYAML's quote of the line: it may hold a password."""
    if not isinstance(error, yaml.MarkedYAMLError) or error.problem_mark is None:
        return type(error).__name__
    mark = error.problem_mark
    context = f" ({error.context})" if error.context else ""
    return f"line {mark.line + 1}, column {mark.column + 1}: {error.problem}{context}"

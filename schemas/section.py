"""The settings every configuration section shares: strict keys, option docs from the code.

Each option's attribute docstring becomes its description (``use_attribute_docstrings``), which
``docs/generate.py`` turns into ``docs/configuration.md``: the docs live next to the field.
Each module declares its own two-line base class with this config, because ruff knows a
pydantic model (whose mutable defaults are copied, not shared) only by a ``BaseModel`` base
written in the same file.
"""

from __future__ import annotations

from pydantic import ConfigDict

SECTION_CONFIG = ConfigDict(
    extra="forbid", validate_default=True, populate_by_name=True, use_attribute_docstrings=True
)
"""Unknown keys are errors, defaults are validated too, aliased keys also take their name."""

"""Sphinx configuration of the documentation site.

Build (offline, warning-free), from the repository root:

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import importlib.metadata
import pathlib
import re
import sys

from docutils import nodes
from docutils.parsers.rst import Directive

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # document the checkout, also where the package is not installed

project = "dse_callback"
author = "dse_callback developers"
copyright = "the dse_callback developers (MIT licence)"
try:
    release = importlib.metadata.version("dse_callback")
except importlib.metadata.PackageNotFoundError:  # a checkout that was never pip-installed
    release = "unreleased"
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]

# MyST: $...$ and $$...$$ math, ::: fences, and a slug anchor on every heading up to level 3,
# so pages can link to each other's sections (`reproducing.md#toy-studies`).
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

# The docstrings write `name` for code and for names of the package: link when Sphinx knows
# the name, else show it as code (nitpicky mode stays off, Sphinx's default).
default_role = "py:obj"

# autodoc + napoleon: Google-style docstrings, members in source order, signatures with
# their type hints. The tables in api.md list the names; nothing is generated into docs/.
autodoc_default_options = {"member-order": "bysource", "show-inheritance": True}
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"
autosummary_generate = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = True

html_theme = "furo"
html_title = f"dse_callback {release}"
html_static_path: list[str] = []


# The docstrings write math in plain text, as `help()` shows it: |x| is an absolute value or
# a norm. reStructuredText reads |...| as a substitution reference, which mangles the text
# (and warns), so the bars are escaped where reST would read them: in prose, not in doctest
# or literal blocks, type fields, nor inside `...` or ``...``. Nothing else is rewritten.
_CODE_SPAN = re.compile(r"(``.*?``|`[^`]*`)")
_TYPE_FIELD = re.compile(r"^\s*:(type|rtype|vartype)\b")


def _escape_bars(line: str) -> str:
    parts = _CODE_SPAN.split(line)
    return "".join(part if index % 2 else part.replace("|", r"\|") for index, part in enumerate(parts))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def escape_plain_text_bars(lines: list[str]) -> list[str]:
    """The docstring's lines with every prose `|` escaped for reST."""
    escaped, colons_indent, literal_indent, in_doctest = [], None, None, False
    for line in lines:
        stripped = line.strip()
        if stripped and colons_indent is not None:  # a literal block: the indented block after "::"
            literal_indent = _indent(line) if _indent(line) > colons_indent else None
            colons_indent = None
        elif stripped and literal_indent is not None and _indent(line) < literal_indent:
            literal_indent = None
        in_doctest = stripped.startswith(">>>") or (in_doctest and bool(stripped))
        if literal_indent is None and not in_doctest:
            if not _TYPE_FIELD.match(line):
                line = _escape_bars(line)
            if stripped.endswith("::"):
                colons_indent = _indent(line)
        escaped.append(line)
    return escaped


def _escape_docstring(app, what, name, obj, options, lines):
    lines[:] = escape_plain_text_bars(lines)


def _exported_objects() -> set[int]:
    """ids of the objects that `dse_callback.__all__` exports, and of the lightning.pytorch monitor.

    api.md documents each of them once, under its public name (`dse_callback.X`); the module
    pages skip them, so that no object is described twice and each cross-reference has one
    target.
    """
    import dse_callback
    import dse_callback.lightning

    objects = {id(getattr(dse_callback, name)) for name in dse_callback.__all__}
    return objects | {id(dse_callback.lightning.DSEMonitor)}


class OptionsTable(Directive):
    """`dse-options` directive: the fields of settings dataclasses (`dse_callback.measure.settings`)
    as a table of option, default and meaning, so the docs list each option from its one
    declaration. Arguments: the class names, e.g. ``ProbeSettings MeasureSettings``. The
    table is built as docutils nodes, so it renders the same from Markdown and from reST."""

    required_arguments = 1
    optional_arguments = 5

    def run(self):
        import dataclasses

        from dse_callback.measure import settings

        def cell(*children):
            return nodes.entry("", nodes.paragraph("", "", *children))

        def row(*cells):
            return nodes.row("", *cells)

        body = nodes.tbody()
        for name in self.arguments:
            for field in dataclasses.fields(getattr(settings, name)):
                body += row(
                    cell(nodes.literal(text=field.name)),
                    cell(nodes.literal(text=repr(field.default))),
                    cell(nodes.Text(field.metadata["doc"])),
                )
        group = nodes.tgroup(cols=3)
        group += [nodes.colspec(colwidth=width) for width in (18, 14, 68)]
        group += nodes.thead("", row(*(cell(nodes.Text(title)) for title in ("option", "default", "meaning"))))
        group += body
        return [nodes.table("", group)]


def setup(app):
    app.add_directive("dse-options", OptionsTable)
    exported = _exported_objects()

    def skip_exported(app, what, name, obj, skip, options):
        return True if what == "module" and id(obj) in exported else None

    app.connect("autodoc-skip-member", skip_exported)
    app.connect("autodoc-process-docstring", _escape_docstring)

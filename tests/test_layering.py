"""The architecture as a test: each package imports only the floors below it, and no stage or
target names a family or a part (a new family is one new folder, not edits across the stages)."""

import ast
import re
from pathlib import Path

import pytest

import edgecap

ROOT = Path(edgecap.__file__).parent
# Floors from the ground up; a package may import its own floor and those listed for it.
ALLOWED = {
    "core": set(),
    "metrics": {"core"},
    "data": {"core", "metrics"},
    "quantization": {"core"},
    "models": {"core", "metrics", "data", "quantization"},
    "backends": {"core", "quantization"},
    "runs": {"core", "models", "backends"},
    "targets": {"core", "models", "backends", "runs"},
    "stages": {"core", "metrics", "data", "quantization", "models", "backends", "runs", "targets"},
    "api": {"core", "models", "stages", "targets"},
    "cli": {"core", "models", "stages", "runs", "targets", "api", "backends"},
}


def _package(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0].removesuffix(".py") if rel.parts[0] != "__init__.py" else "edgecap"


def _edgecap_imports(path: Path) -> set[str]:
    """Packages of edgecap a module imports, anywhere in it (function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            raise AssertionError(f"{path}: relative import; edgecap imports by absolute name")
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "edgecap" and len(parts) > 1:
                found.add(parts[1])
    return found


MODULES = sorted(p for p in ROOT.rglob("*.py") if _package(p) != "edgecap")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_imports_only_lower_floors(path):
    package = _package(path)
    assert package in ALLOWED, f"{package} is not in the layering table"
    above = {p for p in _edgecap_imports(path) - {package} if p in ALLOWED} - ALLOWED[package]
    assert not above, f"{path.relative_to(ROOT)} ({package}) imports {sorted(above)}"


def test_no_two_packages_import_each_other():
    graph = {}
    for path in MODULES:
        graph.setdefault(_package(path), set()).update(_edgecap_imports(path) - {_package(path)})
    for a, deps in graph.items():
        for b in deps:
            assert a not in graph.get(b, set()), f"{a} and {b} import each other"


def _family_and_part_names() -> set[str]:
    from edgecap.models import FAMILIES, get_family

    names = set(FAMILIES)
    for name in FAMILIES:
        family = get_family(name)
        cfg = family.facts.run_config().model
        form = family.export_form(family.build(cfg))
        for layout in family.facts.layouts:
            names |= {p.name for p in family.parts(form, cfg, layout)} - {"whole"}
    return names


GENERIC = ["core", "backends", "targets", "stages", "runs.py"]  # what serves every family
# Library identifiers that contain a part's name (numpy's rng.bit_generator holds "generator").
LIBRARY_IDENTIFIERS = ("bit_generator",)


def test_no_generic_package_names_a_family_or_part():
    names = _family_and_part_names()
    assert {"lifting", "parsing_rcnn", "detector", "dense"} <= names
    paths = [p for g in GENERIC for p in ([ROOT / g] if g.endswith(".py") else sorted((ROOT / g).rglob("*.py")))]
    for path in paths:
        text = path.read_text()
        for identifier in LIBRARY_IDENTIFIERS:
            text = text.replace(identifier, "")
        for name in names:  # as a word of its own or of an identifier (parsing_rcnn_int8 too)
            hit = re.search(rf"(?<![A-Za-z0-9]){re.escape(name)}(?![A-Za-z0-9])", text)
            assert not hit, f"{path.relative_to(ROOT)} names {name!r}: ...{text[hit.start() - 40:hit.end() + 40]}..."

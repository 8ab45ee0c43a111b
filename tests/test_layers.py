"""The dependency rule of docs/architecture.md, checked on every import statement in bear/."""

from __future__ import annotations

import ast
from pathlib import Path

import bear

PACKAGE = Path(bear.__file__).parent
# Each layer and the layers it may import (besides itself). Everything points down this list.
ALLOWED = {
    "core": set(),
    "config": {"core"},
    "gen": {"core", "config"},
    "lake": {"core", "config"},
    "run": {"core", "config", "gen", "lake"},
    "verify": {"core", "config", "lake"},
    "cli": {"core", "config", "gen", "lake", "run", "verify"},
}
# Third-party packages a layer must not touch: generation is pure, so it runs anywhere and tests need nothing.
FORBIDDEN = {"gen": {"ray", "hydra", "fsspec", "gcsfs", "omegaconf"}, "core": {"ray", "hydra", "fsspec", "gcsfs"}}
MAX_LINES = 360


def _imports(path: Path) -> set[str]:
    """Absolute module names a file imports, anywhere in it (lazy imports inside functions count too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            if node.module == "bear":
                out |= {f"bear.{a.name}" for a in node.names if a.name != "__version__"}
    return out


def _modules() -> list[tuple[str, Path]]:
    return [(p.relative_to(PACKAGE).parts[0], p) for p in sorted(PACKAGE.rglob("*.py")) if p.parent != PACKAGE]


def test_every_module_sits_in_a_layer():
    top = {p.name for p in PACKAGE.glob("*.py")}
    assert top == {"__init__.py"}, f"modules outside the layers: {top - {'__init__.py'}}"
    assert {layer for layer, _ in _modules()} == set(ALLOWED)


def test_imports_follow_the_layer_rule():
    wrong = []
    for layer, path in _modules():
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "bear" and len(parts) > 1:
                target = parts[1]
                if target != layer and target not in ALLOWED[layer]:
                    wrong.append(f"{path.relative_to(PACKAGE.parent)} imports {name} ({layer} -> {target})")
            elif parts[0] in FORBIDDEN.get(layer, ()):
                wrong.append(f"{path.relative_to(PACKAGE.parent)} imports {name} (not allowed in {layer})")
    assert not wrong, "\n".join(wrong)


def test_modules_stay_small():
    big = {str(p.relative_to(PACKAGE.parent)): n for _, p in _modules()
           if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_the_rule_catches_a_violation(tmp_path):
    """The walker sees an upward import, lazy or not (a test that cannot fail is a defect)."""
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from bear.run.backfill import backfill\n    import ray\n")
    assert {"bear.run.backfill", "ray"} <= _imports(bad)


def test_generation_reads_the_config_only_to_compile_the_model():
    """`Model.build` compiles every setting; the rest of `gen` never sees a config object."""
    readers = {str(p.relative_to(PACKAGE.parent)) for layer, p in _modules()
               if layer == "gen" and any(n.startswith("bear.config") for n in _imports(p))}
    assert readers == {"bear/gen/model.py"}
    offenders = [str(p) for layer, p in _modules() if layer == "gen" and ".cfg" in p.read_text()]
    assert not offenders, offenders


def test_docs_point_at_files_in_the_repository():
    """The README, docs/ and docstrings name repo files, never documents outside the repository."""
    texts = [PACKAGE.parent / "README.md", *(PACKAGE.parent / "docs").glob("*.md"), *PACKAGE.rglob("*.py")]
    outside = [str(t) for t in texts if "../shared" in t.read_text() or "DESIGN §" in t.read_text()
               or "DESIGN.md" in t.read_text() or "CONTRACT.md" in t.read_text()]
    assert not outside, outside

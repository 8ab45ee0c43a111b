"""The data dictionary (docs/schema.md) is the code's own table definitions, and the mess it documents is the mess
the generator makes."""

from __future__ import annotations

from pathlib import Path

from conftest import compose_cfg

from bear.cli.schema_doc import render
from bear.core.schemas import ADVANCED_MESS, FORMAT_COLUMNS, NULL_COLUMNS, STYLE_COLUMNS
from bear.run.generate import generate

DOC = Path(__file__).resolve().parent.parent / "docs" / "schema.md"


def test_docs_schema_md_is_rendered_from_the_code():
    assert DOC.read_text() == render(), "docs/schema.md is stale: python -m bear.cli.schema_doc > docs/schema.md"


def test_documented_mess_targets_are_what_the_generator_messes():
    _, ledgers = generate(compose_cfg("mess=heavy_mess"))
    made = {(table, col, kind) for table, per_chunk in ledgers.items() for ledger in per_chunk
            for col, kinds in ledger.items() for kind in kinds}
    documented = {(t, c, k) for t, cols in STYLE_COLUMNS.items() for c in cols for k in ("whitespace", "casing")}
    documented |= {(t, c, "null") for t, cols in NULL_COLUMNS.items() for c in cols}
    documented |= {(t, c, "format") for t, cols in FORMAT_COLUMNS.items() for c in cols}
    documented |= {(t, c, k) for t, kinds in ADVANCED_MESS.items() for c, k in kinds.items()}
    assert made == documented

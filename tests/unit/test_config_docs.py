"""docs/CONFIG.md is the schema rendered: a key added, removed or re-documented without regenerating fails here."""
from __future__ import annotations

from pathlib import Path

from r3dm_epymarl.config_docs import render
from r3dm_epymarl.registry import ALGORITHMS

PAGE = Path(__file__).resolve().parents[2] / "docs" / "CONFIG.md"


def test_config_page_is_the_rendered_schema():
    assert PAGE.read_text() == render(), \
        "docs/CONFIG.md is stale: run `r3dm-epymarl configs --markdown > docs/CONFIG.md`"


def test_every_schema_key_has_a_row_with_its_yaml_default():
    import yaml

    page = render()
    for algo in ALGORITHMS.values():
        defaults = yaml.safe_load(algo.yaml_path.read_text())
        section = page.split(f"## `--config={algo.name}`")[1].split("\n## ")[0]
        for name in algo.load_schema():
            row = next(line for line in section.splitlines() if line.startswith(f"| `{name}` |"))
            assert name in defaults, (algo.name, name)
            assert row.split(" | ")[2] != "(host default)", (algo.name, name)

"""The config-key reference page (docs/CONFIG.md), rendered from the code's schemas and YAML defaults.

`r3dm-epymarl configs --markdown > docs/CONFIG.md` writes it; a test fails when the page and the code
disagree, so adding a key means regenerating the page, never editing a table by hand.
"""
from __future__ import annotations

import yaml

HEADER = """# Config keys

Generated from the code (`r3dm-epymarl configs --markdown > docs/CONFIG.md`; a test checks it is current).
Each algorithm's YAML is `config_overrides/algs/<name>.yaml`, where every key is commented; the defaults
below are those YAMLs' values (the published ones). A key is declared by the learner or by the
intrinsic-reward term that reads it (`intrinsic_terms`), with its type, range and default. Any key can be changed after `with`, e.g.
`with intrinsic_alpha=0.05`; a wrong type or range stops the run before training with one line.
Per-map presets (`config_overrides/presets/`) override some of these defaults on the paper's maps.
"""


def _cell(value) -> str:
    text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    return f"`{text}`".replace("|", "\\|")


def _range(spec) -> str:
    parts = []
    if spec.choices is not None:
        parts.append(" / ".join(str(c) for c in spec.choices))
    if spec.minimum is not None:
        parts.append(f">= {spec.minimum:g}")
    if spec.above is not None:
        parts.append(f"> {spec.above:g}")
    if spec.maximum is not None:
        parts.append(f"<= {spec.maximum:g}")
    if spec.nullable:
        parts.append("or null")
    return ", ".join(parts)


def render() -> str:
    from r3dm_epymarl.intrinsic import term_class
    from r3dm_epymarl.registry import ALGORITHMS, _resolve

    lines = [HEADER]
    for algo in ALGORITHMS.values():
        defaults = yaml.safe_load(algo.yaml_path.read_text()) or {}
        lines += [f"## `--config={algo.name}`", "",
                  f"learner `{algo.learner}`, mac `{algo.mac}`, agent `{algo.agent}`, mixer `{algo.mixer}`"
                  + (f": {algo.notes}." if algo.notes else "."), ""]
        schema = algo.load_schema()
        if not schema:
            lines += ["The host's own keys only (EPyMARL's `qmix.yaml` values).", ""]
            continue
        owners = {name: "learner" for name in _resolve(algo.schema)}
        for entry in defaults.get("intrinsic_terms") or []:
            for name in term_class(entry).keys:
                owners.setdefault(name, f"term `{term_class(entry).name}`")
        lines += ["| key | type | default | allowed | declared by | meaning |", "|---|---|---|---|---|---|"]
        for name, spec in schema.items():
            default = _cell(defaults[name]) if name in defaults else "(host default)"
            lines.append(f"| `{name}` | {spec.type.__name__} | {default} | {_range(spec)} | {owners[name]} | "
                         f"{spec.doc.replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines)

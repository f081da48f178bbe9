"""MkDocs hook (mkdocs.yml ``hooks:``): the docs' generated blocks, read from their owners.

A page holds a marker line ``<!-- generated: NAME -->``; the build replaces it with the
block below, so the site never restates a fact that code or configuration owns:

- ``result-neutral``: the settings that rerun nothing (``actionrec.config.RESULT_NEUTRAL``);
- ``architectures``: one row per architecture, its design line from the model file
  (``Architecture.design``) and its input from ``params.yaml``;
- ``layers``: the import-layering contracts of ``pyproject.toml`` (``[tool.importlinter]``).

An unknown marker fails the build (MkDocs hooks: https://www.mkdocs.org/user-guide/configuration/#hooks).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.M)


def result_neutral() -> str:
    """The result-neutral settings as a bullet list."""
    from actionrec.config import RESULT_NEUTRAL

    return "\n".join(f"- `{key}`" for key in RESULT_NEUTRAL)


def architectures() -> str:
    """The architecture table: name, design line, backbone, input ``T x S x S x 3``."""
    from actionrec.config import ARCHITECTURES, load_params
    from actionrec.models import get_architecture

    params = load_params(ROOT / "params.yaml")
    t = params.frames.sequence_length
    rows = ["| architecture | design | backbone | input (T x S x S x 3) |", "|---|---|---|---|"]
    for name in ARCHITECTURES:
        arch, s = get_architecture(name), params.models.get(name)
        rows.append(f"| `{name}` | {arch.design} | {arch.backbone or 'none (from scratch)'} | "
                    f"{t} x {s.image_size} x {s.image_size} x 3 |")
    return "\n".join(rows)


def layers() -> str:
    """Each import-linter contract of pyproject.toml: a layers contract as its layers, top
    first; a forbidden contract as its source and forbidden modules."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    out = []
    for contract in config["tool"]["importlinter"]["contracts"]:
        if contract["type"] == "layers":
            inside = contract.get("containers")
            out += [f"**{contract['name']}**"
                    + (f" (inside `{', '.join(inside)}`)" if inside else "") + ":", ""]
            out += [f"1. `{layer}`" for layer in contract["layers"]]
        else:
            out += [f"**{contract['name']}** ({contract['type']}): "
                    f"`{', '.join(contract['source_modules'])}` may not import "
                    f"`{', '.join(contract['forbidden_modules'])}`."]
        out.append("")
    return "\n".join(out).rstrip()


BLOCKS = {"result-neutral": result_neutral, "architectures": architectures, "layers": layers}


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace each marker line of ``markdown`` with its block.

    Raises:
        KeyError: a marker names no block (the build fails naming the page).
    """
    def block(match: re.Match) -> str:
        name = match[1]
        if name not in BLOCKS:
            raise KeyError(f"{page.file.src_path}: no generated block named {name!r} "
                           f"(known: {', '.join(BLOCKS)})")
        return BLOCKS[name]()

    return MARKER.sub(block, markdown)

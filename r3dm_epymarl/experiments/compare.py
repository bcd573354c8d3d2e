"""r3dm-epymarl compare (being written)."""
from __future__ import annotations

HELP = "compare (being written)"


def add_arguments(parser) -> None:
    pass


def main(args) -> int:
    raise SystemExit("r3dm-epymarl compare: not written yet")

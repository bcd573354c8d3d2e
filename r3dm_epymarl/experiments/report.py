"""r3dm-epymarl report (being written)."""
from __future__ import annotations

HELP = "report (being written)"


def add_arguments(parser) -> None:
    pass


def main(args) -> int:
    raise SystemExit("r3dm-epymarl report: not written yet")

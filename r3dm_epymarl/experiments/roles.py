"""r3dm-epymarl roles (being written)."""
from __future__ import annotations

HELP = "roles (being written)"


def add_arguments(parser) -> None:
    pass


def main(args) -> int:
    raise SystemExit("r3dm-epymarl roles: not written yet")

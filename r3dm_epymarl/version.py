"""The installed distribution's version; setup.cfg is its one source."""
from importlib import metadata


def version() -> str:
    try:
        return metadata.version("r3dm-epymarl")
    except metadata.PackageNotFoundError:  # a source tree on sys.path, never installed
        return "0+unknown"

"""R3DM, ACORM and CDS for EPyMARL-family hosts.

Importing this package imports no host module and no torch: `register()` does the host work lazily,
so `r3dm-epymarl --help` and the entry point stay cheap and work before a host is installed.
"""

from r3dm_epymarl.version import version as _version

__version__ = _version()  # setup.cfg declares it; read from the installed metadata


def register(host=None):
    """Add the plug-in's components to the running host's registries; return the config dir.

    Idempotent. `host` is "epymarl", "pymarlzooplus" or None (detect). This is the
    `epymarl.plugins` entry point the patched EPyMARL `main.py` calls.
    """
    import os

    from r3dm_epymarl.hosts import Host, get_host
    from r3dm_epymarl.registry import register as _register
    from r3dm_epymarl.preflight import check_host_run
    from r3dm_epymarl.runs.loop import install_host_loop

    host = host if isinstance(host, Host) else get_host(host)
    config_dir = str(_register(host))
    install_host_loop(host, check_host_run)  # the host's run loop, hooked for exact resume and the progress line
    if os.environ.get("MONGO_URL"):
        # `python src/main.py` in a patched checkout: $MONGO_URL adds the Mongo observer there too.
        from r3dm_epymarl.hosts import sacred as observers

        observers.install(os.environ["MONGO_URL"])
    return config_dir


def config_dir():
    """Directory holding `algs/*.yaml` and `envs/*.yaml` in the host's format."""
    from r3dm_epymarl.paths import config_dir as _config_dir

    return _config_dir()

"""Fixtures shared by the tests (helpers that tests import live in tests/helpers.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import free_port


@pytest.fixture(scope="session")
def zoo_available():
    pytest.importorskip("pymarlzooplus", reason="PyMARLzoo+ is not installed (pip install --no-deps pymarlzooplus)")


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory):
    """A real MongoDB wire-protocol server (SecantusDB) on 127.0.0.1, for the whole session.
    Yields `mongodb://127.0.0.1:PORT`; each test uses a database of its own."""
    import shutil
    import socket
    import time

    exe = shutil.which("secantusd-py") or str(Path(sys.executable).parent / "secantusd-py")
    if not os.path.exists(exe):
        pytest.skip("secantusdb is not installed (pip install secantusdb==0.7.0b3, a test dependency)")
    port = free_port()
    log = open(tmp_path_factory.mktemp("mongo") / "server.log", "w")
    server = subprocess.Popen([exe, "--host", "127.0.0.1", "--port", str(port), "--storage-path",
                               str(tmp_path_factory.mktemp("mongo-data")), "--log-level", "WARNING"],
                              stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                server.kill()
                pytest.fail(f"secantusd-py did not start; see {log.name}")
            time.sleep(0.1)
    yield f"mongodb://127.0.0.1:{port}"
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()

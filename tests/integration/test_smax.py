"""The SMAX env imported in a fresh process: JAX starts lazily, on the CPU with one thread, and leaves
the host's streams alone."""
import json
import subprocess
import sys

import pytest

pytest.importorskip("jaxmarl")


def test_lazy_jax_and_host_streams_survive_the_import():
    # In a fresh process: importing the envs package starts no JAX; the first env imports it with
    # CPU forced and one XLA thread, prints nothing, and leaves the caller's sys.stdout/stderr alone
    # (jaxmarl's MABrax module resets them to the process's original streams).
    code = (
        "import io, json, os, sys\n"
        "os.environ.pop('JAX_PLATFORMS', None); os.environ.pop('XLA_FLAGS', None)\n"
        "import r3dm_epymarl.envs\n"
        "lazy = 'jax' not in sys.modules\n"
        "real = sys.__stdout__; out, err = io.StringIO(), io.StringIO(); sys.stdout, sys.stderr = out, err\n"
        "from r3dm_epymarl.envs.smax import SMAXEnv\n"
        "env = SMAXEnv('3m')\n"
        "kept = sys.stdout is out and sys.stderr is err and sys.__stdout__ is real\n"
        "sys.stdout = real\n"
        "print(json.dumps({'lazy': lazy, 'kept': kept, 'printed': out.getvalue(),\n"
        "                  'platform': os.environ.get('JAX_PLATFORMS'), 'xla': os.environ.get('XLA_FLAGS')}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["lazy"] and result["kept"] and result["printed"] == ""
    assert result["platform"] == "cpu" and "intra_op_parallelism_threads=1" in result["xla"]

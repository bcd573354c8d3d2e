"""The test suite's layout: unit tests run in the test's own process (a test that starts the command line,
a script, a server or any other process belongs in tests/integration/), and no test imports from
conftest.py (shared helpers live in modules: tests/helpers.py, tests/harness.py, ...)."""
import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
SPAWNING_MODULES = {"subprocess", "multiprocessing", "concurrent.futures"}
SPAWNING_CALLS = {"cli", "run_script", "Popen", "system", "spawn"}  # tests.helpers.cli, os.system, ...
SPAWNING_FIXTURES = {"mongo_server"}  # starts a server process


def spawns(path: Path) -> list[str]:
    """What in this test file starts another process: imports, calls and fixtures, with line numbers."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if a.name in SPAWNING_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module in SPAWNING_MODULES:
            found.append(f"{node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            if name in SPAWNING_CALLS:
                found.append(f"{node.lineno}: {name}(...)")
        elif isinstance(node, ast.FunctionDef):
            found += [f"{node.lineno}: fixture {a.arg}" for a in node.args.args if a.arg in SPAWNING_FIXTURES]
    return found


def test_unit_tests_start_no_process():
    offenders = {p.name: hits for p in sorted((TESTS / "unit").glob("test_*.py")) if (hits := spawns(p))}
    assert offenders == {}, f"move these tests to tests/integration/: {offenders}"


def test_the_check_sees_a_spawning_test(tmp_path):
    sample = tmp_path / "test_sample.py"
    sample.write_text("import subprocess\nfrom tests.helpers import cli\n\n"
                      "def test_a(mongo_server):\n    cli('--help')\n    subprocess.Popen(['true'])\n")
    assert spawns(sample) == ["1: import subprocess", "4: fixture mongo_server", "5: cli(...)", "6: Popen(...)"]


def test_no_test_imports_from_conftest():
    offenders = [str(p.relative_to(TESTS)) for p in TESTS.rglob("*.py")
                 if any(isinstance(n, ast.ImportFrom) and (n.module or "").endswith("conftest")
                        for n in ast.walk(ast.parse(p.read_text())))]
    assert offenders == [], f"import shared helpers from tests.helpers, not conftest: {offenders}"


def test_fault_injection_lives_with_the_tests_not_in_the_package():
    """Issue #39: the kill and wait switches are a test-only hook (tests/fault_injection), never read by
    the production loop."""
    package = Path(__file__).resolve().parents[2] / "r3dm_epymarl"
    for path in package.rglob("*.py"):
        text = path.read_text()
        for switch in ("R3DM_EPYMARL_KILL_AT_T", "R3DM_EPYMARL_KILL_IN_SAVE_AT_T", "R3DM_EPYMARL_WAIT_AT_T",
                       "R3DM_EPYMARL_FAIL_SEED"):
            assert switch not in text, f"{path} reads {switch}"

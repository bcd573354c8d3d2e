"""compare never runs one cell in two processes at once (two compares over one folder, or a cell left
running by a killed compare), and a lock left by a dead process does not block the cell."""
import subprocess
import sys

from r3dm_epymarl.experiments.cells import BUSY, CellLock, run_cell

HOLD = ("import fcntl, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
        "f.write('pid 4242 on elsewhere'); f.flush(); print('locked', flush=True); time.sleep(60)")


def test_a_cell_held_by_another_process_is_not_started(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "cell.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, seconds, error = run_cell(["--version"], str(tmp_path), {})
        assert code == BUSY and seconds == 0.0
        assert error == "another process is running this cell (pid 4242 on elsewhere); wait for it or stop it"
        assert not (tmp_path / "cell.log").exists()  # nothing started, nothing written
    finally:
        holder.kill()
        holder.wait()
    code, _, error = run_cell(["--version"], str(tmp_path), {})  # the dead holder's lock is gone
    assert code == 0 and error == ""
    assert "r3dm-epymarl" in (tmp_path / "cell.log").read_text()


def test_the_cell_process_keeps_the_lock_after_compare_lets_go(tmp_path):
    with CellLock(str(tmp_path)) as lock:
        assert lock.held
        cell = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], pass_fds=lock.fds)
        lock.note(f"pid {cell.pid}")
    try:  # compare's copy is closed (as if compare was killed); the cell still runs and holds the lock
        with CellLock(str(tmp_path)) as second:
            assert not second.held and second.holder.startswith(f"pid {cell.pid} on ")
    finally:
        cell.kill()
        cell.wait()
    with CellLock(str(tmp_path)) as third:
        assert third.held

"""A non-editable install: the wheel carries the YAMLs and patches, and the console script runs."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.helpers import REPO


def test_wheel_ships_configs_and_patches_and_installs(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels), str(REPO)], check=True, capture_output=True)
    (wheel,) = wheels.glob("r3dm_epymarl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for yaml_file in (REPO / "config_overrides").glob("*/*.yaml"):
        assert f"r3dm_epymarl/config_overrides/{yaml_file.parent.name}/{yaml_file.name}" in names
    for patch in (REPO / "patches").glob("*.patch"):
        assert f"r3dm_epymarl/patches/{patch.name}" in names
    assert "r3dm_epymarl/data/paper_results.csv" in names  # report --paper

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(target), "PYTHONWARNINGS": "ignore"}
    where = subprocess.run([sys.executable, "-c", "import r3dm_epymarl; print(r3dm_epymarl.config_dir())"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(target) and (Path(where) / "algs" / "acorm.yaml").is_file()
    script = target / "bin" / "r3dm-epymarl"
    help_text = subprocess.run([sys.executable, str(script), "--help"], cwd=tmp_path, env=env,
                               capture_output=True, text=True, check=True).stdout
    assert all(command in help_text for command in ("install", "run", "compare", "report", "roles"))
    published = subprocess.run([sys.executable, "-c", "from r3dm_epymarl.experiments.report import load_paper; "
                                "print(len(load_paper('builtin')))"], cwd=tmp_path, env=env, capture_output=True,
                               text=True, check=True).stdout.strip()
    assert published == "84"

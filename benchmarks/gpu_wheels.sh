#!/usr/bin/env bash
# Prepare, on this (internet) machine, the Python 3.12 wheels the device machine lacks, into .whl/
# (ignored by git; carried by the device tool: run(..., carry=[".whl"])). Its image already holds
# torch, numpy, scipy, scikit-learn, matplotlib, pandas, pyyaml, rich, pytest (see the device README).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
rm -rf .whl && mkdir .whl
py312=(--no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any -d .whl)
python3 -m pip download -q "${py312[@]}" sacred==0.8.7 docopt-ng jsonpickle munch GitPython gitdb smmap \
  colorama py-cpuinfo wrapt pymongo dnspython pymarlzooplus==1.1.0 gymnasium==1.0.0 cloudpickle farama-notifications \
  lbforaging==3.0.0
python3 -m pip wheel -q --no-deps -w .whl .  # the plug-in itself
du -sh .whl && ls .whl

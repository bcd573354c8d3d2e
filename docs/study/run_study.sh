#!/usr/bin/env bash
# The SMAX study of issue #16: QMIX (the host's), CDS, ACORM, R3DM on SMAX 2s3z and 3s_vs_5z, 150k env
# steps per cell, a test every 5k steps with 32 episodes, each algorithm's YAML defaults and presets.
# Run the same command again to continue: finished cells are kept, a killed cell continues from its newest
# checkpoint (every 10k steps). Environment: EPYMARL_PATH (an EPyMARL checkout), STUDY_DIR (where the runs
# go, default ./study_runs), ALGORITHMS, MAPS, SEEDS, JOBS (cells at once, default 1; one core each),
# T_MAX (default 150000), TEST_INTERVAL (default 5000), OUT (the folder under STUDY_DIR, default smax;
# run_5m_vs_6m.sh sets these four for its grid). Arguments are passed on to compare (e.g. --dry-run).
# Two commands with JOBS=1 and disjoint ALGORITHMS may share STUDY_DIR (e.g. ALGORITHMS=r3dm on one core,
# ALGORITHMS="qmix cds acorm" on the other): each cell has its own folder (and compare locks it).
# VARIANT=policy_kl|world_model|wm_published runs R3DM's ablation instead, on the same budget, under its own
# name and folder (ablation_<VARIANT>, or <OUT>_<VARIANT> when OUT is set; see run_ablation.sh).
set -euo pipefail
: "${EPYMARL_PATH:?set EPYMARL_PATH to an EPyMARL checkout}"
algorithms=${ALGORITHMS:-qmix cds acorm r3dm}
maps=${MAPS:-2s3z 3s_vs_5z}
out=${OUT:-smax}
variant=()
if [ -n "${VARIANT:-}" ]; then
  case "$VARIANT" in policy_kl|world_model|wm_published) ;;
    *) echo "VARIANT must be policy_kl, world_model or wm_published, not '$VARIANT'" >&2; exit 2;; esac
  algorithms=r3dm
  maps=${MAPS:-2s3z}
  out=${OUT:-ablation}_$VARIANT
  if [ "$VARIANT" = wm_published ]; then  # both terms, the world models fed as the published code feeds them
    variant=("name=r3dm_$VARIANT" "wm_action=published")
  else
    variant=("name=r3dm_$VARIANT" "intrinsic_terms=[\"$VARIANT\"]")  # its own name: its own row in report
  fi
fi
exec python -m r3dm_epymarl compare --epymarl "$EPYMARL_PATH" --algorithms $algorithms --maps $maps \
  --seeds ${SEEDS:-1 2 3} --env-config smax --t-max "${T_MAX:-150000}" \
  --with "test_interval=${TEST_INTERVAL:-5000}" test_nepisode=32 ${variant[@]+"${variant[@]}"} \
  --out "${STUDY_DIR:-study_runs}/$out" --jobs "${JOBS:-1}" --checkpoint-interval 10000 "$@"

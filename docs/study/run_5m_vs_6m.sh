#!/usr/bin/env bash
# The one comparison this machine can afford where the published StarCraft II curves put R3DM ahead of
# ACORM: 5m_vs_6m at 300k env steps (published: R3DM 0.51, ACORM 0.38, QMIX 0.02). QMIX (the host's), CDS,
# ACORM and R3DM on SMAX 5m_vs_6m, 300k env steps per cell, a test every 10k steps with 32 greedy episodes
# (plus one at t_max), checkpoints every 10k, fp32, each algorithm's YAML defaults and the published
# per-map presets, which the launcher applies (config_overrides/presets/): CDS intrinsic_alpha=0.01
# cds_beta1=2.0 cds_beta2=1.0; R3DM r3dm_beta1=2.0 r3dm_beta2=1.0 r3dm_beta3=0.0 intrinsic_alpha=0.05
# wm_horizon=2; ACORM and QMIX have none for this map.
# Run the same command again to continue: finished cells are kept, a stopped one continues from its newest
# checkpoint. Environment: EPYMARL_PATH (an EPyMARL checkout), STUDY_DIR (default ./study_runs), ALGORITHMS
# (default qmix cds acorm r3dm), SEEDS (default 1 2 3), JOBS (cells at once, default 1; one core each).
# VARIANT=wm_published adds R3DM with wm_action=published, under its own name and folder (a fifth row).
# Arguments are passed on to compare (e.g. --dry-run).
set -euo pipefail
: "${EPYMARL_PATH:?set EPYMARL_PATH to an EPyMARL checkout}"
algorithms=${ALGORITHMS:-qmix cds acorm r3dm}
out=5m_vs_6m
variant=()
case "${VARIANT:-}" in
  "") ;;
  wm_published) algorithms=r3dm; out=5m_vs_6m_wm_published
                variant=("name=r3dm_wm_published" "wm_action=published") ;;
  *) echo "VARIANT must be wm_published (or unset), not '$VARIANT'" >&2; exit 2 ;;
esac
exec python -m r3dm_epymarl compare --epymarl "$EPYMARL_PATH" --algorithms $algorithms --maps 5m_vs_6m \
  --seeds ${SEEDS:-1 2 3} --env-config smax --t-max 300000 \
  --with test_interval=10000 test_nepisode=32 ${variant[@]+"${variant[@]}"} --out "${STUDY_DIR:-study_runs}/$out" \
  --jobs "${JOBS:-1}" --checkpoint-interval 10000 "$@"

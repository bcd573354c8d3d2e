#!/usr/bin/env bash
# The one comparison this machine can afford where the published StarCraft II curves put R3DM ahead of
# ACORM: 5m_vs_6m at 300k env steps (published: R3DM 0.51, ACORM 0.38, QMIX 0.02). QMIX (the host's), CDS,
# ACORM and R3DM on SMAX 5m_vs_6m, 300k env steps per cell, a test every 10k steps with 32 greedy episodes
# (plus one at t_max), checkpoints every 10k, fp32, each algorithm's YAML defaults and the published
# per-map presets, which the launcher applies (config_overrides/presets/): CDS intrinsic_alpha=0.01
# cds_beta1=2.0 cds_beta2=1.0; R3DM r3dm_beta1=2.0 r3dm_beta2=1.0 r3dm_beta3=0.0 intrinsic_alpha=0.05
# wm_horizon=2; ACORM and QMIX have none for this map.
# It is run_study.sh with this grid's map, budget, test interval and folder (STUDY_DIR/5m_vs_6m); the
# other variables are run_study.sh's (EPYMARL_PATH, STUDY_DIR, ALGORITHMS, SEEDS, JOBS). Run the same
# command again to continue. VARIANT=wm_published adds R3DM with wm_action=published, under its own name
# and folder (STUDY_DIR/5m_vs_6m_wm_published): a fifth row.
set -euo pipefail
MAPS=5m_vs_6m T_MAX=300000 TEST_INTERVAL=10000 OUT=5m_vs_6m exec bash "$(dirname "$0")/run_study.sh" "$@"

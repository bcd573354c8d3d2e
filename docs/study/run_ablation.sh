#!/usr/bin/env bash
# The ablation of issue #16: R3DM with one intrinsic term only, on the study's budget (run_study.sh's
# settings). VARIANT=policy_kl keeps only the policy-KL term (r_pol; no world models are built or trained,
# so a cell costs about what ACORM's does); VARIANT=world_model keeps only the world-model term (r_obs,
# and r_lat if beta3 > 0); VARIANT=wm_published keeps both terms with wm_action=published (the world
# models fed the previous action, as the published code feeds them). Each variant runs under its own `name` (r3dm_<VARIANT>) into its own folder
# (STUDY_DIR/ablation_<VARIANT>), so `report` shows it as its own row:
#   python -m r3dm_epymarl report <STUDY_DIR>/smax <STUDY_DIR>/ablation_policy_kl <STUDY_DIR>/ablation_world_model
# Neither map of the study has an R3DM preset, so the rename drops none. Same environment variables as
# run_study.sh (EPYMARL_PATH, STUDY_DIR, MAPS default 2s3z, SEEDS, JOBS; arguments go to compare, e.g.
# --dry-run); run again to continue.
set -euo pipefail
: "${VARIANT:?set VARIANT to policy_kl, world_model or wm_published}"
exec bash "$(dirname "$0")/run_study.sh" "$@"

#!/usr/bin/env bash
# The ablation of issue #16: R3DM with one intrinsic term only, on the study's budget (150k env steps, a
# test every 5k steps with 32 episodes). VARIANT=policy_kl keeps only the policy-KL term (r_pol; no world
# models are built or trained, so a cell costs about what ACORM's does); VARIANT=world_model keeps only
# the world-model term (r_obs, and r_lat if beta3 > 0). Each variant runs under its own `name`
# (r3dm_<VARIANT>) into its own folder, so `report` shows it as its own row:
#   python -m r3dm_epymarl report <STUDY_DIR>/smax <STUDY_DIR>/ablation_policy_kl <STUDY_DIR>/ablation_world_model
# Neither map of the study has an R3DM preset, so the rename drops none. Same environment variables as
# run_study.sh (EPYMARL_PATH, STUDY_DIR, MAPS default 2s3z, SEEDS, JOBS; arguments go to compare, e.g.
# --dry-run); run again to continue.
set -euo pipefail
: "${EPYMARL_PATH:?set EPYMARL_PATH to an EPyMARL checkout}"
: "${VARIANT:?set VARIANT to policy_kl or world_model}"
case "$VARIANT" in policy_kl|world_model) ;; *) echo "VARIANT must be policy_kl or world_model, not '$VARIANT'" >&2; exit 2;; esac
exec python -m r3dm_epymarl compare --epymarl "$EPYMARL_PATH" --algorithms r3dm --maps ${MAPS:-2s3z} \
  --seeds ${SEEDS:-1 2 3} --env-config smax --t-max 150000 \
  --with test_interval=5000 test_nepisode=32 "name=r3dm_$VARIANT" "intrinsic_terms=[\"$VARIANT\"]" \
  --out "${STUDY_DIR:-study_runs}/ablation_$VARIANT" --jobs "${JOBS:-1}" --checkpoint-interval 10000 "$@"

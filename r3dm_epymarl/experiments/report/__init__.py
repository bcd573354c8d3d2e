"""`r3dm-epymarl report`: tables, curves, rliable statistics and diagnostics from Sacred runs.

Modules: metrics (the leaf of metric helpers), runs (loading Sacred runs from folders or MongoDB),
rliable (IQM, CIs, P(X > Y)), cells (per-seed rows), diagnostics (what the role learners logged),
paper (the published StarCraft II results), plots, marl_eval (export); build composes them
(`build_report`) and is the command.
"""
from r3dm_epymarl.experiments.report.build import (  # noqa: F401 (the command and its parts)
    HELP, Row, add_arguments, aggregate, build_report, check_options, load_paper, main, plot_curves, table, write_csv,
)
from r3dm_epymarl.experiments.report.metrics import (  # noqa: F401
    RETURN, WIN_RATE, area_under_curve, final_value, is_rate, mean_ci, mean_curve, pick_metric, safe_name, steps_to,
)
from r3dm_epymarl.experiments.report.runs import Run, drop_continued, load_file_runs, load_mongo_runs  # noqa: F401

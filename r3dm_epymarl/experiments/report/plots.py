"""The PNGs of `report`'s rliable statistics, drawn with rliable's plot_utils: profiles.png (performance
profiles) and efficiency.png (IQM sample-efficiency curves), one panel per map and one over all maps."""
from __future__ import annotations

from r3dm_epymarl.experiments.report.rliable import ALL_MAPS, TAUS, Group, Stats, ordered


def _figure(count: int):
    """A grid of `count` panels; returns the figure and its axes, flat."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, count)
    rows = -(-count // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def save(fig, path) -> None:
    """Lay out, write at 100 dpi and close: every PNG of `report`."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _colours(stats: list[Stats]) -> dict:
    import seaborn as sns

    names = ordered(a for s in stats for a in s.points)
    return dict(zip(names, sns.color_palette("colorblind", n_colors=len(names))))


def plot_profiles(stats: list[Stats], path) -> None:
    """profiles.png: rliable's performance profile (runs with score > tau, with CIs) per group."""
    fig, axes = _figure(len(stats))
    from rliable import plot_utils

    colours = _colours(stats)
    for ax, s in zip(axes, stats):
        plot_utils.plot_performance_profiles(
            s.profiles, TAUS, performance_profile_cis=s.profile_cis, ax=ax, colors=colours,
            xlabel=r"final score $\tau$ (normalised)", ylabel=r"fraction of runs with score $> \tau$",
            labelsize="medium", ticklabelsize="small", legend=True, legendsize="small")
        ax.set_title(s.group.name, fontsize="medium")
    save(fig, path)


def _score_label(group: Group) -> str:
    if group.name == ALL_MAPS:
        return "IQM of the score in [0, 1]"
    return f"IQM of {group.metric}" + (" (min-max normalised)" if group.scale else "")


def plot_efficiency(stats: list[Stats], path, per_seed: bool = False) -> bool:
    """efficiency.png: rliable's IQM-over-runs curve with bootstrap bands per group (and, with
    `per_seed`, every run's curve as a thin line on the per-map panels). False when no group has steps."""
    shown = [s for s in stats if s.curves]
    if not shown:
        return False
    fig, axes = _figure(len(shown))
    from rliable import plot_utils

    colours = _colours(shown)
    for ax, s in zip(axes, shown):
        steps = s.group.steps  # [G]; the IQM at s.curve_steps [P], a subset
        plot_utils.plot_sample_efficiency_curve(
            s.curve_steps, s.curves, s.curve_cis, algorithms=list(s.curves), colors=colours, ax=ax,
            xlabel="environment steps", ylabel=_score_label(s.group),
            labelsize="medium", ticklabelsize="small", legend=True, legendsize="small")
        if per_seed and s.group.name != ALL_MAPS:
            for a, curves in s.group.curve_scores().items():  # [runs, 1, G]
                for run in curves[:, 0]:
                    ax.plot(steps, run, color=colours[a], linewidth=0.6, alpha=0.5)
        ax.set_title(f"{s.group.name}: IQM and 95% CI over runs", fontsize="medium")
    save(fig, path)
    return True

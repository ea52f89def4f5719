"""The study's answer in plain words: what dropout does to the network's test accuracy, where and by how much,
what MC dropout buys, and whether each of the paper's claims holds. The landing page of the book
(``notebooks/index.ipynb``) and the top of the README's generated block (:mod:`snnlib.study.report`) are this
module's output.

Nothing here is decided anew. The effect of a kind at a site on a dataset is the pre-registered Welch test of
its test accuracy against the base network's (:func:`snnlib.study.claims.evaluate_claims`: C1's primary tests
for dropout and dropout2d, C2's secondary tests for feature, feature alpha and alpha dropout; p = 0.5, a new
mask every step, 20 epochs, the planned seeds), significant after Holm's correction within its family; a kind
that is another's operation at a site (:data:`snnlib.study.preregistration.SAME_OPERATION`) is shown once. The
uncertainty sentences read the pre-registered verdict of :mod:`snnlib.study.uncertainty_verdict` and its
values; the claims' lines read :meth:`snnlib.study.claims.Claims.verdict`.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib import transforms
from matplotlib.lines import Line2D

from snnlib.study import claims as C
from snnlib.study import preregistration as P
from snnlib.study import records as R
from snnlib.study import robustness as RB
from snnlib.study import uncertainty_v3 as V3
from snnlib.study import uncertainty_verdict as UV

HELPS, HURTS, UNCLEAR, NO_DATA = "helps", "hurts", "no clear difference", "no data"
EFFECT_LABELS = (HELPS, HURTS, UNCLEAR, NO_DATA)
EFFECT_COLORS = {HELPS: "#1f5fa8", HURTS: "#d55e00", UNCLEAR: "0.55", NO_DATA: "0.8"}
# the kinds that set what they drop to zero, and the two that set it to alpha dropout's negative value
ZEROING_KINDS = ("dropout", "dropout2d", "feature")
ALPHA_KINDS = ("feature_alpha", "alpha")
EFFECT_KINDS = (*ZEROING_KINDS, *ALPHA_KINDS)
SITE_WORDS = {"current": "the synaptic current", "hidden": "the hidden spikes", "input": "the input spikes"}
SITE_HEADINGS = {"current": "synaptic current (the paper's site)", "hidden": "hidden spikes",
                 "input": "input spikes"}
ANSWER_PNG = "answer.png"  # the figure's file name in the README's figures folder (report.write_figures)
VERDICT_WORDS = {"reproduced": "holds", "partly reproduced": "holds in part",
                 "mixed": "holds in some tests, the opposite in others", "contrary": "the opposite holds",
                 "not reproduced": "no significant difference either way",
                 "not enough data": "not decided yet (runs missing)"}
EFFECT_COLUMNS = ("dataset", "site", "kind", "kinds", "difference", "ci_low", "ci_high", "p_holm", "n_base",
                  "n_variant", "base_accuracy", "accuracy", "label")


def _claims(source: C.Claims | pd.DataFrame | Iterable[dict]) -> C.Claims:
    return source if isinstance(source, C.Claims) else C.evaluate_claims(source)


def effect_label(difference: float, p_holm: float, complete: bool = True, alpha: float = P.ALPHA) -> str:
    """*helps* (test accuracy significantly higher than the base network's after Holm), *hurts* (significantly
    lower), *no clear difference*, or *no data* while a planned run is missing."""
    if not complete or math.isnan(difference) or math.isnan(p_holm):
        return NO_DATA
    if p_holm < alpha and difference != 0:
        return HELPS if difference > 0 else HURTS
    return UNCLEAR


def kinds_label(site: str, kind: str) -> str:
    """``kind``'s name at ``site`` with the kinds of :data:`EFFECT_KINDS` that are the same operation there:
    ``dropout2d = feature dropout`` on the synaptic current."""
    same = [k for k in EFFECT_KINDS if k != kind and P.operation(site, k) == P.operation(site, kind)]
    return " = ".join(R.KIND_NAMES[k] for k in (kind, *same))


def effect_tests(claims: C.Claims) -> list[tuple[str, str, str, C.Test]]:
    """(dataset, site, kind, test) for each distinct operation of :data:`EFFECT_KINDS` at each site and dataset,
    in that order: the Welch test of its test accuracy against the base network (C1's primary test where there
    is one, else C2's secondary test)."""
    welch = sorted((t for t in claims.tests if t.metric == "test_acc" and t.test == "welch"),
                   key=lambda t: t.role != "primary")
    chosen = []
    for dataset in P.DATASETS:
        for site in P.SITES:
            for kind in P.distinct(site, EFFECT_KINDS):
                test = next((t for t in welch if (t.dataset, t.site) == (dataset, site)
                             and P.operation(site, t.kind) == P.operation(site, kind)), None)
                if test is not None:
                    chosen.append((dataset, site, kind, test))
    return chosen


def effects(source: C.Claims | pd.DataFrame | Iterable[dict]) -> pd.DataFrame:
    """Every kind at every site on every dataset against the base network, one row per distinct operation
    (:func:`effect_tests`): ``difference`` (mean test accuracy minus the base network's, percentage points) with
    its 95% Welch interval ``ci_low``, ``ci_high``, Holm's ``p_holm``, the runs on each side, both mean
    accuracies (%) and the ``label`` (:func:`effect_label`). ``source``: the claims of
    :func:`snnlib.study.claims.evaluate_claims`, a :func:`snnlib.study.records.runs_table` or records."""
    rows = []
    for dataset, site, kind, t in effect_tests(_claims(source)):
        rows.append({"dataset": dataset, "site": site, "kind": kind, "kinds": kinds_label(site, kind),
                     "difference": 100 * t.difference, "ci_low": 100 * t.ci_low, "ci_high": 100 * t.ci_high,
                     "p_holm": t.p_holm, "n_base": t.n_base, "n_variant": t.n_variant,
                     "base_accuracy": 100 * t.base_mean, "accuracy": 100 * t.variant_mean,
                     "label": effect_label(t.difference, t.p_holm, complete=not t.missing)})
    return pd.DataFrame(rows, columns=list(EFFECT_COLUMNS))


# ---------------------------------------------------------------- the figure

def plot_effects(frame: pd.DataFrame, datasets: Sequence[str] = P.DATASETS, width: float = 5.8,
                 linear_within: float = 1.0) -> plt.Figure:
    """The answer in one figure: a panel per dataset, a row per kind grouped by site (:func:`effects`), each
    the change in test accuracy against the base network with its 95% interval, coloured *helps* (blue),
    *hurts* (orange) or *no clear difference* (grey), its value written beside it. The axis is linear within
    ± ``linear_within`` points and logarithmic beyond (matplotlib's ``symlog``), so that changes of a fraction
    of a point and of tens of points both read with their intervals. ``width`` in inches (5.8: 580 px in the
    book, beside the answer's sentences)."""
    sites = [s for s in P.SITES if (frame["site"] == s).any()] if len(frame) else list(P.SITES)
    rows: list[tuple[str, str | None]] = []  # (site, kind), kind None: the site's heading
    for site in sites:
        rows.append((site, None))
        rows += [(site, k) for k in P.distinct(site, EFFECT_KINDS)
                 if len(frame) and ((frame["site"] == site) & (frame["kind"] == k)).any()]
    fig, axes = plt.subplots(1, len(datasets), figsize=(width, 0.2 * len(rows) + 0.95), sharey=True, squeeze=False)
    values = frame[["ci_low", "ci_high", "difference"]].to_numpy().ravel() if len(frame) else []
    values = [v for v in values if math.isfinite(v)]
    low = min(min(values, default=0.0), -linear_within) * 1.6
    high = max(max(values, default=0.0), linear_within) * 6.0  # room for the values right of the intervals
    ticks = [t for t in (-30, -5, -1, 0, 1, 3, 10, 30) if low <= t <= max(high / 3.5, linear_within)]
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for y, (site, kind) in enumerate(rows):
            if kind is None:
                if y:
                    ax.axhline(y - 0.5, color="0.75", lw=0.8)
                continue
            match = frame[(frame["dataset"] == dataset) & (frame["site"] == site) & (frame["kind"] == kind)]
            if not len(match) or match.iloc[0]["label"] == NO_DATA:
                ax.text(0.03, y, "waiting for runs", transform=ax.get_yaxis_transform(), va="center",
                        color="0.5", fontsize=7, style="italic")
                continue
            r = match.iloc[0]
            color = EFFECT_COLORS[r["label"]]
            lo, hi = (r["ci_low"], r["ci_high"]) if math.isfinite(r["ci_low"]) else (r["difference"],) * 2
            ax.plot([lo, hi], [y, y], color=color, lw=2.6, solid_capstyle="butt")
            ax.plot(r["difference"], y, "o", color=color, ms=4.5, mec="white", mew=0.6)
            ax.annotate(_signed(r["difference"], 1), (hi, y), xytext=(4, 0), textcoords="offset points",
                        va="center", ha="left", fontsize=7.5, color=color)
        ax.axvline(0, color="0.2", lw=0.9)
        ax.set_xscale("symlog", linthresh=linear_within, linscale=0.7)
        ax.set_xlim(low, high)
        ax.set_xticks(ticks, [_signed(t, 0) if t else "0" for t in ticks])
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.grid(alpha=0.3, axis="x")
        ax.tick_params(axis="x", labelsize=8, pad=2)
        base = frame[frame["dataset"] == dataset]["base_accuracy"] if len(frame) else pd.Series(dtype=float)
        ax.set_title(f"{R.DATASET_NAMES.get(dataset, dataset)}"
                     + (f" (base {base.iloc[0]:.1f}%)" if len(base) and math.isfinite(base.iloc[0]) else ""),
                     fontsize=9, pad=4)
    first = axes[0][0]
    labels = ["" if kind is None else _wrap(kinds_label(site, kind), 21) for site, kind in rows]
    first.set_yticks(range(len(rows)), labels, fontsize=8, linespacing=0.85)
    first.tick_params(axis="y", length=0, pad=3)
    first.set_ylim(len(rows) - 0.5, -0.5)
    handles = [Line2D([], [], color=EFFECT_COLORS[label], marker="o", ms=4.5, lw=2.6, label=label)
               for label in (HELPS, HURTS, UNCLEAR)]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=7.5, frameon=False, borderaxespad=0.1,
               handlelength=1.6, columnspacing=1.2)
    fig.tight_layout(rect=(0, 0.09, 1, 1), w_pad=0.4)
    fig.text(0.5, 0.065, "test accuracy − base network, percentage points (95% interval)", fontsize=7.5,
             ha="center")
    # the sites' headings in the labels' column, over the rows of their kinds
    heading = transforms.blended_transform_factory(fig.transFigure, first.transData)
    for y, (site, kind) in enumerate(rows):
        if kind is None:
            fig.text(0.01, y, SITE_HEADINGS[site], transform=heading, va="center", ha="left", fontsize=8,
                     fontweight="bold", bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5})
    return fig


def _wrap(text: str, width: int = 30) -> str:
    return textwrap.fill(text, width)


def _signed(value: float, digits: int = 2) -> str:
    """``+0.41``, ``−1.21`` (a minus sign, not a hyphen)."""
    return f"{value:+.{digits}f}".replace("-", "\u2212")


def write_effects_png(source: C.Claims | pd.DataFrame | Iterable[dict], path: str | Path, dpi: int = 110) -> Path:
    """:func:`plot_effects` of :func:`effects` as a PNG file at ``path`` (the README's figure)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = plot_effects(effects(source))
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- sentences

def _join(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}" if items else ""


def _item(row: pd.Series) -> str:
    return f"{R.KIND_NAMES[row['kind']]} on {SITE_WORDS[row['site']]} ({_signed(row['difference'])})"


def base_sentence(frame: pd.DataFrame) -> str:
    """The base network's mean test accuracy on each dataset, over how many runs."""
    parts = []
    for dataset in P.DATASETS:
        rows = frame[(frame["dataset"] == dataset) & frame["base_accuracy"].map(math.isfinite)]
        if len(rows):
            parts.append(f"{rows.iloc[0]['base_accuracy']:.2f}% on {R.DATASET_NAMES[dataset]}")
    if not parts:
        return "No base network has finished its runs yet."
    runs = _join([str(n) for n in sorted(set(frame[frame["base_accuracy"].map(math.isfinite)]["n_base"]))])
    return (f"Without dropout the network reaches a test accuracy of {_join(parts)} (mean of {runs} runs); dropout "
            "here has p = 0.5 and a new mask every time step.")


def zeroing_sentence(frame: pd.DataFrame, dataset: str, first: bool = True) -> str:
    """Dropout, dropout2d and feature dropout on ``dataset``: in how many places they help, hurt or make no
    clear difference, and where and by how much they help most and hurt most (``first``: the sentence names the
    kinds; else it refers to them)."""
    rows = frame[(frame["dataset"] == dataset) & frame["kind"].isin(ZEROING_KINDS) & (frame["label"] != NO_DATA)]
    name = R.DATASET_NAMES[dataset]
    subject = "dropout, dropout2d and feature dropout (which zero what they drop)" if first else "they"
    if not len(rows):
        return f"On {name}, {subject} wait for their runs."
    counts = {label: int((rows["label"] == label).sum()) for label in (HELPS, HURTS, UNCLEAR)}
    text = (f"On {name}, {subject} help in {counts[HELPS]} of {len(rows)} places and hurt in {counts[HURTS]}"
            + (f" (no clear difference in {counts[UNCLEAR]})" if counts[UNCLEAR] else ""))
    ends = []
    if counts[HELPS]:
        best = rows.loc[rows[rows["label"] == HELPS]["difference"].idxmax()]
        ends.append(f"at best {_signed(best['difference'])} points ({R.KIND_NAMES[best['kind']]} on "
                    f"{SITE_WORDS[best['site']]})")
    if counts[HURTS]:
        worst = rows.loc[rows[rows["label"] == HURTS]["difference"].idxmin()]
        ends.append(f"at worst {_signed(worst['difference'])} ({R.KIND_NAMES[worst['kind']]} on "
                    f"{SITE_WORDS[worst['site']]})")
    return text + (": " + ", ".join(ends) if ends else "") + "."


def alpha_sentence(frame: pd.DataFrame) -> str:
    """Alpha and feature alpha dropout on both datasets: in how many places they hurt, by how much, and the
    worst case with the accuracy it leaves."""
    rows = frame[frame["kind"].isin(ALPHA_KINDS) & (frame["label"] != NO_DATA)]
    if not len(rows):
        return "Alpha dropout and feature alpha dropout wait for their runs."
    hurts = rows[rows["label"] == HURTS]
    others = [f"help in {n}" if label == HELPS else f"make no clear difference in {n}"
              for label in (HELPS, UNCLEAR) if (n := int((rows["label"] == label).sum()))]
    text = (f"Alpha dropout and feature alpha dropout (which set what they drop to a negative value) hurt in "
            f"{len(hurts)} of {len(rows)} places" + (f" and {_join(others)}" if others else ""))
    if len(hurts):
        worst = hurts.loc[hurts["difference"].idxmin()]
        text += (f", by {-hurts['difference'].max():.2f} to {-hurts['difference'].min():.2f} points, down to "
                 f"{worst['accuracy']:.2f}% (chance: {100 * P.CHANCE:.0f}%) with {R.KIND_NAMES[worst['kind']]} on "
                 f"{SITE_WORDS[worst['site']]} of {R.DATASET_NAMES[worst['dataset']]}")
    return text + "."


def uncertainty_frames(evaluations: Sequence[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(:func:`snnlib.study.uncertainty_verdict.method_values`, its verdict matrix) of the evaluations."""
    values = UV.method_values(evaluations)
    return values, UV.verdict_matrix(UV.verdict_tests(values))


def _mc_rows(matrix: pd.DataFrame, baseline: str) -> pd.DataFrame:
    if not len(matrix):
        return matrix
    return matrix[(matrix["baseline"] == baseline) & (matrix["role"] == "primary")
                  & (matrix["method"] == f"{UV.METHOD_NAMES['mc_dropout']}, {P.FULL_PASSES} passes")]


def mc_verdict_sentence(matrix: pd.DataFrame) -> str:
    """How many dropout networks' MC dropout (:data:`~snnlib.study.preregistration.FULL_PASSES` passes) has
    better uncertainty than each of the base network's baselines by the pre-registered rule (better on at least
    three of the five primary measures and worse on none), and how many worse."""
    against = []
    for baseline, words in (("deterministic", "a single base network"), ("temperature", "temperature scaling"),
                            ("ensemble", f"an ensemble of {P.ENSEMBLE_MEMBERS} base networks")):
        rows = _mc_rows(matrix, baseline)
        if not len(rows) or (rows["verdict"] == "not enough data").any():
            against.append(f"against {words}: not enough data yet")
            continue
        better, worse = int((rows["verdict"] == "better").sum()), int((rows["verdict"] == "worse").sum())
        text = (f"better than {words} for {better} of {len(rows)} dropout networks" if better
                else f"never better than {words}")
        against.append(text + (f" (worse for {worse})" if worse else ""))
    return (f"MC dropout (dropout kept on at test time, {P.FULL_PASSES} passes averaged) gives uncertainty "
            + _join(against) + f"; better means at least {P.MAJORITY} of {len(UV.PRIMARY_NAMES)} measures better and "
            "none worse.")


def _mean(values: pd.DataFrame, dataset: str, variant: str, method: str, passes: int | None, column: str) -> float:
    found = UV.row_values(values, dataset, variant, method, passes, column)
    return sum(found.values()) / len(found) if found else math.nan


def nll_sentence(values: pd.DataFrame) -> str:
    """What MC dropout buys in numbers: per dataset, the test NLL of the best kind's MC dropout against a single
    base network, temperature scaling and an ensemble of five base networks."""
    parts = []
    for dataset in P.DATASETS:
        if not len(values) or not (values["dataset"] == dataset).any():
            continue
        mc = {k: _mean(values, dataset, k, "mc_dropout", P.FULL_PASSES, "test_nll") for k in P.UNCERTAINTY_KINDS}
        mc = {k: v for k, v in mc.items() if math.isfinite(v)}
        base = [_mean(values, dataset, "none", m, p, "test_nll")
                for m, p in (("deterministic", 1), ("temperature", 1), ("ensemble", None))]
        if not mc or not all(math.isfinite(n) for n in base):
            continue
        best = min(mc, key=mc.get)
        parts.append(f"{R.DATASET_NAMES[dataset]} {mc[best]:.3f} ({R.KIND_NAMES[best]}) against "
                     f"{', '.join(f'{n:.3f}' for n in base)}")
    if not parts:
        return "The uncertainty evaluations wait for their runs."
    return ("Test NLL (lower is better) of the best MC dropout against a single base network, temperature "
            "scaling and the ensemble: " + "; ".join(parts) + ".")


def answer_sentences(source: C.Claims | pd.DataFrame | Iterable[dict], evaluations: Sequence[dict] = (),
                     matrix: pd.DataFrame | None = None, table: pd.DataFrame | None = None,
                     reruns: str | Path | None = None) -> list[str]:
    """The answer in up to eight sentences, every number from the records: the base network
    (:func:`base_sentence`), the zeroing kinds on each dataset (:func:`zeroing_sentence`), the alpha kinds
    (:func:`alpha_sentence`), with the runs ``table`` the exploratory learning rate per kind
    (:func:`snnlib.study.robustness.rate_answer_sentence`, once its runs are in), MC dropout's verdict against the
    base network's baselines (:func:`mc_verdict_sentence`) and its numbers (:func:`nll_sentence`), and with
    ``reruns`` (where the uncertainty reruns land) the exploratory verdict with every method temperature-scaled
    (:func:`snnlib.study.uncertainty_v3.summary_sentence`, once they have landed). ``matrix``: the uncertainty
    verdict matrix if already computed."""
    frame = effects(source)
    sentences = [base_sentence(frame), *(zeroing_sentence(frame, d, first=i == 0) for i, d in enumerate(P.DATASETS)),
                 alpha_sentence(frame)]
    if table is not None and (rates := RB.rate_answer_sentence(table)):
        sentences.append(rates)
    if evaluations:
        values = UV.method_values(evaluations)
        if matrix is None:
            matrix = UV.verdict_matrix(UV.verdict_tests(values))
        sentences += [mc_verdict_sentence(matrix), nll_sentence(values)]
    if reruns is not None and (found := V3.second_round(reruns)) and (scaled := V3.summary_sentence(found[1], found[0])):
        sentences.append(scaled)
    return sentences


def answer_list(source: C.Claims | pd.DataFrame | Iterable[dict], evaluations: Sequence[dict] = (),
                matrix: pd.DataFrame | None = None, table: pd.DataFrame | None = None,
                reruns: str | Path | None = None) -> str:
    """:func:`answer_sentences` as a Markdown list (the landing page's)."""
    return "\n".join(f"- {sentence}" for sentence in answer_sentences(source, evaluations, matrix, table, reruns))


def _metric_counts(tests: Sequence[C.Test]) -> str:
    parts = []
    for metric in dict.fromkeys(C.metric_name(t) for t in tests):
        labels = [t.label for t in tests if C.metric_name(t) == metric]
        text = f"{metric} {labels.count('yes')} of {len(labels)}"
        if n := labels.count("contrary"):
            text += f" ({n} significantly the other way)"
        parts.append(text)
    return "; ".join(parts)


def _site_verdicts(claims: C.Claims, claim: str, sites: Sequence[str]) -> str:
    readings = tuple(P.C2_READINGS) if claim == "C2" else (None,)
    by_site = {}
    for site in sites:
        verdicts = [claims.verdict(claim, site, "both", r) for r in readings]
        by_site[site] = (f"*{verdicts[0]}*" if len(set(verdicts)) == 1 else " / ".join(
            f"*{v}* ({r.split(' = ')[-1]})" for r, v in zip(readings, verdicts, strict=True)))
    if len(sites) > 1 and len(set(by_site.values())) == 1:
        return f"{next(iter(by_site.values()))} on each of the {len(sites)} sites"
    return "; ".join(f"{text} on {SITE_WORDS[site]}" for site, text in by_site.items())


def claims_lines(source: C.Claims | pd.DataFrame | Iterable[dict]) -> list[str]:
    """One line per claim of the paper: what it says, whether it holds over all its primary tests (the
    pre-registered rule, :func:`snnlib.study.claims.combine`) in plain words (:data:`VERDICT_WORDS`), its verdict
    at each site (:meth:`snnlib.study.claims.Claims.verdict`; C2 under each reading of "feature dropout" where they
    differ) and how many of its primary tests per metric go the paper's way."""
    claims = _claims(source)
    lines = []
    for claim in ("C1", "C2", "C3"):
        tests = claims.primary(claim)
        overall = C.combine([t.label for t in tests])
        sites = sorted({t.site for t in tests}, key=P.SITES.index)
        lines.append(f"**{claim}**, {C.CLAIM_TEXT[claim]}: **{VERDICT_WORDS[overall]}** "
                     f"({_site_verdicts(claims, claim, sites)}). Primary tests as the paper claims: "
                     f"{_metric_counts(tests)}.")
    return lines


def answer_markdown(source: C.Claims | pd.DataFrame | Iterable[dict], evaluations: Sequence[dict] = (),
                    figure: str | None = None, matrix: pd.DataFrame | None = None,
                    table: pd.DataFrame | None = None, reruns: str | Path | None = None) -> str:
    """The answer as Markdown (the README's opening): :func:`answer_list`, the figure at ``figure`` (a path or
    link; none: no image), then :func:`claims_lines` as a list."""
    claims = _claims(source)
    parts = ["**The answer.**\n\n" + answer_list(claims, evaluations, matrix, table, reruns)]
    if figure:
        parts.append(f"![The change in test accuracy of every dropout kind at every site on each dataset against "
                     f"the base network, with its 95% interval: blue where it helps, orange where it hurts, grey "
                     f"where the difference is not clear]({figure})")
    parts.append("**The paper's three claims:**\n\n" + "\n".join(f"- {line}" for line in claims_lines(claims)))
    return "\n\n".join(parts)

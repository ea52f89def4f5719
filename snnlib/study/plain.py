"""The verdicts in plain words: what happened (dropout raised or lowered the test accuracy by so much, a kind
ended at so much accuracy, a ranking kept so many of its top 10) beside the paper-relative label, for the
claims chapter and the README. Every number comes from the tests of :func:`snnlib.study.claims.evaluate_claims`.
"""

from __future__ import annotations

from snnlib.study import claims as C
from snnlib.study import preregistration as P
from snnlib.study import records as R

SIGNIFICANT = {"yes": "significant", "contrary": "significant", "not significant": "not significant",
               "no data": "waiting for runs"}


def _c1_words(tests: list[C.Test]) -> str:
    parts = []
    for kind in dict.fromkeys(t.kind for t in tests):
        acc = next((t for t in tests if t.kind == kind and t.metric == "test_acc"), None)
        loss = next((t for t in tests if t.kind == kind and t.metric == "train_loss"), None)
        if acc is None or loss is None:
            continue
        points = 100 * acc.difference
        change = ("left the test accuracy unchanged" if round(points, 2) == 0 else
                  f"{'raised' if points > 0 else 'lowered'} the test accuracy by {abs(points):.2f} points")
        parts.append(f"{C.kind_name(acc)} {change} ({SIGNIFICANT[acc.label]}) and the training loss "
                     f"{'rose' if loss.difference > 0 else 'fell'} ({SIGNIFICANT[loss.label]})")
    return "; ".join(parts)


def _c2_words(tests: list[C.Test]) -> str:
    parts = []
    for t in tests:
        if t.metric != "test_acc":
            continue
        side = "below" if t.variant_mean <= P.FAIL_ACCURACY else "above"
        parts.append(f"{C.kind_name(t)} ended at {100 * t.variant_mean:.1f}% test accuracy, {side} the "
                     f"{100 * P.FAIL_ACCURACY:.0f}% cut-off ({SIGNIFICANT[t.label]})")
    return "; ".join(parts)


def _c3_words(tests: list[C.Test]) -> str:
    tests = [t for t in tests if t.metric == "top10_overlap"]
    if not tests:
        return ""
    control = tests[0].base_mean
    kept = ", ".join(f"{C.kind_name(t)} {t.variant_mean:.1f}" for t in tests)
    return (f"a dropout run keeps on average {kept} of its base run's top 10 neurons; a control run without dropout "
            f"keeps {control:.1f}")


def plain_verdicts(result: C.Claims) -> list[str]:
    """One Markdown bullet per headline verdict (claim, reading, site): its label over both datasets, then per
    dataset what happened in plain words and the dataset's label."""
    lines = []
    for v in result.verdicts:
        if v.dataset != "both":
            continue
        kinds = P.C2_READINGS.get(v.reading)
        scope = f"{v.claim}" + (f" ({v.reading})" if v.claim == "C2" else "") + f" on {C.SITE_NAMES[v.site]}"
        per = []
        for dataset in P.DATASETS:
            tests = [t for t in result.primary(v.claim) if (t.site, t.dataset) == (v.site, dataset)
                     and (kinds is None or t.kind in kinds)]
            words = {"C1": _c1_words, "C2": _c2_words, "C3": _c3_words}[v.claim](tests)
            per.append(f"{R.DATASET_NAMES[dataset]}: {words} → *{result.verdict(v.claim, v.site, dataset, v.reading)}*")
        lines.append(f"- **{scope}: {v.verdict}.** " + " ".join(f"{p}." for p in per))
    return lines


def _verdicts_at(result: C.Claims, claim: str) -> str:
    per_site = {}
    for v in result.verdicts:
        if v.claim == claim and v.dataset == "both":
            per_site.setdefault(v.verdict, []).append(C.SITE_SHORT[v.site] + (f" ({v.reading.split('= ')[-1]})"
                                                                                if claim == "C2" else ""))
    return "; ".join(f"*{verdict}* on the {', '.join(dict.fromkeys(sites))}" for verdict, sites in per_site.items())


def summary(result: C.Claims) -> list[str]:
    """The claims chapter's closing bullets, one per claim, from the tests: C1's verdicts and the range of the
    changes in test accuracy; where C2 is reproduced and what the alpha kinds cost elsewhere; C3's verdict and what
    the control keeps."""
    c1 = [t for t in result.primary("C1") if t.metric == "test_acc" and not t.missing]
    low = min(c1, key=lambda t: t.difference)
    high = max(c1, key=lambda t: t.difference)
    where = f"{R.DATASET_NAMES[high.dataset]}, {C.SITE_SHORT[high.site]}"
    lines = [f"- **C1** is {_verdicts_at(result, 'C1')}: standard dropout and dropout2d changed the test accuracy by "
             f"{100 * low.difference:+.2f} to {100 * high.difference:+.2f} points (the largest gain: "
             f"{C.kind_name(high)}, {where})."]
    reproduced = [f"{R.DATASET_NAMES[v.dataset]}'s {C.SITE_SHORT[v.site]} ({v.reading})" for v in result.verdicts
                  if v.claim == "C2" and v.dataset != "both" and v.verdict == "reproduced"]
    lines.append(f"- **C2** is {_verdicts_at(result, 'C2')}; reproduced in full only on "
                 f"{', '.join(reproduced) if reproduced else 'no dataset and site'}.")
    control = {t.dataset: t.base_mean for t in result.primary("C3") if t.metric == "top10_overlap"}
    lines.append(f"- **C3** is {_verdicts_at(result, 'C3')}, but the control, trained without dropout, keeps only "
                 + " and ".join(f"{control[d]:.1f} ({R.DATASET_NAMES[d]})" for d in P.DATASETS if d in control)
                 + " of its base run's top 10 neurons: the ranking changes without dropout too.")
    return lines

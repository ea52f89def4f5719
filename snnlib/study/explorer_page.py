"""The results explorer's page: the charts (Vega-Lite specifications made with Altair), the controls and
the script that draws the data of :func:`snnlib.study.explorer.explorer_data`, as one HTML fragment that
carries Vega's JavaScript, so that it works from ``file://`` with no network and no kernel: in the built
book, in a page of its own (:func:`snnlib.study.explorer.write_explorer`) and in JupyterLab.

The script computes no number: it narrows the controls to the cells the design ran (a choice that was not
run stays in its menu, disabled, with the reason), picks a cell's numbers from the data, scales them for
display and hands them to Vega-Embed; a click on the overview grid selects that cell in the controls.
"""

from __future__ import annotations

import functools
import html
import json

from snnlib.study import records as R

BASE_LABEL = "base network (no dropout)"
CELL_LABEL = "the chosen dropout cell"
# The controls, in the order they narrow the choice: a control offers what the ones before it leave.
CONTROLS = ("dataset", "kind", "site", "mask", "p", "epochs", "lr")
CONTROL_NAMES = {"dataset": "dataset", "kind": "dropout kind", "site": "site", "mask": "mask", "p": "p",
                 "epochs": "epochs", "lr": "learning rate", "metric": "metric"}
# The page's size on the screen (the book's text column is about 770 px wide).
CHART_WIDTH, CHART_HEIGHT = 600, 280
GRID_CELL = 66
# The grid's short names of the kinds ("feature alpha" for feature alpha dropout); its sites by their ids.
GRID_KINDS = {k: name.removesuffix(" dropout") for k, name in R.KIND_NAMES.items()}
SITES = ("current", "hidden", "input")

def chart_specs(limits: dict[str, float] | None = None) -> dict[str, dict]:
    """The page's three Vega-Lite specifications, made with Altair, with named data sets the page fills:
    ``curves`` (per-epoch mean ± sd bands, mean lines and one faint line per seed; data ``band`` and
    ``seeds``), ``strip`` (the values of an uncertainty metric per seed with their mean ± sd; ``points``
    and ``summary``) and ``grid`` (the overview; data ``grid``, the parameter ``picked`` marks the chosen
    cell; the colours of a dataset run from minus to plus its entry in ``limits``, the largest absolute
    change, so that white is no change)."""
    import altair as alt

    who = alt.Color("who:N", scale=alt.Scale(domain=[BASE_LABEL, CELL_LABEL], range=["#6b6b6b", "#d9480f"]),
                    legend=alt.Legend(title=None, orient="top", symbolOpacity=1))
    epoch = alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1, format="d"))
    seeds = alt.Chart(alt.NamedData(name="seeds")).mark_line(strokeWidth=1, opacity=0.3).encode(
        x=epoch, y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)), color=who, detail="line:N")
    band = alt.Chart(alt.NamedData(name="band")).mark_area(opacity=0.2).encode(
        x=epoch, y=alt.Y("lo:Q", title=None), y2="hi:Q", color=who)
    mean = alt.Chart(alt.NamedData(name="band")).mark_line(strokeWidth=2.5, point=alt.OverlayMarkDef(size=18)).encode(
        x=epoch, y=alt.Y("mean:Q", title=None), color=who,
        tooltip=[alt.Tooltip("who:N", title="network"), alt.Tooltip("epoch:Q"),
                 alt.Tooltip("mean:Q", title="mean", format=".4~f"), alt.Tooltip("sd:Q", title="sd", format=".4~f"),
                 alt.Tooltip("n:Q", title="seeds")])
    curves = alt.layer(band, seeds, mean).properties(width=CHART_WIDTH, height=CHART_HEIGHT)

    group = alt.Y("group:N", title=None, sort=None, axis=alt.Axis(labelLimit=260))
    value = alt.X("value:Q", title=None, scale=alt.Scale(zero=False))
    points = alt.Chart(alt.NamedData(name="points")).mark_point(filled=True, opacity=0.55, size=45).encode(
        x=value, y=group, color=who, tooltip=[alt.Tooltip("seed:Q"), alt.Tooltip("value:Q", format=".4~f")])
    spread = alt.Chart(alt.NamedData(name="summary")).mark_rule(strokeWidth=2).encode(
        x=alt.X("lo:Q", title=None), x2="hi:Q", y=group, color=who)
    middle = alt.Chart(alt.NamedData(name="summary")).mark_tick(thickness=3, size=24).encode(
        x=alt.X("mean:Q", title=None), y=group, color=who,
        tooltip=[alt.Tooltip("group:N", title="network"), alt.Tooltip("mean:Q", format=".4~f"),
                 alt.Tooltip("sd:Q", format=".4~f"), alt.Tooltip("n:Q", title="seeds")])
    strip = alt.layer(spread, points, middle).properties(width=CHART_WIDTH - 200, height=150)

    picked = alt.param(name="picked", value="")
    kinds = [GRID_KINDS[k] for k in R.KIND_NAMES if k != "none"]
    panels = []
    for dataset in R.DATASETS:
        limit = (limits or {}).get(dataset) or 1.0
        cells = alt.Chart(alt.NamedData(name="grid")).transform_filter(alt.datum.dataset == dataset)
        x = alt.X("site:N", sort=list(SITES), title=None, axis=alt.Axis(orient="top", labelAngle=0))
        y = alt.Y("kind_short:N", sort=kinds, title=None)
        rect = cells.mark_rect(stroke="#111111", cursor="pointer", invalid="show").encode(
            x=x, y=y,
            color=alt.condition("isValid(datum.diff)",
                                alt.Color("diff:Q", scale=alt.Scale(scheme="redblue", domain=[-limit, limit]),
                                          legend=alt.Legend(title="Δ test accuracy (points)", orient="bottom",
                                                            gradientLength=150, titleLimit=200)),
                                alt.value("#e9e9e9")),
            strokeWidth=alt.condition("datum.target === picked", alt.value(3), alt.value(0)),
            description="aria:N",
            tooltip=[alt.Tooltip("aria:N", title="cell")])
        text = cells.mark_text(fontSize=11, cursor="pointer", aria=False).encode(
            x=x, y=y, text="label:N",
            color=alt.condition("datum.dark", alt.value("#ffffff"), alt.value("#222222")))
        panels.append(alt.layer(rect, text).properties(
            title=R.DATASET_NAMES[dataset], width=3 * GRID_CELL, height=len(kinds) * 26))
    grid = alt.hconcat(*panels, spacing=24).resolve_scale(color="independent").add_params(picked)
    return {"curves": curves.to_dict(), "strip": strip.to_dict(), "grid": grid.to_dict()}


# ---------------------------------------------------------------- the page

@functools.lru_cache(maxsize=1)
def vega_bundle() -> str:
    """Vega, Vega-Lite (the version Altair writes) and Vega-Embed as one script that defines ``vegaEmbed``
    on ``window``: ``vl_convert.javascript_bundle``, the script Altair inlines in ``chart.save(...,
    inline=True)``; about 0.9 MB, built once per process (two seconds)."""
    import altair as alt
    import vl_convert

    version = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    return vl_convert.javascript_bundle(vl_version=version)


def explorer_html(data: dict, standalone: bool = False) -> str:
    """The explorer as an HTML fragment (a ``div`` with its style, data and scripts) for a notebook
    output or a page; ``standalone`` gives a whole HTML document. The data are those of
    :func:`snnlib.study.explorer.explorer_data`; Vega's JavaScript is inlined (:func:`vega_bundle`), so
    nothing is fetched."""
    main = data["main"]
    mask = {o["value"]: o["name"] for o in data["options"]["mask"]}.get(main["mask"], main["mask"])
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    controls = "".join(
        f'<label class="snx-control">{html.escape(CONTROL_NAMES[key])}'
        f'<select data-key="{key}" aria-label="{html.escape(CONTROL_NAMES[key])}"></select></label>'
        for key in (*CONTROLS, "metric"))
    fragment = f"""<div class="snn-explorer" data-ready="0">
<style>{_STYLE}</style>
<p class="snx-caption">Change in test accuracy against the base network of the same dataset, in percentage
points, at p = {main['p']}, {mask}, {main['epochs']} epochs and learning rate {main['lr']} (grey: not run;
"= kind": the same operation as that kind). Click a cell to explore it.</p>
<div class="snx-grid"></div>
<div class="snx-controls">{controls}</div>
<p class="snx-note" role="status"></p>
<p class="snx-title"></p>
<div class="snx-chart"></div>
<div class="snx-facts"></div>
<script>(function () {{
{vega_bundle()}
}})();</script>
<script type="application/json" class="snx-data">{payload}</script>
<script>{_SCRIPT}</script>
</div>"""
    if not standalone:
        return fragment
    return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            '<title>Explore the results</title>\n</head>\n<body>\n' + fragment + "\n</body>\n</html>\n")


_STYLE = """
.snn-explorer { font-size: 0.92rem; background: #ffffff; color: #1f1f1f; padding: 0.4rem 0; }
.snn-explorer .snx-caption { margin: 0 0 0.3rem 0; color: #444444; }
.snn-explorer .snx-controls { display: flex; flex-wrap: wrap; gap: 0.35rem 0.8rem; margin: 0.6rem 0 0.2rem 0; }
.snn-explorer .snx-control { display: flex; flex-direction: column; font-size: 0.8rem; color: #444444; }
.snn-explorer .snx-control select { font-size: 0.88rem; width: auto; min-width: 4.5rem; max-width: 15rem;
  padding: 0.1rem; }
.snn-explorer .snx-note { min-height: 1.2em; margin: 0.2rem 0; color: #8a4b00; }
.snn-explorer .snx-title { font-weight: 600; margin: 0.3rem 0; }
.snn-explorer .snx-facts p, .snn-explorer .snx-facts li { margin: 0.25rem 0; }
.snn-explorer .snx-facts pre { white-space: pre-wrap; word-break: break-all; font-size: 0.8rem;
  background: #f5f5f5; padding: 0.4rem; margin: 0.2rem 0; }
.snn-explorer .snx-label { font-weight: 600; }
.snn-explorer .snx-other { color: #666666; }
"""

_SCRIPT = r"""
(function () {
  "use strict";
  var root = document.currentScript && document.currentScript.closest(".snn-explorer");
  if (!root) { var all = document.querySelectorAll(".snn-explorer"); root = all[all.length - 1]; }
  var D = JSON.parse(root.querySelector("script.snx-data").textContent);
  var ORDER = ["dataset", "kind", "site", "mask", "p", "epochs", "lr"];
  var NAMES = {dataset: "dataset", kind: "dropout kind", site: "site", mask: "mask", p: "p", epochs: "epochs",
               lr: "learning rate", metric: "metric"};
  var cells = {}, dropout = [];
  D.cells.forEach(function (c) { cells[c.id] = c; if (c.kind !== "none") dropout.push(c); });
  var byKey = {};
  dropout.forEach(function (c) { byKey[ORDER.map(function (k) { return c.sel[k]; }).join("|")] = c; });
  var selects = {};
  root.querySelectorAll("select[data-key]").forEach(function (s) { selects[s.dataset.key] = s; });
  var first = dropout.filter(function (c) {
    return ["mask", "p", "epochs", "lr"].every(function (k) { return c.sel[k] === D.main[k]; });
  })[0] || dropout[0];
  var state = Object.assign({}, first.sel, {metric: "test_acc"});
  var chartView = null, gridView = null, queue = Promise.resolve(), renders = 0;

  function esc(s) {
    return String(s).replace(/[&<>"]/g, function (ch) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[ch];
    });
  }
  function nameOf(key, value) {
    var found = (D.options[key] || []).filter(function (o) { return o.value === value; })[0];
    return found ? found.name : value;
  }
  function matching(keys) {
    return dropout.filter(function (c) {
      return keys.every(function (k) { return c.sel[k] === state[k]; });
    });
  }
  function current() { return byKey[ORDER.map(function (k) { return state[k]; }).join("|")]; }
  function preferred(key, available) {
    if (D.main[key] !== undefined && available.indexOf(D.main[key]) >= 0) return D.main[key];
    return D.options[key].map(function (o) { return o.value; }).filter(function (v) {
      return available.indexOf(v) >= 0; })[0];
  }
  function whyNot(key, value) {
    if (key === "site" || key === "kind") {
      var site = key === "site" ? value : state.site, kind = key === "kind" ? value : state.kind;
      var same = D.same[site + "|" + kind];
      if (same) return "the same operation as " + same.name + " here";
    }
    if (key === "metric") return "not evaluated for this cell";
    return "not run with the settings above";
  }
  function metricAvailable(cell, metric) {
    return D.metrics[metric].per_epoch ? !!cell.series[metric] : !!cell.uncertainty[metric];
  }

  // Narrows each control to what the ones before it leave; a choice the design did not run is kept
  // visible but disabled, and a choice that is no longer available moves to the nearest one that is.
  function settle() {
    var notes = [];
    ORDER.forEach(function (key, i) {
      var rows = matching(ORDER.slice(0, i));
      var available = [];
      rows.forEach(function (c) { if (available.indexOf(c.sel[key]) < 0) available.push(c.sel[key]); });
      if (available.indexOf(state[key]) < 0) {
        var chosen = preferred(key, available);
        notes.push(NAMES[key] + " " + nameOf(key, state[key]) + " was not run with these settings: showing " +
                   nameOf(key, chosen) + ".");
        state[key] = chosen;
      }
      fill(key, D.options[key].map(function (o) {
        var ok = available.indexOf(o.value) >= 0;
        return {value: o.value, text: ok ? o.name : o.name + " (" + whyNot(key, o.value) + ")", ok: ok};
      }));
    });
    var cell = current();
    if (!metricAvailable(cell, state.metric)) {
      notes.push(D.metrics[state.metric].name + " is not evaluated for this cell: showing test accuracy.");
      state.metric = "test_acc";
    }
    fill("metric", D.options.metric.map(function (o) {
      var ok = metricAvailable(cell, o.value);
      return {value: o.value, text: ok ? o.name : o.name + " (" + whyNot("metric", o.value) + ")", ok: ok};
    }));
    return notes;
  }
  function fill(key, entries) {
    var s = selects[key];
    s.innerHTML = "";
    entries.forEach(function (e) {
      var o = document.createElement("option");
      o.value = e.value; o.textContent = e.text; o.disabled = !e.ok;
      s.appendChild(o);
    });
    s.value = state[key];
    s.disabled = entries.filter(function (e) { return e.ok; }).length < 2;
  }

  function fmt(x, digits) { return x === null || x === undefined ? "n/a" : Number(x).toFixed(digits); }
  function signed(x, digits) { return (x > 0 ? "+" : x < 0 ? "\u2212" : "") + Math.abs(x).toFixed(digits); }

  function curveData(cell, base, metric) {
    var m = D.metrics[metric], band = [], seeds = [];
    [[base, D.labels.base], [cell, D.labels.cell]].forEach(function (pair) {
      var c = pair[0], who = pair[1];
      if (!c || !c.series[metric]) return;
      var s = c.series[metric];
      s.mean.forEach(function (mean, i) {
        if (mean === null) return;
        var sd = s.sd[i] === null ? 0 : s.sd[i];
        band.push({who: who, epoch: i + 1, mean: mean * m.scale, sd: s.sd[i] === null ? null : sd * m.scale,
                   lo: (mean - sd) * m.scale, hi: (mean + sd) * m.scale, n: c.n});
      });
      s.seeds.forEach(function (row, j) {
        row.forEach(function (v, i) {
          if (v !== null) seeds.push({who: who, line: who + " " + c.seeds[j], seed: c.seeds[j], epoch: i + 1,
                                      value: v * m.scale});
        });
      });
    });
    return {band: band, seeds: seeds};
  }
  function stripData(cell, base, metric) {
    var points = [], summary = [];
    function add(c, method, who, group) {
      var u = c && c.uncertainty[metric] && c.uncertainty[metric][method];
      if (!u) return;
      u.values.forEach(function (v, j) { points.push({who: who, group: group, seed: u.seeds[j], value: v}); });
      var sd = u.sd === null ? 0 : u.sd;
      summary.push({who: who, group: group, mean: u.mean, sd: u.sd, lo: u.mean - sd, hi: u.mean + sd, n: u.n});
    }
    add(base, "deterministic", D.labels.base, "base network, dropout off");
    add(cell, "deterministic", D.labels.cell, "this cell, dropout off");
    add(cell, "mc_dropout", D.labels.cell, "this cell, MC dropout");
    return {points: points, summary: summary};
  }

  function facts(cell, base, metric) {
    var m = D.metrics[metric], out = [];
    out.push("<p>Runs: seeds " + esc(cell.seed_text) + " (n = " + cell.n + ")" +
             (base ? "; base network: seeds " + esc(base.seed_text) + " (n = " + base.n + ")" :
              "; no base network was run with this budget and learning rate") + ".</p>");
    if (m.per_epoch) {
      var mine = cell.final[metric], theirs = base && base.final[metric], d = cell.vs_base[metric];
      out.push("<p>After the last epoch (" + cell.epochs + "), " + esc(m.name) + ": this cell " +
               fmt(mine.mean * m.scale, m.digits) + " \u00b1 " + fmt(mine.sd === null ? null : mine.sd * m.scale, m.digits) +
               (theirs ? ", base network " + fmt(theirs.mean * m.scale, m.digits) + " \u00b1 " +
                fmt(theirs.sd === null ? null : theirs.sd * m.scale, m.digits) : "") + " (mean \u00b1 sd over seeds).</p>");
      if (d && d.diff !== null) {
        out.push("<p class=\"snx-difference\">Difference to the base network: <b>" + signed(d.diff * m.scale, m.digits) +
                 m.unit + "</b>" + (d.low !== null ? ", 95% interval [" + signed(d.low * m.scale, m.digits) + ", " +
                 signed(d.high * m.scale, m.digits) + "]" : " (no interval: a side has fewer than two runs)") +
                 " (Welch, n = " + d.n + " vs " + d.n_base + ").</p>");
      }
    } else {
      var u = cell.uncertainty[metric], du = cell.uncertainty_vs_base[metric] || {};
      Object.keys(u).forEach(function (method) {
        var x = u[method], dd = du[method];
        var text = "<p>" + esc(m.name) + ", " + esc(D.labels.methods[method]) + ": " + fmt(x.mean, 4) + " \u00b1 " +
                   fmt(x.sd, 4) + " (n = " + x.n + ")";
        if (dd && dd.diff !== null) {
          text += "; against the base network with dropout off: <b>" + signed(dd.diff, 4) + "</b>" +
                  (dd.low !== null ? ", 95% interval [" + signed(dd.low, 4) + ", " + signed(dd.high, 4) + "]" : "") +
                  " (Welch, n = " + dd.n + " vs " + dd.n_base + ")";
        }
        out.push(text + ".</p>");
      });
    }
    if (cell.note) out.push("<p>" + esc(cell.note) + "</p>");
    var tests = cell.tests.map(function (i) { return D.tests[i]; });
    var here = tests.filter(function (t) { return t.metric === metric; });
    var other = tests.filter(function (t) { return t.metric !== metric; });
    if (here.length) {
      out.push("<p>Pre-registered tests of this metric on these runs:</p><ul class=\"snx-tests\">" +
        here.map(function (t) {
          return "<li>" + esc(t.text) + " \u2014 label <span class=\"snx-label\">" + esc(t.label) + "</span>" +
            (t.verdicts.length ? "; it feeds the verdicts: " + t.verdicts.map(esc).join("; ") :
             "; a secondary test: it enters no verdict") + ".</li>";
        }).join("") + "</ul>");
    } else {
      out.push("<p>No pre-registered test of " + esc(m.name) + " reads these runs.</p>");
    }
    if (other.length) {
      out.push("<p class=\"snx-other\">Other tests on these runs: " + other.map(function (t) {
        return esc(t.claim + " " + t.role + ", " + t.kind_name + ", " + t.metric_name + ": " + t.label);
      }).join("; ") + ".</p>");
    }
    out.push("<p>Rerun this cell (then compare the records):</p><pre class=\"snx-command\">" +
             esc(cell.commands.join("\n")) + "</pre>");
    if (base) {
      out.push("<details><summary>Rerun its base network</summary><pre>" + esc(base.commands.join("\n")) +
               "</pre></details>");
    }
    return out.join("");
  }

  function embed(el, spec, datasets) {
    var s = JSON.parse(JSON.stringify(spec));
    s.datasets = datasets;
    return vegaEmbed(el, s, {actions: false, renderer: "svg"});
  }

  function render(notes) {
    var cell = current(), base = cell.base ? cells[cell.base] : null, metric = state.metric;
    var m = D.metrics[metric];
    root.querySelector(".snx-note").textContent = (notes || []).join(" ");
    root.querySelector(".snx-title").textContent = cell.title + " \u2014 " + m.name +
      (m.per_epoch ? " per epoch: mean \u00b1 sd over seeds, each seed faint" : ": each seed, mean \u00b1 sd");
    root.querySelector(".snx-facts").innerHTML = facts(cell, base, metric);
    var data = m.per_epoch ? curveData(cell, base, metric) : stripData(cell, base, metric);
    var spec = m.per_epoch ? D.specs.curves : D.specs.strip;
    var token = ++renders;
    queue = queue.then(function () {
      if (token !== renders) return null;
      return embed(root.querySelector(".snx-chart"), spec, data).then(function (result) {
        if (chartView) chartView.finalize();
        chartView = result.view;
        root.dataset.cell = cell.id;
        root.dataset.metric = metric;
        var atMain = ["mask", "p", "epochs", "lr"].every(function (k) { return state[k] === D.main[k]; });
        var picked = atMain ? [state.dataset, state.kind, state.site].join("|") : "";
        return gridView ? gridView.signal("picked", picked).runAsync() : null;
      }).then(function () {
        root.dataset.renders = String(token);
        if (root.dataset.ready !== "1") root.dataset.readyAt = String(Math.round(performance.now()));
        root.dataset.ready = "1";
      });
    }).catch(function (err) { console.error(err); });
    return queue;
  }

  function choose(values) {
    Object.keys(values).forEach(function (k) { state[k] = values[k]; });
    render(settle());
  }

  Object.keys(selects).forEach(function (key) {
    selects[key].addEventListener("change", function () {
      var v = {}; v[key] = selects[key].value; choose(v);
    });
  });
  embed(root.querySelector(".snx-grid"), D.specs.grid, {grid: D.grid}).then(function (result) {
    gridView = result.view;
    gridView.addEventListener("click", function (event, item) {
      var row = item && item.datum;
      if (!row || !row.cell) return;
      var target = cells[row.cell];
      var note = row.stands !== row.kind ? [row.kind_name + " on the " + row.site_name + " is the same operation as " +
        nameOf("kind", row.stands) + ": showing its runs."] : [];
      Object.keys(target.sel).forEach(function (k) { state[k] = target.sel[k]; });
      render(note.concat(settle()));
    });
    render(settle());
  }).catch(function (err) { console.error(err); });
})();
"""

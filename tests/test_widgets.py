"""snnlib.widgets: precomputed figures in nested stacks, linked to their controls in the browser."""

from __future__ import annotations

import io
import itertools

import ipywidgets as widgets
import matplotlib.pyplot as plt
import PIL.Image
import pytest

from snnlib import widgets as W


def line_figure(a: float, b: str) -> plt.Figure:
    """A small figure that differs for every (a, b)."""
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [0, a], color="C0" if b == "x" else "C1")
    ax.set_title(f"{a:g} {b}")
    return fig


CONTROLS = [W.Control("a", (0.5, 1.0, 2.0), value=1.0), W.Control("b", ("x", "y"), style="toggle")]


def stack_at(box: widgets.VBox, index: tuple[int, ...]) -> widgets.Image:
    """The image a live figure shows when its controls select ``index``."""
    node = box.children[1]
    for i in index:
        assert isinstance(node, widgets.Stack)
        node = node.children[i]
    assert isinstance(node, widgets.Image)
    return node


def test_figure_png_is_deterministic_and_quantized():
    a = W.figure_png(line_figure(1.0, "x"))
    b = W.figure_png(line_figure(1.0, "x"))
    assert a == b and a.startswith(b"\x89PNG")
    with PIL.Image.open(io.BytesIO(a)) as img:
        assert img.mode == "P" and len(img.getcolors(256)) <= 64
    full = W.figure_png(line_figure(1.0, "x"), colors=None)
    with PIL.Image.open(io.BytesIO(full)) as img:
        assert img.mode == "RGBA"
    assert W.figure_png(line_figure(2.0, "x")) != a
    assert plt.get_fignums() == []  # every figure was closed


def test_live_figure_shows_the_drawing_of_every_grid_point():
    box = W.live_figure(line_figure, CONTROLS)
    assert W.LIVE_FIGURE_CLASS in box._dom_classes
    control_row, outer = box.children
    assert [type(w) for w in control_row.children] == [widgets.SelectionSlider, widgets.ToggleButtons]
    assert [w.description for w in control_row.children] == ["a", "b"]
    assert control_row.children[0].index == 1 and outer.selected_index == 1  # value=1.0
    for i, j in itertools.product(range(3), range(2)):
        expected = W.figure_png(line_figure(CONTROLS[0].values[i], CONTROLS[1].values[j]))
        assert stack_at(box, (i, j)).value == expected
    assert len(W.live_figure_images(box)) == W.grid_size(CONTROLS) == 6
    assert plt.get_fignums() == []


def test_each_control_is_linked_to_every_stack_of_its_level(monkeypatch):
    links = []
    real = widgets.jslink
    monkeypatch.setattr(W.widgets, "jslink", lambda src, dst: links.append((src, dst)) or real(src, dst))
    box = W.live_figure(line_figure, CONTROLS)
    slider, toggle = box.children[0].children
    outer = box.children[1]
    by_control = {id(slider): [], id(toggle): []}
    for (src, src_attr), (dst, dst_attr) in links:
        assert (src_attr, dst_attr) == ("index", "selected_index")
        by_control[id(src)].append(dst)
    assert by_control[id(slider)] == [outer]
    assert {id(s) for s in by_control[id(toggle)]} == {id(s) for s in outer.children}
    assert all(s.selected_index == 0 for s in outer.children)  # toggle starts at its first value


def test_same_as_draws_shared_figures_once_and_equal_images_are_stored_once():
    calls = []

    def render(a, b):
        calls.append((a, b))
        return line_figure(a, "x")  # b does not change the drawing

    box = W.live_figure(render, CONTROLS, same_as=lambda a, b: {"b": "x"} if a < 1 else {})
    assert len(calls) == 5  # a = 0.5 drawn once for both b
    assert len(W.live_figure_images(box)) == 3  # equal PNGs share one Image
    assert stack_at(box, (0, 0)) is stack_at(box, (0, 1))
    assert stack_at(box, (2, 0)) is stack_at(box, (2, 1))


def test_a_figure_updated_in_place_is_saved_for_every_point():
    fig, ax = plt.subplots(figsize=(2, 1.5))
    (line,) = ax.plot([0, 1], [0, 0])

    def render(a):
        line.set_ydata([0, a])
        return fig

    box = W.live_figure(render, [W.Control("a", (0.5, 1.0, 2.0))])
    pngs = [stack_at(box, (i,)).value for i in range(3)]
    assert len(set(pngs)) == 3
    assert plt.get_fignums() == []


def test_control_styles_labels_and_errors():
    dropdown = W.Control("kind", ("none", "dropout"), style="dropdown", value="dropout").widget()
    assert isinstance(dropdown, widgets.Dropdown) and dropdown.index == 1
    assert [label for label, _ in dropdown.options] == ["none", "dropout"]
    toggle = W.Control("tc", (False, True), style="toggle", labels=("per step", "per sample")).widget()
    assert [label for label, _ in toggle.options] == ["per step", "per sample"]
    slider = W.Control("p", (0.1, 0.5, 1.0)).widget()
    assert [label for label, _ in slider.options] == ["0.1", "0.5", "1"]
    with pytest.raises(ValueError, match="no values"):
        W.Control("p", ())
    with pytest.raises(ValueError, match="labels"):
        W.Control("p", (1, 2), labels=("one",))
    with pytest.raises(ValueError, match="style"):
        W.Control("p", (1, 2), style="knob")
    with pytest.raises(ValueError, match="not among"):
        W.Control("p", (1, 2), value=3)
    with pytest.raises(ValueError, match="at least one control"):
        W.live_figure(line_figure, [])
    with pytest.raises(ValueError, match="differ"):
        W.live_figure(line_figure, [W.Control("a", (1,)), W.Control("a", (2,))])


def png_size(png: bytes) -> tuple[int, int]:
    with PIL.Image.open(io.BytesIO(png)) as img:
        return img.size


def test_images_are_drawn_dense_and_shown_at_the_book_size():
    """A figure w inches wide is stored with DENSITY * BOOK_DPI pixels per inch and shown w *
    BOOK_DPI CSS pixels wide (at most the page's width, its height following)."""
    box = W.live_figure(line_figure, CONTROLS)
    img = stack_at(box, (0, 0))
    assert png_size(img.value) == (2 * W.BOOK_DPI * W.DENSITY, 1.5 * W.BOOK_DPI * W.DENSITY)
    assert img.width == str(2 * W.BOOK_DPI)
    assert img.layout.max_width == "100%" and img.layout.height == "auto"
    plain = W.live_figure(line_figure, CONTROLS, dpi=50, density=1)
    img = stack_at(plain, (0, 0))
    assert png_size(img.value) == (100, 75) and img.width == "100"
    assert plt.get_fignums() == []


def test_book_style_reads_at_the_column_width():
    """Outside a kernel use_book_style sets matplotlib's defaults only; a figure as wide as the
    column is drawn as many CSS pixels wide as the column, with text of at least 13 px."""
    with plt.rc_context():
        W.use_book_style()
        assert plt.rcParams["figure.dpi"] == W.BOOK_DPI
        smallest = min(plt.rcParams[k] for k in ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize",
                                                 "ytick.labelsize", "legend.fontsize", "figure.titlesize"))
        assert smallest * W.BOOK_DPI / 72 >= 13
        assert 740 <= W.COLUMN_WIDTH * W.BOOK_DPI <= 780

"""Figures that respond to their controls without a Python kernel.

A reader of the static book has no kernel, so a callback such as ``ipywidgets.interact``
never runs there. :func:`live_figure` therefore draws the figure once for every
combination of the control values (a small grid), keeps each drawing as PNG bytes in an
``ipywidgets.Image``, and puts the images in nested ``ipywidgets.Stack`` widgets, one
nesting level per control. Each control's ``index`` is linked to the ``selected_index``
of every stack of its level by ``ipywidgets.jslink``, a link that lives in the browser.
Moving a control then shows another precomputed image, in Jupyter and in the built HTML
alike (where the widget state saved in the notebook is embedded in the page).

The cost is one drawing per grid point: keep grids small and figures no wider than the
book's column (:data:`COLUMN_WIDTH`), in a reduced palette. Grid points that share a figure
are drawn once (``same_as``), and equal images are stored once.

Figures that read on a laptop: the book's text column is about 770 px wide in a 1400 px
window. A figure :data:`COLUMN_WIDTH` inches wide at :data:`BOOK_DPI` fills it without
being scaled down, so its text shows at the size set by :func:`use_book_style` (10-12 pt,
14-17 px). The images are drawn with :data:`DENSITY` times those pixels and shown at the
column's size, sharp on a high-density laptop screen.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import ipywidgets as widgets
import matplotlib.pyplot as plt
import PIL.Image
from matplotlib.figure import Figure

#: CSS class of the outer box of every live figure (the book's browser test looks for it).
LIVE_FIGURE_CLASS = "snn-live-figure"

#: Pixels per inch of the book's figures as shown in the page (CSS pixels).
BOOK_DPI = 100
#: Width in inches of a figure that fills the book's text column at :data:`BOOK_DPI`, 760 px. The
#: column is about 770 px wide in a laptop's 1400 px window and 680 px in a 1280 px one.
COLUMN_WIDTH = 7.6
#: How many image pixels make one shown pixel, in each direction. Figures are drawn at
#: ``DENSITY * BOOK_DPI`` and shown at :data:`BOOK_DPI`, sharp on a laptop's high-density screen.
DENSITY = 2

#: The matplotlib settings of the book's figures, set by :func:`use_book_style`. At
#: :data:`BOOK_DPI` a point is 1.39 px, so tick labels and legends show at 14 px, titles at 15-17 px.
BOOK_STYLE: dict[str, Any] = {
    "figure.dpi": BOOK_DPI,
    "font.size": 10.5,
    "axes.titlesize": 11,
    "axes.labelsize": 10.5,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "figure.titlesize": 12,
    "legend.frameon": False,
}


def use_book_style(retina: bool = True) -> None:
    """Sets matplotlib's defaults to :data:`BOOK_STYLE` and, inside a Jupyter kernel with
    ``retina``, makes the inline backend store each figure with twice its shown pixels in each
    direction (IPython's ``retina`` format: the output says to show it at half that size).

    Call it once at the top of a chapter; draw figures at most :data:`COLUMN_WIDTH` inches wide.
    """
    plt.rcParams.update(BOOK_STYLE)
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipywidgets
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return  # not in a kernel: no inline backend to set
    from matplotlib_inline.backend_inline import set_matplotlib_formats

    set_matplotlib_formats("retina" if retina else "png")


ControlStyle = Literal["slider", "dropdown", "toggle"]


def _label(value: Any) -> str:
    """A control's default label: floats without trailing zeros (``1.0`` -> ``1``)."""
    return format(value, "g") if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Control:
    """One control of a live figure: the keyword it sets and the values it offers.

    ``name``: keyword argument of the drawing function. ``values``: the precomputed values,
    in order. ``description``: the label shown next to the control (default: ``name``).
    ``style``: ``"slider"`` (``SelectionSlider``), ``"dropdown"`` or ``"toggle"``
    (``ToggleButtons``). ``labels``: how each value is shown (default: ``str(value)``,
    floats as ``format(value, "g")``). ``value``: the value shown first (default: the
    first one).
    """

    name: str
    values: Sequence[Any]
    description: str | None = None
    style: ControlStyle = "slider"
    labels: Sequence[str] | None = None
    value: Any = None

    def __post_init__(self) -> None:
        if len(self.values) == 0:
            raise ValueError(f"control {self.name!r} has no values")
        if self.labels is not None and len(self.labels) != len(self.values):
            raise ValueError(f"control {self.name!r}: {len(self.labels)} labels for {len(self.values)} values")
        if self.style not in ("slider", "dropdown", "toggle"):
            raise ValueError(f"control {self.name!r}: unknown style {self.style!r}")
        if self.value is not None and self.value not in list(self.values):
            raise ValueError(f"control {self.name!r}: initial value {self.value!r} is not among its values")

    @property
    def label(self) -> str:
        """The text shown next to the control."""
        return self.description or self.name

    @property
    def initial_index(self) -> int:
        """Position of the value shown first."""
        return 0 if self.value is None else list(self.values).index(self.value)

    def widget(self, description_width: str = "initial") -> widgets.ValueWidget:
        """A new control widget whose ``index`` selects one of ``values``."""
        labels = [_label(v) for v in self.values] if self.labels is None else list(self.labels)
        options = list(zip(labels, range(len(labels)), strict=True))
        common = dict(options=options, value=self.initial_index, description=self.label,
                      style={"description_width": description_width})
        if self.style == "slider":
            return widgets.SelectionSlider(continuous_update=True, **common)
        if self.style == "dropdown":
            return widgets.Dropdown(**common)
        # label and buttons on one line (the embed manager stacks them otherwise), each
        # button as wide as its text
        common["style"]["button_width"] = "auto"
        layout = widgets.Layout(width="auto", display="flex", align_items="center")
        return widgets.ToggleButtons(layout=layout, **common)


def figure_png(fig: Figure, dpi: float = BOOK_DPI * DENSITY, colors: int | None = 64, close: bool = True) -> bytes:
    """The figure as PNG bytes, ``dpi`` pixels per inch: the same bytes for the same drawing
    (no software tag or timestamp in the file).

    ``colors``: reduce the image to a palette of this many colours (Pillow's fast octree
    quantizer), which makes a line or heat-map figure about 4 times smaller with no
    visible loss; ``None`` keeps full colour. ``close``: close the figure afterwards.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    if close:
        plt.close(fig)
    if colors is None:
        return buf.getvalue()
    with PIL.Image.open(io.BytesIO(buf.getvalue())) as img:
        small = img.convert("RGB").quantize(colors=colors, method=PIL.Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    small.save(out, format="png", optimize=True)
    return out.getvalue()


def live_figure(render: Callable[..., Figure], controls: Sequence[Control], dpi: float = BOOK_DPI,
                colors: int | None = 64, same_as: Callable[..., dict[str, Any]] | None = None,
                density: float = DENSITY) -> widgets.VBox:
    """A figure with controls that works with no kernel: precomputed images in linked stacks.

    ``render(**values)`` draws the figure for one value of every control (keywords: the
    controls' names) and returns a matplotlib figure. It is called for every point of the
    grid of control values (the product of their ``values``) and each figure is stored as
    PNG bytes (:func:`figure_png` with ``density * dpi`` pixels per inch and ``colors``) in an
    ``ipywidgets.Image`` shown ``dpi`` CSS pixels per inch wide (at most the page's width);
    equal images are stored once. ``render`` may return a new figure each time (the
    previous one is then closed) or the same figure updated in place. A figure
    :data:`COLUMN_WIDTH` inches wide at the default ``dpi`` fills the book's column.

    ``same_as(**values)``, if given, returns the values (all or some) of the grid point
    whose figure this point shares, for a control that does not matter in some corner of
    the grid; such figures are drawn once.

    The images sit in nested ``ipywidgets.Stack`` widgets, the first control's level
    outermost, and each control's ``index`` is linked in the browser
    (``ipywidgets.jslink``) to the ``selected_index`` of every stack of its level.
    Returns ``VBox([VBox(control widgets), outer stack])`` with the CSS class
    :data:`snnlib.widgets.LIVE_FIGURE_CLASS`. Display it as the last expression of a
    notebook cell and keep the notebook's widget state when saving it.
    """
    controls = list(controls)
    if not controls:
        raise ValueError("a live figure needs at least one control")
    names = [c.name for c in controls]
    if len(set(names)) != len(names):
        raise ValueError(f"control names must differ, got {names}")

    images: dict[bytes, widgets.Image] = {}  # PNG bytes -> the one Image holding them
    drawn: dict[tuple, widgets.Image] = {}  # values of a grid point -> its Image
    last: list[Figure] = []  # the figure render returned last, closed when it returns another

    def draw(values: dict[str, Any]) -> widgets.Image:
        fig = render(**values)
        if last and last[0] is not fig:
            plt.close(last.pop())
        if not last:
            last.append(fig)
        png = figure_png(fig, dpi * density, colors, close=False)
        if png not in images:
            shown = round(fig.get_figwidth() * dpi)  # CSS pixels; the height follows
            # no side margins: with ipywidgets' 2 px on each side a full-width image overflowed its frame by
            # 4 px and the frame showed a horizontal scrollbar (the built book's CSS does the same)
            images[png] = widgets.Image(value=png, format="png", width=str(shown),
                                        layout=widgets.Layout(max_width="100%", height="auto", margin="2px 0px"))
        return images[png]

    def image(index: tuple[int, ...]) -> widgets.Image:
        values = {c.name: c.values[i] for c, i in zip(controls, index, strict=True)}
        if same_as is not None:
            values = {**values, **same_as(**values)}
        key = tuple(values[name] for name in names)
        if key not in drawn:
            drawn[key] = draw(values)
        return drawn[key]

    levels: list[list[widgets.Stack]] = [[] for _ in controls]

    def stack(level: int, prefix: tuple[int, ...]) -> widgets.Stack:
        n = len(controls[level].values)
        if level == len(controls) - 1:
            children = [image((*prefix, i)) for i in range(n)]
        else:
            children = [stack(level + 1, (*prefix, i)) for i in range(n)]
        s = widgets.Stack(children=children, selected_index=controls[level].initial_index)
        levels[level].append(s)
        return s

    try:
        outer = stack(0, ())
    finally:
        for fig in last:
            plt.close(fig)
    # one control per line, their labels in a column as wide as the longest
    width = f"{max(len(c.label) for c in controls) + 2}ch"
    control_widgets = [c.widget(description_width=width) for c in controls]
    for widget, stacks in zip(control_widgets, levels, strict=True):
        for s in stacks:
            widgets.jslink((widget, "index"), (s, "selected_index"))
    box = widgets.VBox([widgets.VBox(control_widgets), outer])
    box.add_class(LIVE_FIGURE_CLASS)
    return box


def grid_size(controls: Sequence[Control]) -> int:
    """Number of grid points of these controls (before ``same_as`` and equal images)."""
    n = 1
    for c in controls:
        n *= len(c.values)
    return n


def _images(widget: widgets.Widget) -> Iterator[widgets.Image]:
    if isinstance(widget, widgets.Image):
        yield widget
    for child in getattr(widget, "children", ()):
        yield from _images(child)


def live_figure_images(box: widgets.VBox) -> list[widgets.Image]:
    """The distinct ``Image`` widgets of a live figure (each is stored once in the widget state)."""
    seen: dict[int, widgets.Image] = {}
    for img in _images(box.children[1]):
        seen.setdefault(id(img), img)
    return list(seen.values())

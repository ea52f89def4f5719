"""Sphinx extension: short names in the library's docstrings link to the API page.

Docstrings name other parts of ``snnlib`` the way its code does, relative to the
package: ``:func:`records.runs_table```, ``:class:`SpikeEvents```. Sphinx looks such a
name up only as written and from the current module, so it finds nothing, and the
nitpicky build (``-n``) fails. When a Python reference is missing, this extension looks
it up again as Sphinx does for a reference written with a leading dot: any documented
object whose full name ends with the name. A unique match becomes the link; names that
match nothing stay missing (and fail the build unless ``nitpick_ignore`` covers them).
"""

from __future__ import annotations

from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment


def resolve_by_suffix(app: Sphinx, env: BuildEnvironment, node: pending_xref,
                      contnode: nodes.TextElement) -> nodes.Element | None:
    """``missing-reference`` handler: retries a Python reference by the end of full names."""
    if node.get("refdomain") != "py" or node.get("refspecific"):
        return None
    target = node.get("reftarget", "")
    domain = env.get_domain("py")
    matches = domain.find_obj(env, node.get("py:module"), node.get("py:class"), target,
                              node["reftype"], searchmode=1)
    if len(matches) != 1:
        return None
    retry = node.deepcopy()
    retry["refspecific"] = True
    return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], target, retry, contnode)


def setup(app: Sphinx) -> dict:
    app.connect("missing-reference", resolve_by_suffix)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}

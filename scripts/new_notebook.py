"""Write a notebook from a list of (kind, source) cells: ``python scripts/new_notebook.py spec.py out.ipynb``.

The spec file defines ``CELLS = [("markdown", "..."), ("parameters", "..."), ("code", "..."), ...]``; the cell
of kind "parameters" gets papermill's ``parameters`` tag.  Used to author the notebooks in notebooks/ (which
are committed without outputs); editing the .ipynb in JupyterLab afterwards is just as fine.
"""
from __future__ import annotations

import runpy
import sys

import nbformat


def build(cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, src in cells:
        src = src.strip("\n")
        if kind == "markdown":
            nb.cells.append(nbformat.v4.new_markdown_cell(src))
        else:
            cell = nbformat.v4.new_code_cell(src)
            if kind == "parameters":
                cell.metadata["tags"] = ["parameters"]
            nb.cells.append(cell)
    for i, c in enumerate(nb.cells):  # stable ids keep diffs small
        c["id"] = f"cell-{i:02d}"
    return nb


if __name__ == "__main__":
    spec, out = sys.argv[1], sys.argv[2]
    nbformat.write(build(runpy.run_path(spec)["CELLS"]), out)

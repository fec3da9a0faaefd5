"""Notebook housekeeping: find the check lines, and strip a notebook to its committed form.

The committed form keeps only the outputs of the check cells (those starting with
``# NBVAL_CHECK_OUTPUT``), no widget state, no papermill or execution metadata, and a kernelspec.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat

__all__ = ["CHECK_MARK", "KERNELSPEC", "check_lines", "is_check_cell", "strip", "parameters_cell", "parameters",
           "parse_value"]

CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def is_check_cell(cell) -> bool:
    return cell.get("cell_type") == "code" and cell.get("source", "").lstrip().startswith(CHECK_MARK)


def parse_value(text: str):
    """A command-line value as a Python literal where it parses (``3``, ``True``, ``[1, 2]``), else the string.

    >>> parse_value("0.5"), parse_value("forward")
    (0.5, 'forward')
    """
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parameters_cell(nb):
    """The first code cell tagged ``parameters``, or None."""
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell
    return None


def parameters(nb) -> dict:
    """The defaults of the parameters cell, ``{NAME: value}``, read with ``ast`` (literals only).

    Raises ``ValueError`` if the notebook has no parameters cell or a parameter is not a literal.
    """
    cell = parameters_cell(nb)
    if cell is None:
        raise ValueError("notebook has no code cell tagged 'parameters'")
    out = {}
    for node in ast.parse(cell.source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError as err:
                raise ValueError(f"parameter {node.targets[0].id} must be a literal; got {ast.unparse(node.value)}") from err
    return out


def check_lines(nb) -> list[str]:
    """The lines printed by the check cells of an executed notebook (stream outputs only)."""
    lines: list[str] = []
    for cell in nb.cells:
        if not is_check_cell(cell):
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                lines += [ln for ln in out.get("text", "").splitlines() if ln.strip()]
    return lines


def strip(nb):
    """Return ``nb`` in committed form (modified in place and returned)."""
    nb.metadata.pop("widgets", None)
    nb.metadata.pop("papermill", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.setdefault("language_info", {"name": "python"})
    kept = []
    for cell in nb.cells:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            continue  # a papermill run's injected cell never belongs in the source notebook
        meta = cell.get("metadata", {})
        for key in ("papermill", "execution", "scrolled", "collapsed"):
            meta.pop(key, None)
        if cell.cell_type == "code":
            if is_check_cell(cell):
                cell.outputs = [o for o in cell.outputs if o.get("output_type") == "stream"]
                for o in cell.outputs:
                    o.pop("metadata", None)
            else:
                cell.outputs = []
                cell.execution_count = None
        kept.append(cell)
    nb.cells = kept
    for cell in nb.cells:
        cell.pop("id", None)
    nb.nbformat, nb.nbformat_minor = 4, 4
    return nb


def strip_file(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.write(strip(nb), path)

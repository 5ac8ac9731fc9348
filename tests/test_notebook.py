"""notebooks/landscape.ipynb runs headless (nbclient) against the reference landscape, without errors."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "landscape.ipynb"


def test_the_committed_notebook_is_executed():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.execution_count and cell.outputs for cell in code)
    assert not any(output.output_type == "error" for cell in code for output in cell.outputs)


def test_the_notebook_runs_headless_and_draws_the_four_charts():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()  # raises on any cell error
    images = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs
              if "image/png" in o.get("data", {})]
    assert len(images) >= 4
    text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                   for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "records" in text

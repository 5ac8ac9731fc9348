"""The landscape report: tables with Pareto marks, four charts, runtimes side by side, pipeline studies,
Markdown/HTML/CSV, from records alone.

The notebook and ``compbench report`` call these same functions; nothing is computed twice.
"""

from compbench.report.charts import (
    CHARTS,
    plot_latency_vs_params,
    plot_macs_by_component,
    plot_quality_vs_macs,
    plot_speedup_vs_predicted,
)
from compbench.report.landscape import (
    Landscape,
    group_tables,
    landscape_frame,
    load_landscape,
    pareto_mask,
)
from compbench.report.pipelines import (
    StudyTables,
    display_tables,
    plot_estimate_vs_measured,
    study_tables,
    summary_line,
)
from compbench.report.runtimes import RuntimeComparison, runtime_comparisons
from compbench.report.write import FORMATS, markdown_tables, write_report

__all__ = ["CHARTS", "FORMATS", "Landscape", "RuntimeComparison", "StudyTables", "display_tables", "group_tables",
           "landscape_frame", "load_landscape", "markdown_tables", "pareto_mask", "plot_estimate_vs_measured",
           "plot_latency_vs_params", "plot_macs_by_component", "plot_quality_vs_macs", "plot_speedup_vs_predicted",
           "runtime_comparisons", "study_tables", "summary_line", "write_report"]

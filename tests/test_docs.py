"""The documentation: a short README that points into the docs site, reference pages generated from the
code (the hook that fills them in, run on the pages as written), so they cannot drift from `compbench ls`, and
the site built with any warning an error."""

import importlib.util
import json
import os
import re
from pathlib import Path

import pytest

from compbench.catalog import list_compressors, list_presets, list_tasks
from compbench.errors import CorruptResultsError
from compbench.record import LatencyMs, Record

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


@pytest.fixture(scope="module")
def hook():
    pytest.importorskip("mkdocs", reason="the docs extra builds the site: pip install 'compbench[docs]'")
    spec = importlib.util.spec_from_file_location("docs_reference_hook", DOCS / "hooks" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def page(hook, name: str) -> str:
    return hook.render((DOCS / name).read_text(encoding="utf-8"))


def test_the_readme_is_short_and_every_link_in_it_exists():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert any(link.startswith("docs/") for link in links)
    assert [link for link in links if not (REPO / link).exists()] == []


def test_the_compressor_options_page_lists_every_compressor_and_option_with_its_default(hook):
    text = page(hook, "reference/compressors.md")
    assert hook.MARKER.search(text) is None
    compressors = list_compressors()
    assert len(compressors) >= 13
    for compressor in compressors:
        section = text.split(f"### `{compressor['name']}`\n", 1)[1].split("\n### ", 1)[0]
        assert compressor["description"] in section
        for name, option in compressor["options"].items():
            row = next(line for line in section.splitlines() if line.startswith(f"| `{name}` |"))
            assert f"| `{hook.written(option['default'])}` |" in row and option["type"] in row
        if not compressor["options"]:
            assert "No options." in section


def test_an_option_default_is_written_as_a_user_writes_it_in_yaml(hook):
    assert [hook.written(value) for value in (True, None, 0.5, 100_000, "magnitude")] == [
        "true", "null", "0.5", "100000", "magnitude"]


def test_the_record_page_lists_every_field_with_its_type_and_whether_it_is_always_there(hook):
    text = page(hook, "reference/record.md")
    for schema in (Record, LatencyMs):
        for name in schema.__annotations__:
            row = next(line for line in text.splitlines() if line.startswith(f"| `{name}` |"))
            assert ("| yes |" in row) == (name in schema.__required_keys__)
    assert "| `checkpoint` | `str or null` | yes |" in text
    assert "| `latency_ms` | `LatencyMs` |  |" in text


def test_the_catalog_page_lists_every_preset_and_task_and_the_reference_counts(hook):
    text = page(hook, "reference/catalog.md")
    counts = {r["model"]: r["params"] for r in map(json.loads, (REPO / "results" / "preset-counts.jsonl").open())}
    for preset in list_presets():
        assert f"| `{preset['name']}` |" in text and f"{counts[preset['name']]:,}" in text
    assert all(f"| `{task['name']}` |" in text for task in list_tasks())


def test_the_command_line_page_is_every_commands_help(hook):
    text = page(hook, "reference/cli.md")
    for command in ("measure", "compress", "finetune", "sweep", "pipelines", "report", "ls", "validate"):
        assert f"## `compbench {command}`" in text and f"usage: compbench {command}" in text
    assert "--compress-options FILE" in text


def test_an_unknown_table_marker_is_an_error(hook):
    with pytest.raises(KeyError, match="unknown compbench table 'nope'"):
        hook.render("<!-- compbench:nope -->")


def test_the_landscape_study_shows_the_committed_results_as_the_report_tables_them(hook):
    """The study page's tables are built from the committed results when the site is built: every timed record's
    median and quality is in the row of its variant, and a marker naming a results file needs the file."""
    from compbench.report.landscape import variant_label

    text = page(hook, "studies/landscape.md")
    for results in ("default.jsonl", "speech.jsonl"):
        records = [json.loads(line) for line in (REPO / "results" / results).open()]
        for record in records:
            rows = [line for line in text.splitlines() if line.startswith(f"| {variant_label(record)} |")]
            assert any(f"{record['latency_ms']['median']:.2f} [" in row for row in rows), variant_label(record)
            if record.get("quality"):
                assert any(f"| {record['quality']['value']:.4f}" in row for row in rows)
    with pytest.raises(CorruptResultsError, match="nope.jsonl does not exist"):
        hook.render("<!-- compbench:landscape results/nope.jsonl -->")
    with pytest.raises(KeyError, match="unknown compbench table 'cli results/default.jsonl'"):
        hook.render("<!-- compbench:cli results/default.jsonl -->")


def test_every_page_is_in_the_navigation_and_every_marker_is_known(hook):
    import yaml

    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))

    def pages(entries):
        for entry in entries:
            value = next(iter(entry.values())) if isinstance(entry, dict) else entry
            yield from pages(value) if isinstance(value, list) else [value]

    listed = set(pages(config["nav"]))
    written = {path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md")}
    assert listed == written
    for name in written:
        assert hook.MARKER.search(page(hook, name)) is None  # every marker line was replaced by its table


def test_the_site_builds_strict_with_the_reference_generated_from_the_installed_code(tmp_path, monkeypatch):
    """``mkdocs build --strict``: any warning fails it (a broken link, a page outside the navigation, a
    docstring mkdocstrings cannot read). Never with ``--quiet``, which drops the warnings before strict mode
    counts them: .ci/run's ``mkdocs build --strict --quiet`` passed with a broken link. .ci/run builds the site
    here, in a test process that has compbench imported already: 5 s, where a new ``mkdocs`` process took 12 s."""
    if not os.environ.get("COMPBENCH_TEST_INSTALLED"):  # CI installs the docs extra: there, this never skips
        pytest.importorskip("mkdocs", reason="the docs extra builds the site: pip install 'compbench[docs]'")
    from mkdocs.__main__ import cli

    monkeypatch.setenv("NO_MKDOCS_2_WARNING", "1")  # Material's notice about MkDocs 2, on every build
    monkeypatch.chdir(REPO)  # mkdocs.yml and the snippets it includes are found from the checkout
    site = tmp_path / "site"
    cli.main(["build", "--strict", "--site-dir", str(site)], prog_name="mkdocs", standalone_mode=False)
    compressors = (site / "reference" / "compressors" / "index.html").read_text(encoding="utf-8")
    assert all(f">{entry['name']}<" in compressors for entry in list_compressors())

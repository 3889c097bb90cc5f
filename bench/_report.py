"""The table on the terminal, the Markdown for the docs, the JSON for the record.

Every row: our median (min-max), the baseline's median (min-max) from the same run, the
ratio, the target and whether it is met. Rows come in sections, in the order measured.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from _harness import Row, fmt

MARK_START = "<!-- bench:results:start -->"
MARK_END = "<!-- bench:results:end -->"

# Other pages quote one section of a full run, between markers of their own, written by the
# same run (docs/policy.md's "Measured"): never copied by hand.
SECTION_PAGES = {"policy": ("policy.md", "Policy store")}


def markers(name: str) -> tuple[str, str]:
    """The HTML comments between which a page holds the generated part ``name``."""
    return f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"


def _spread(stat: dict[str, Any] | None, unit: str) -> str:
    if stat is None:
        return ""
    if len(stat["samples"]) == 1:
        return fmt(stat["median"], unit)
    return f"{fmt(stat['median'], unit)} ({fmt(stat['min'], unit)}-{fmt(stat['max'], unit)})"


def _verdict(row: dict[str, Any]) -> str:
    if not row["target_text"]:
        return ""
    met = {True: "met", False: "NOT MET", None: "n/a"}[row["met"]]
    return f"{row['target_text']}: {met}"


def _cells(row: dict[str, Any]) -> list[str]:
    ratio = "" if row["ratio"] is None else f"{row['ratio']:.2f}x"
    return [
        row["name"],
        f"{_spread(row['ours'], row['unit'])} {row['unit']}",
        f"{row['baseline_name']}: {_spread(row['baseline'], row['unit'])}"
        if row["baseline"]
        else "",
        ratio,
        _verdict(row),
    ]


def text_table(rows: list[dict[str, Any]]) -> str:
    header = ["", "quantum_core", "baseline (same run)", "ratio", "target"]
    lines: list[str] = []
    section = None
    widths = [max(len(c) for c in col) for col in zip(header, *map(_cells, rows), strict=False)]
    widths = [min(w, 62) for w in widths]
    for row in rows:
        if row["section"] != section:
            section = row["section"]
            lines += [
                "",
                f"== {section}",
                "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
            ]
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(_cells(row), widths, strict=True)).rstrip()
        )
    return "\n".join(lines)


def _measured(result: dict[str, Any]) -> str:
    env = result["environment"]
    return (
        f"Measured {result['date']} ({'quick' if result['quick'] else 'full'} run, "
        f"{result['runs']} runs per figure, median with min-max): {env['cpus']} CPUs "
        f"({env['cpu_model']}), load average at start {env['load_average'][0]:.1f}, "
        f"Python {env['python']}, redis-py {env['redis_py']} (hiredis "
        f"{env['hiredis'] or 'not installed'}), Redis {env['redis_server']}, "
        f"FastStream {env['faststream']}, structlog {env['structlog']}, commit "
        f"{env['git_commit']}."
    )


def _tables(rows: list[dict[str, Any]], heading: str = "###") -> list[str]:
    out: list[str] = []
    section = None
    for row in rows:
        if row["section"] != section:
            section = row["section"]
            out += [
                "",
                f"{heading} {section}",
                "",
                "| | quantum_core | baseline (same run) | ratio | target |",
                "|---|---|---|---|---|",
            ]
        cells = [c.replace("|", "\\|") for c in _cells(row)]
        if row["note"]:
            cells[0] += f" ({row['note']})"
        out.append("| " + " | ".join(cells) + " |")
    return out


def markdown(result: dict[str, Any]) -> str:
    out = [_measured(result), "", f"Protocols: {result['protocols']}", *_tables(result["rows"])]
    if result["errors"]:
        out += ["", "Benchmarks that failed in this run:", ""]
        out += [f"- {name}: `{error}`" for name, error in result["errors"].items()]
    return "\n".join(out) + "\n"


def section_markdown(result: dict[str, Any], section: str) -> str:
    """One section's table with the run's date and machine, for a page that quotes it."""
    rows = [row for row in result["rows"] if row["section"] == section]
    if not rows:
        raise ValueError(f"no rows in section {section!r}")
    table = _tables(rows)[3:]  # no heading: the page has its own
    return "\n".join([_measured(result), "", *table]) + "\n"


def write(result: dict[str, Any], json_path: Path) -> Path:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    md_path = json_path.with_suffix(".md")
    md_path.write_text(markdown(result))
    return md_path


def generated(text: str, name: str = "results") -> str | None:
    """What stands between a page's markers ``name``, None when it has none."""
    start, end = markers(name)
    found = re.search(re.escape(start) + "(.*?)" + re.escape(end), text, re.S)
    return None if found is None else found.group(1).strip() + "\n"


def update_docs(page: Path, body: str, name: str = "results") -> bool:
    """Replace what stands between the page's markers with ``body``; False if no markers."""
    start, end = markers(name)
    text = page.read_text()
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        return False
    page.write_text(pattern.sub(lambda _: f"{start}\n\n{body}\n{end}", text))
    return True


def as_dicts(rows: list[Row]) -> list[dict[str, Any]]:
    return [row.as_dict() for row in rows]

"""The run report: a summary table, `_bear/report.json` and a self-contained `_bear/report.html`.

Its numbers come from the per-chunk summaries the committer writes next to the
checkpoint, so a resumed run reports the whole lake, not just what this process wrote.
The HTML page draws each table's rows per day (and their weekly mean) and the mess per column as inline SVG: no
plotting dependency, no network, opens offline.
"""

from __future__ import annotations

import bisect
import html
import json
import logging
from typing import Any

from bear.core.schemas import DAILY, TABLES
from bear.lake.layout import REPORT_HTML, REPORT_JSON, summary_name
from bear.lake.parquet import PartitionStat
from bear.lake.sink import Sink
from bear.lake.state import StateDamaged, read_state, write_state

log = logging.getLogger(__name__)
COLORS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7")


def chunk_summary(plan_fingerprint: str, index: int, partitions: list[PartitionStat]) -> dict[str, Any]:
    """What the report needs of a committed job (rows, bytes and mess counts per partition), and what proves the
    job committed to a checkpoint rebuilt from the lake (bear.lake.recovery): its plan and index."""
    return {
        "plan_fingerprint": plan_fingerprint,
        "index": index,
        "partitions": [
            {"table": s.table, "partition": s.partition, "rows": s.rows, "values": s.values, "bytes": s.bytes,
             "files": len(s.files),
             "largest_file": max((f.bytes for f in s.files), default=0), "mess": s.mess,
             **({} if s.delivery is None else {"delivery": s.delivery})}
            for s in partitions
        ]
    }


def build(sink: Sink, plan: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """Aggregate every committed chunk's summary into the report document."""
    names = [summary_name(-1)] + [summary_name(c["index"]) for c in plan["chunks"]]
    tables = {t: {"rows": 0, "values": 0, "bytes": 0, "partitions": 0, "files": 0} for t in TABLES}
    daily: dict[str, dict[str, int]] = {t: {} for t in DAILY}
    mess: dict[str, dict[str, dict[str, int]]] = {}
    largest = 0
    for name in names:
        try:
            doc = read_state(sink, name, "summary")
        except StateDamaged as exc:  # the data is intact (bear verify audits it); only its figures are missing
            log.warning("%s; the report leaves that job out", exc)
            doc = None
        for p in (doc or {}).get("partitions", []):
            t = tables[p["table"]]
            t["rows"] += p["rows"]
            t["values"] += p.get("values", 0)  # summaries an older bear wrote (an extended lake's first chunks) lack it
            t["bytes"] += p["bytes"]
            t["partitions"] += 1
            t["files"] += p["files"]
            largest = max(largest, p["largest_file"])
            if p["table"] in daily:
                day = p["partition"].split("=", 1)[1]
                daily[p["table"]][day] = daily[p["table"]].get(day, 0) + p["rows"]
            # the feed's late and re-delivered rows: counted like mess, per table, as a column "(rows)"
            for col, kinds in (*p["mess"].items(), *([("(rows)", p["delivery"])] if p.get("delivery") else [])):
                slot = mess.setdefault(p["table"], {}).setdefault(col, {})
                for kind, n in kinds.items():
                    slot[kind] = slot.get(kind, 0) + n
    total_rows = sum(t["rows"] for t in tables.values())
    wall = run.get("wall_seconds") or 0
    campaigns = plan["config"]["generator"].get("campaigns", [])
    return {
        **run,
        "tables": tables,
        "total_rows": total_rows,
        "total_values": sum(t["values"] for t in tables.values()),
        "total_bytes": sum(t["bytes"] for t in tables.values()),
        # this run's own rate: a resumed run wrote only part of the lake
        "rows_per_second": round(run.get("rows_written_by_this_run", total_rows) / wall) if wall else None,
        "bytes_per_row": round(sum(t["bytes"] for t in tables.values()) / max(total_rows, 1), 2),
        "staging": {"disk_bytes": 0, "largest_in_memory_file_bytes": largest},
        "daily_rows": {t: dict(sorted(d.items())) for t, d in daily.items()},
        "mess_counts": mess,
        "range": {"start": plan["plan_config"]["run"]["start"], "end": plan["end"]},
        "mess_level": plan["plan_config"]["mess"]["level"],
        "campaigns": [{k: c[k] for k in ("name", "start", "end")} for c in campaigns
                      if c["start"] <= plan["end"] and c["end"] >= plan["plan_config"]["run"]["start"]],
    }


def time_split(report: dict[str, Any]) -> dict[str, Any] | None:
    """Where the wall time went, as a run's critical path: the driver's serial start (Ray's start with the setup
    beside it, the skeleton pass, the plan written), the jobs' phase (the workers busy for the stages' task-seconds,
    the driver committing alongside), then the last commit and Ray's stop. None for a report without timings (a
    run that had nothing to do)."""
    d, w = report.get("driver_seconds"), report.get("worker_seconds")
    if not d or w is None:
        return None
    wall = report["wall_seconds"]
    serial = {"ray_start": d["ray_start"], "plan": d["plan"],
              "plan_written": max(d["startup"] - d["ray_start"] - d["plan"], 0.0)}
    after = {"last_commit": d["after_last_job"], "ray_stop": d["ray_stop"]}
    jobs = max(wall - d["startup"] - sum(after.values()), 0.0)
    task = dict(w)  # the jobs' stages (bear.run.jobs), in the order the first job reported them
    workers = max(report.get("worker_count") or 1, 1)
    return {"critical_path": {**serial, "jobs": round(jobs, 3), **after},
            "task_seconds": task, "workers": workers,
            "busy": round(sum(task.values()) / max(jobs * workers, 1e-9), 3),  # of the workers, in the jobs' phase
            "driver_commit": d["commit"]}  # overlaps the jobs but for the last one


def time_lines(split: dict[str, Any] | None) -> list[str]:
    """A time split as two lines of text (`bear` prints them after the table summary, the benchmark too)."""
    if split is None:
        return []
    path, task = split["critical_path"], split["task_seconds"]
    return [
        "critical path (s): " + ", ".join(f"{k.replace('_', ' ')} {v:.1f}" for k, v in path.items()),
        f"job stages (task-s on {split['workers']} worker(s), {split['busy']:.0%} busy): "
        + ", ".join(f"{k} {v:.1f}" for k, v in task.items()) + f"; driver commits {split['driver_commit']:.1f} s",
    ]


def summary_table(report: dict[str, Any]) -> str:
    rows = [f"{'table':<16}{'rows':>14}{'partitions':>12}{'MiB':>10}{'B/row':>8}"]
    for name in TABLES:
        t = report["tables"][name]
        rows.append(f"{name:<16}{t['rows']:>14,}{t['partitions']:>12,}{t['bytes'] / 2**20:>10.1f}"
                    f"{t['bytes'] / max(t['rows'], 1):>8.1f}")
    rate = report.get("rows_per_second")
    rows.append(f"{'total':<16}{report['total_rows']:>14,}{'':>12}{report['total_bytes'] / 2**20:>10.1f}"
                f"{report['bytes_per_row']:>8.1f}")
    rows.append(f"elapsed {report.get('wall_seconds', 0):.1f}s, {rate or 0:,} rows/s; staging on disk "
                f"{report['staging']['disk_bytes']} B, largest file held in memory "
                f"{report['staging']['largest_in_memory_file_bytes'] / 2**20:.1f} MiB")
    return "\n".join(rows + time_lines(time_split(report)))


def _nice_ticks(top: float, n: int = 4) -> list[float]:
    """Round y-axis ticks from 0 up to at least `top` (steps of 1, 2 or 5 times a power of ten)."""
    raw = max(top, 1) / n
    power = 10 ** int(f"{raw:e}".split("e")[1])
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [i * step for i in range(int(-(-top // step)) + 1)]


def _weekly_mean(days: list[str], daily: dict[str, int]) -> list[tuple[int, float]]:
    """(index of the week's first day, mean rows per day) for each 7-day block: seasonality without daily noise."""
    return [(i, sum(daily.get(d, 0) for d in days[i:i + 7]) / len(days[i:i + 7])) for i in range(0, len(days), 7)]


def _table_chart(name: str, daily: dict[str, int], color: str, campaigns: list[dict[str, str]],
                 width: int = 470, height: int = 210) -> str:
    """One table's rows per day (faint) and their weekly mean (bold), with a labelled y axis, year/month ticks and
    the campaigns' days shaded."""
    days = sorted(daily)
    if not days:
        return f"<figure><figcaption>{name}: no rows</figcaption></figure>"
    left, top_pad, bottom = 62, 22, height - 28
    ticks = _nice_ticks(max(daily.values()))
    ymax = ticks[-1] or 1

    def x(i: float) -> float:
        return left + i * (width - left - 24) / max(len(days) - 1, 1)

    def y(v: float) -> float:
        return bottom - v / ymax * (bottom - top_pad)

    parts = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="{name} rows per day">',
             f'<text x="{left}" y="14" font-size="13" font-weight="bold">{name}</text>',
             f'<text x="12" y="{(top_pad + bottom) / 2:.0f}" font-size="10" text-anchor="middle" '
             f'transform="rotate(-90 12 {(top_pad + bottom) / 2:.0f})">rows per day</text>']
    for t in ticks:
        parts.append(f'<line x1="{left}" y1="{y(t):.1f}" x2="{width - 10}" y2="{y(t):.1f}" stroke="#e5e5e5"/>'
                     f'<text x="{left - 4}" y="{y(t) + 3:.1f}" font-size="10" text-anchor="end">{t:,.0f}</text>')
    by_year = len(days) > 400
    for i, d in enumerate(days):
        if d.endswith("-01-01" if by_year else "-01") or i == 0:
            parts.append(f'<line x1="{x(i):.1f}" y1="{bottom}" x2="{x(i):.1f}" y2="{bottom + 4}" stroke="#888"/>'
                         f'<text x="{x(i):.1f}" y="{bottom + 15}" font-size="10" text-anchor="middle">'
                         f'{d[:4] if by_year else d[:7]}</text>')
    parts.append(f'<line x1="{left}" y1="{bottom}" x2="{width - 10}" y2="{bottom}" stroke="#888"/>')
    for c in campaigns:
        a, b = bisect.bisect_left(days, c["start"]), bisect.bisect_right(days, c["end"]) - 1
        if a <= b:
            parts.append(f'<rect x="{x(a) - 0.5:.1f}" y="{top_pad}" width="{max(x(b) - x(a), 1) + 1:.1f}" '
                         f'height="{bottom - top_pad}" fill="#f5c518" fill-opacity="0.35">'
                         f'<title>{html.escape(c["name"])}: {c["start"]} .. {c["end"]}</title></rect>')
    daily_pts = " ".join(f"{x(i):.1f},{y(daily.get(d, 0)):.1f}" for i, d in enumerate(days))
    weekly_pts = " ".join(f"{x(i + 3):.1f},{y(v):.1f}" for i, v in _weekly_mean(days, daily))
    parts.append(f'<polyline fill="none" stroke="{color}" stroke-opacity="0.25" stroke-width="0.7" '
                 f'points="{daily_pts}"/>')
    parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{weekly_pts}">'
                 f"<title>{name}: weekly mean of rows per day</title></polyline></svg>")
    return "".join(parts)


BAR_H = 18


def _bar_rows(rows: list[tuple[str, float, str]], label_width: int, width: int, top: int = 0,
              color: str = "#4e79a7") -> list[str]:
    """Horizontal bars from `top` down, one per (label, value, caption), scaled to the largest value."""
    most = max((v for _, v, _ in rows), default=0) or 1
    parts = []
    for i, (label, value, caption) in enumerate(rows):
        y, w = top + i * BAR_H, (width - label_width - 120) * value / most
        parts.append(f'<text x="0" y="{y + 13}" font-size="12">{html.escape(label)}</text>'
                     f'<rect x="{label_width}" y="{y + 3}" width="{w:.1f}" height="{BAR_H - 6}" fill="{color}"/>'
                     f'<text x="{label_width + 5 + w:.1f}" y="{y + 13}" font-size="11">{caption}</text>')
    return parts


def _bars(counts: dict[str, tuple[int, int]], width: int = 960) -> str:
    """One bar per column and kind: the share of the table's rows it touched, with the count."""
    if not counts:
        return "<p>no mess</p>"
    shares = [(name, n / max(rows, 1), f"{n / max(rows, 1):.1%} ({n:,})") for name, (n, rows) in counts.items()]
    return "".join([f'<svg viewBox="0 0 {width} {BAR_H * len(counts) + 10}" width="100%" role="img">',
                    *_bar_rows(shares, 300, width), "</svg>"])


def _time_chart(split: dict[str, Any]) -> str:
    """The critical path as one stacked bar with a legend below it (one slot per segment, however thin), then the
    jobs' stages as bars of task-seconds."""
    width, bar = 960, 28
    path = split["critical_path"]
    total = sum(path.values()) or 1
    stages = [(name, sec, f"{sec:.1f} task-s") for name, sec in split["task_seconds"].items()]
    parts = [f'<svg viewBox="0 0 {width} {72 + BAR_H * len(stages)}" width="100%" role="img" '
             f'aria-label="where the time went">']
    x = 0.0
    for i, (name, sec) in enumerate(path.items()):
        w = width * sec / total
        label = f"{name.replace('_', ' ')} {sec:.1f} s"
        color, slot = COLORS[i % len(COLORS)], i * width / len(path)
        parts.append(f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="{bar}" fill="{color}">'
                     f'<title>{label}</title></rect>'
                     f'<rect x="{slot:.1f}" y="{bar + 8}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{slot + 14:.1f}" y="{bar + 17}" font-size="11">{html.escape(label)}</text>')
        x += w
    return "".join([*parts, *_bar_rows(stages, 120, width, top=64, color="#59a14f"), "</svg>"])


def _time_section(report: dict[str, Any]) -> str:
    split = time_split(report)
    if split is None:
        return ""
    return (f"<h2>Where the time went</h2><p>The critical path (wall seconds), then what the jobs spent their "
            f"task-seconds on ({split['workers']} worker(s), busy {split['busy']:.0%} of the jobs' phase; the "
            f"driver's commits, {split['driver_commit']:.1f} s, overlap it but for the last).</p>"
            f"{_time_chart(split)}")


def render_html(report: dict[str, Any]) -> str:
    mess = {f"{t}.{c} {k}": (n, report["tables"][t]["rows"]) for t, cols in report["mess_counts"].items()
            for c, kinds in cols.items() for k, n in kinds.items()}
    charts = "".join(f"<div>{_table_chart(t, report['daily_rows'][t], COLORS[i], report.get('campaigns', []))}</div>"
                     for i, t in enumerate(DAILY))
    table_rows = "".join(
        f"<tr><td>{t}</td><td>{v['rows']:,}</td><td>{v['partitions']:,}</td><td>{v['bytes']:,}</td></tr>"
        for t, v in report["tables"].items())
    data = json.dumps({"tables": report["tables"], "daily_rows": report["daily_rows"],
                       "mess_counts": report["mess_counts"]}).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bear run report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1000px}}
table{{border-collapse:collapse}}td,th{{padding:2px 10px;text-align:right;border-bottom:1px solid #ddd}}
td:first-child,th:first-child{{text-align:left}}
.grid{{display:grid;grid-template-columns:1fr 1fr;gap:8px 24px}}</style></head><body>
<h1>bear run report</h1>
<p>lake {html.escape(str(report.get('lake')))} &middot; {report['range']['start']} .. {report['range']['end']}
&middot; mess {report['mess_level']} &middot; {report['total_rows']:,} rows ({report.get('total_values', 0):,}
values) &middot; {report['total_bytes']:,} bytes
&middot; {report.get('wall_seconds', 0)} s &middot; {report.get('rows_per_second') or 0:,} rows/s</p>
<table><tr><th>table</th><th>rows</th><th>partitions</th><th>bytes</th></tr>{table_rows}</table>
{_time_section(report)}
<h2>Rows per day, by table</h2>
<p>Faint: each day; bold: the mean of each week (seasonality and campaigns show there); shaded: the campaigns'
days (hover for the name). Each chart has its own scale.</p>
<div class="grid">{charts}</div>
<h2>Mess injected: share of each table's rows, per column and kind (values; "(rows)": the order feed's late
and re-delivered rows)</h2>{_bars(mess)}
<script type="application/json" id="bear-data">{data}</script>
</body></html>
"""


def publish(sink: Sink, report: dict[str, Any]) -> None:
    write_state(sink, REPORT_JSON, report)
    sink.write(REPORT_HTML, render_html(report).encode())

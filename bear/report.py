"""The run report: a summary table, `_bear/report.json` and a self-contained `_bear/report.html`.

Its numbers come from the per-chunk summaries the committer writes next to the
checkpoint, so a resumed run reports the whole lake, not just what this process wrote.
The HTML page draws daily rows per table and mess counts per column as inline SVG: no
plotting dependency, no network, opens offline.
"""

from __future__ import annotations

import html
import json
from typing import Any

from bear.schemas import DIMENSIONS, TABLES, TRANSACTIONS
from bear.sink import Sink
from bear.state import STATE_DIR, read_json, write_json
from bear.writer import PartitionStat

CHUNKS_DIR = f"{STATE_DIR}/chunks"
REPORT_JSON = f"{STATE_DIR}/report.json"
REPORT_HTML = f"{STATE_DIR}/report.html"
COLORS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7")


def summary_name(index: int) -> str:
    return f"{CHUNKS_DIR}/{'dimensions' if index < 0 else f'chunk-{index:05d}'}.json"


def chunk_summary(partitions: list[PartitionStat]) -> dict[str, Any]:
    """What the report needs of a committed chunk: rows, bytes and mess counts per partition."""
    return {
        "partitions": [
            {"table": s.table, "partition": s.partition, "rows": s.rows, "bytes": s.bytes, "files": len(s.files),
             "largest_file": max((f.bytes for f in s.files), default=0), "mess": s.mess}
            for s in partitions
        ]
    }


def build(sink: Sink, plan: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """Aggregate every committed chunk's summary into the report document."""
    names = [summary_name(-1)] + [summary_name(c["index"]) for c in plan["chunks"]]
    tables = {t: {"rows": 0, "bytes": 0, "partitions": 0, "files": 0} for t in TABLES}
    daily: dict[str, dict[str, int]] = {t: {} for t in TRANSACTIONS}
    mess: dict[str, dict[str, dict[str, int]]] = {}
    largest = 0
    for name in names:
        doc = read_json(sink, name)
        for p in (doc or {}).get("partitions", []):
            t = tables[p["table"]]
            t["rows"] += p["rows"]
            t["bytes"] += p["bytes"]
            t["partitions"] += 1
            t["files"] += p["files"]
            largest = max(largest, p["largest_file"])
            if p["table"] in daily:
                day = p["partition"].split("=", 1)[1]
                daily[p["table"]][day] = daily[p["table"]].get(day, 0) + p["rows"]
            for col, kinds in p["mess"].items():
                slot = mess.setdefault(p["table"], {}).setdefault(col, {})
                for kind, n in kinds.items():
                    slot[kind] = slot.get(kind, 0) + n
    total_rows = sum(t["rows"] for t in tables.values())
    wall = run.get("wall_seconds") or 0
    return {
        **run,
        "tables": tables,
        "total_rows": total_rows,
        "total_bytes": sum(t["bytes"] for t in tables.values()),
        # this run's own rate: a resumed run wrote only part of the lake
        "rows_per_second": round(run.get("rows_written_by_this_run", total_rows) / wall) if wall else None,
        "bytes_per_row": round(sum(t["bytes"] for t in tables.values()) / max(total_rows, 1), 2),
        "staging": {"disk_bytes": 0, "largest_in_memory_file_bytes": largest},
        "daily_rows": {t: dict(sorted(d.items())) for t, d in daily.items()},
        "mess_counts": mess,
        "range": {"start": plan["plan_config"]["run"]["start"], "end": plan["plan_config"]["run"]["end"]},
        "mess_level": plan["plan_config"]["mess"]["level"],
    }


def summary_table(report: dict[str, Any]) -> str:
    rows = [f"{'table':<16}{'rows':>14}{'partitions':>12}{'MiB':>10}{'B/row':>8}"]
    for name in (*DIMENSIONS, *TRANSACTIONS):
        t = report["tables"][name]
        rows.append(f"{name:<16}{t['rows']:>14,}{t['partitions']:>12,}{t['bytes'] / 2**20:>10.1f}"
                    f"{t['bytes'] / max(t['rows'], 1):>8.1f}")
    rate = report.get("rows_per_second")
    rows.append(f"{'total':<16}{report['total_rows']:>14,}{'':>12}{report['total_bytes'] / 2**20:>10.1f}"
                f"{report['bytes_per_row']:>8.1f}")
    rows.append(f"elapsed {report.get('wall_seconds', 0):.1f}s, {rate or 0:,} rows/s; staging on disk "
                f"{report['staging']['disk_bytes']} B, largest file held in memory "
                f"{report['staging']['largest_in_memory_file_bytes'] / 2**20:.1f} MiB")
    return "\n".join(rows)


def _line_chart(series: dict[str, dict[str, int]], width: int = 960, height: int = 260) -> str:
    days = sorted({d for s in series.values() for d in s})
    if not days:
        return "<p>no rows</p>"
    top = max(max(s.values(), default=0) for s in series.values()) or 1
    x = {d: 50 + i * (width - 60) / max(len(days) - 1, 1) for i, d in enumerate(days)}
    parts = [f'<svg viewBox="0 0 {width} {height + 40}" width="100%" role="img">',
             f'<line x1="50" y1="{height}" x2="{width - 10}" y2="{height}" stroke="#888"/>',
             f'<text x="5" y="15" font-size="11">{top:,}</text><text x="5" y="{height}" font-size="11">0</text>']
    for i, (name, s) in enumerate(series.items()):
        pts = " ".join(f"{x[d]:.1f},{height - s.get(d, 0) / top * (height - 20):.1f}" for d in days)
        color = COLORS[i % len(COLORS)]
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1" points="{pts}"><title>{name}</title>'
                     f"</polyline>")
        parts.append(f'<text x="{60 + i * 150}" y="{height + 30}" fill="{color}" font-size="12">{name}</text>')
    for d in days[:: max(len(days) // 8, 1)]:
        parts.append(f'<text x="{x[d]:.1f}" y="{height + 14}" font-size="10" text-anchor="middle">{d}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _bars(counts: dict[str, int], width: int = 960) -> str:
    if not counts:
        return "<p>no mess</p>"
    top = max(counts.values()) or 1
    h = 18
    parts = [f'<svg viewBox="0 0 {width} {h * len(counts) + 10}" width="100%" role="img">']
    for i, (label, n) in enumerate(counts.items()):
        w = (width - 360) * n / top
        parts.append(f'<text x="0" y="{i * h + 13}" font-size="12">{html.escape(label)}</text>'
                     f'<rect x="300" y="{i * h + 3}" width="{w:.1f}" height="{h - 6}" fill="#4e79a7"/>'
                     f'<text x="{305 + w:.1f}" y="{i * h + 13}" font-size="11">{n:,}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: dict[str, Any]) -> str:
    mess = {f"{t}.{c} {k}": n for t, cols in report["mess_counts"].items() for c, kinds in cols.items()
            for k, n in kinds.items()}
    small = {t: report["daily_rows"][t] for t in ("orders", "order_items", "returns", "return_items")}
    big = {t: report["daily_rows"][t] for t in ("shopping_carts", "cart_items")}
    table_rows = "".join(
        f"<tr><td>{t}</td><td>{v['rows']:,}</td><td>{v['partitions']:,}</td><td>{v['bytes']:,}</td></tr>"
        for t, v in report["tables"].items())
    data = json.dumps({"tables": report["tables"], "daily_rows": report["daily_rows"],
                       "mess_counts": report["mess_counts"]}).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bear run report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1000px}}
table{{border-collapse:collapse}}td,th{{padding:2px 10px;text-align:right;border-bottom:1px solid #ddd}}
td:first-child,th:first-child{{text-align:left}}</style></head><body>
<h1>bear run report</h1>
<p>lake {html.escape(str(report.get('lake')))} &middot; {report['range']['start']} .. {report['range']['end']}
&middot; mess {report['mess_level']} &middot; {report['total_rows']:,} rows &middot; {report['total_bytes']:,} bytes
&middot; {report.get('wall_seconds', 0)} s &middot; {report.get('rows_per_second') or 0:,} rows/s</p>
<table><tr><th>table</th><th>rows</th><th>partitions</th><th>bytes</th></tr>{table_rows}</table>
<h2>Daily rows: carts and cart items</h2>{_line_chart(big)}
<h2>Daily rows: orders, order items, returns, return items</h2>{_line_chart(small)}
<h2>Mess injected (values per column and kind)</h2>{_bars(mess)}
<script type="application/json" id="bear-data">{data}</script>
</body></html>
"""


def publish(sink: Sink, report: dict[str, Any]) -> None:
    write_json(sink, REPORT_JSON, report)
    sink.write(REPORT_HTML, render_html(report).encode())

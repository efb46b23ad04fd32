"""The drill report as one self-contained HTML page (no scripts, no network).

``render(doc)`` takes the JSON document of one drill (``report.document``)
or of a campaign (``campaign.document``) and returns the page: a summary
table per fault (rounds, RTO median/p95/max, acknowledged writes lost,
split-brain events, rejoin time, receipt vs observed loss, pass/fail) and,
per round, a timeline picture (acknowledged writes per node over time, the
fault and other marked instants, leader changes). Pure: no I/O.
"""
from __future__ import annotations

from html import escape

LANE_H = 34          # px per node lane
LABEL_W = 70         # px for node names
PLOT_W = 720         # px of time axis
TOP = 18             # px above the first lane (event labels)

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px}h3{font-size:15px;margin:18px 0 4px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.pass{background:#dff5df}.fail{background:#f9d6d6}
.muted{color:#777}.note{font-size:12px;color:#555}svg{background:#fafafa;border:1px solid #ddd}
"""


def _f(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape(str(value))


def _verdict(passed) -> str:
    if passed is None:
        return '<td class="l muted">n/a</td>'
    return '<td class="l pass">pass</td>' if passed else '<td class="l fail">FAIL</td>'


def timeline_svg(tl: dict) -> str:
    """One round's picture: a lane per node with a bar per time bucket
    (height = acknowledged writes in it), red lines at marked events, and a
    label at every leader change."""
    lanes = list(tl.get("acks", {}))
    duration = max(float(tl.get("duration_s") or 0.0), 0.001)
    size = float(tl.get("bucket_s") or 0.05)
    height = TOP + LANE_H * max(1, len(lanes)) + 22
    scale = PLOT_W / duration
    peak = max([1] + [c for row in tl.get("acks", {}).values() for c in row])
    out = [f'<svg width="{LABEL_W + PLOT_W + 10}" height="{height}" role="img" '
           f'aria-label="acknowledged writes per node over time">']
    for i, node in enumerate(lanes):
        y = TOP + i * LANE_H
        out.append(f'<text x="4" y="{y + LANE_H / 2 + 4:.0f}" font-size="12">{escape(node)}</text>')
        out.append(f'<line x1="{LABEL_W}" y1="{y + LANE_H - 2}" x2="{LABEL_W + PLOT_W}" '
                   f'y2="{y + LANE_H - 2}" stroke="#ccc"/>')
        for b, count in enumerate(tl["acks"][node]):
            if not count:
                continue
            h = max(1.0, (LANE_H - 6) * count / peak)
            x = LABEL_W + b * size * scale
            out.append(f'<rect x="{x:.1f}" y="{y + LANE_H - 2 - h:.1f}" width="{max(1.0, size * scale):.1f}" '
                       f'height="{h:.1f}" fill="#3b7dd8"><title>{escape(node)}: {count} acks at '
                       f'{b * size:.2f}-{(b + 1) * size:.2f} s</title></rect>')
    bottom = TOP + LANE_H * max(1, len(lanes))
    for t, label in tl.get("events", []):
        x = LABEL_W + t * scale
        out.append(f'<line x1="{x:.1f}" y1="{TOP - 4}" x2="{x:.1f}" y2="{bottom}" stroke="#d62828" '
                   f'stroke-width="1.5"><title>{escape(label)} at {t:.3f} s</title></line>')
        out.append(f'<text x="{x + 2:.1f}" y="{TOP - 6}" font-size="10" fill="#d62828">{escape(label)}</text>')
    for t, node, term in tl.get("leaders", []):
        if node not in lanes:
            continue
        x = LABEL_W + t * scale
        y = TOP + lanes.index(node) * LANE_H + 10
        out.append(f'<text x="{x + 2:.1f}" y="{y}" font-size="10" fill="#2a7d2a">&#9650; t{term}'
                   f'<title>{escape(node)} acknowledges at term {term} from {t:.3f} s</title></text>')
    out.append(f'<text x="{LABEL_W}" y="{height - 6}" font-size="10" class="muted">0 s</text>')
    out.append(f'<text x="{LABEL_W + PLOT_W - 40}" y="{height - 6}" font-size="10">{duration:.1f} s</text>')
    out.append("</svg>")
    return "".join(out)


def _fault_row(f: dict) -> str:
    cells = [f'<td class="l">{escape(f["fault"])}</td>', f"<td>{_f(f.get('rounds'))}</td>"]
    for key in ("rto_median_s", "rto_p95_s", "rto_max_s"):
        cells.append(f"<td>{_f(f.get(key))}</td>")
    cells += [f"<td>{_f(f.get('lost_acked_writes'))}</td>", f"<td>{_f(f.get('split_brain_events'))}</td>",
              f"<td>{_f(f.get('rejoin_median_s'))}</td>", f"<td>{_f(f.get('receipt'))}</td>",
              f'<td class="l">{escape(f.get("target") or "-")}</td>', _verdict(f.get("passed"))]
    return "<tr>" + "".join(cells) + "</tr>"


def _summary_table(faults: list[dict]) -> str:
    head = ("<tr><th class=l>fault</th><th>rounds</th><th>RTO median s</th><th>p95 s</th><th>max s</th>"
            "<th>acked writes lost</th><th>split brain</th><th>rejoin median s</th>"
            "<th>receipt vs observed</th><th class=l>target</th><th class=l>result</th></tr>")
    return "<table>" + head + "".join(_fault_row(f) for f in faults) + "</table>"


def _rounds(drill: dict) -> str:
    parts = []
    for r in drill.get("rounds", []):
        title = (f"round {r['round']}: {escape(str(r.get('old_primary')))} &rarr; "
                 f"{escape(str(r.get('new_primary') or '-'))}, RTO {_f(r.get('rto_s'))} s, "
                 f"{r.get('acked_writes', 0)} acked, {r.get('lost_acked_writes', 0)} lost, "
                 f"split brain {r.get('split_brain', 0)}")
        parts.append(f"<h3>{title}</h3>")
        if r.get("error"):
            parts.append(f'<p class="fail">{escape(r["error"])}</p>')
        for line in r.get("split_brain_sample", []):
            parts.append(f'<p class="fail">split brain: {escape(line)}</p>')
        if r.get("timeline"):
            parts.append(timeline_svg(r["timeline"]))
    return "".join(parts)


def render(doc: dict) -> str:
    """The page for a campaign document (``faults``) or one drill's (``rounds``)."""
    if "faults" in doc:
        faults, drills, config = doc["faults"], doc.get("drills", {}), doc.get("config", {})
        title = "walrus drill campaign"
    else:
        config = doc.get("config", {})
        name = config.get("scenario", "drill")
        s = doc.get("summary", {})
        faults = [{"fault": name, "rounds": s.get("rounds"), "rto_median_s": s.get("rto_median_s"),
                   "rto_p95_s": s.get("rto_p95_s"), "rto_max_s": s.get("rto_max_s"),
                   "lost_acked_writes": s.get("lost_acked_writes_total"),
                   "split_brain_events": s.get("split_brain_total"),
                   "rejoin_median_s": s.get("rejoin_median_s"), "passed": doc.get("passed")}]
        drills, title = {name: doc}, f"walrus drill {name}"
    summary = doc.get("summary", {})
    facts = ", ".join(f"{k} {escape(str(v))}" for k, v in config.items() if k in (
        "engine", "sync", "nodes", "rounds", "ttl", "started", "host_cpus"))
    body = [f"<h1>{escape(title)}</h1>", f'<p class="note">{facts}</p>']
    if "lost_acked_writes_total" in summary:
        body.append(f"<p><b>{summary.get('lost_acked_writes_total')}</b> acknowledged writes lost, "
                    f"<b>{summary.get('split_brain_total', 0)}</b> split-brain events"
                    f"{', cleanup: ' + escape(str(summary['cleanup'])) if summary.get('cleanup') else ''}.</p>")
    if summary.get("interrupted"):
        body.append("<p><b>Interrupted</b>: the campaign was stopped before its end; only the rounds that "
                    "finished are shown, and it does not pass.</p>")
    body.append(_summary_table(faults))
    body.append('<p class="note">Timelines: blue bars are writes acknowledged per node per time bucket; '
                'red lines are the instants the drill acted (the fault, restarts, thaws); green '
                '&#9650; tN marks where a node starts acknowledging at term N.</p>')
    for f in faults:
        drill = drills.get(f["fault"])
        if drill:
            noted = f'<p class="note">{escape(f["note"])}</p>' if f.get("note") else ""
            body.append(f"<h2>{escape(f['fault'])}</h2>" + noted + _rounds(drill))
        elif f.get("note"):
            body.append(f"<h2>{escape(f['fault'])}</h2><p class=muted>{escape(f['note'])}</p>")
    return ("<!doctype html><html><head><meta charset=utf-8><title>" + escape(title) + "</title><style>" +
            STYLE + "</style></head><body>" + "".join(body) + "</body></html>\n")

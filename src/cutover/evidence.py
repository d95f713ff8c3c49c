"""The evidence pack: everything a finance controller reads and signs after ``cutover verify``.

:func:`build_pack` ``(folder, results, run_info)`` completes a report folder in which the
validation suite has already written ``junit.xml``, ``cucumber.json``, ``results.json``,
``tables/*.csv``, ``features/`` (the feature files and ``scope.toml`` exactly as run) and
``pytest.log``. It adds:

- ``snapshots/<label>-manifest.json`` — the AR/GL snapshot manifests (counts, control totals,
  SHA-256 of the Parquet files) the balance scenarios compared;
- ``journal/journal.jsonl`` and ``journal/head.json`` — the environment's journal export and
  its head (sequence number, SHA-256), with the result of re-checking the hash chain;
- ``run.json`` — tool version, profile, pinned and answered organization id, SHA-256 of the
  extract and the mapping file, the cutover date, verdict and exit code, the feature files as
  run (path in the pack, SHA-256, shipped or workspace) and the journal head;
- ``report.html`` — one self-contained page: no script, no style sheet or image fetched from
  anywhere (charts are inline SVG drawn with matplotlib's SVG backend — plain SVG drawn here
  when matplotlib is not installed). It opens with the verdict and the headline figures, then
  each scenario with its steps, the numbers behind it and its mismatch tables (the first rows;
  every row in the CSV beside it), charts of the AR and GL balances before and after and their
  movement, and the journal's step timeline with who attested what;
- ``manifest.json`` last: ``{"files": [{"path", "sha256", "bytes"}]}`` for every file of the
  folder (paths relative to it, ``/``-separated, sorted) except ``manifest.json`` itself and
  ``signatures.jsonl`` (:mod:`cutover.signoff` appends to that one and checks the rest).

Chart coordinates are floats (a drawing needs them); every figure printed is exact Decimal text.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import io
import json
import re
import shutil
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from .errors import CutoverError
from .journal import HEAD_FILE, JOURNAL_FILE, Journal, file_sha256

__all__ = [
    "EXCLUDED_FROM_MANIFEST",
    "MANIFEST_FILE",
    "SIGNATURES_FILE",
    "build_pack",
    "file_records",
    "write_manifest",
]

MANIFEST_FILE = "manifest.json"
SIGNATURES_FILE = "signatures.jsonl"
EXCLUDED_FROM_MANIFEST = (MANIFEST_FILE, SIGNATURES_FILE)
REPORT_FILE = "report.html"
RUN_FILE = "run.json"
MAX_BARS = 24


# --- the manifest ----------------------------------------------------------------------------------


def file_records(folder: Path) -> list[dict[str, Any]]:
    """Every file of ``folder`` but the manifest and the signatures: path, SHA-256, bytes."""
    out = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel in EXCLUDED_FROM_MANIFEST:
            continue
        out.append({"path": rel, "sha256": file_sha256(path), "bytes": path.stat().st_size})
    return out


def write_manifest(folder: Path) -> Path:
    path = folder / MANIFEST_FILE
    text = json.dumps({"files": file_records(folder)}, indent=2, ensure_ascii=False) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


# --- money and text --------------------------------------------------------------------------------


def _dec(value: Any) -> Decimal:
    if value is None or value == "":
        return Decimal(0)
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _money(value: Any) -> str:
    d = _dec(value)
    return f"{d:,.2f}" if d == d.quantize(Decimal("0.01")) else f"{d.normalize():,f}"


def _signed(value: Any) -> str:
    d = _dec(value)
    return ("+" if d > 0 else "") + _money(d)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


# --- the inputs the pack copies ----------------------------------------------------------------------


def _copy_snapshot_manifests(folder: Path, workspace: Path, env: str) -> dict[str, dict]:
    from .snapshot import snapshot_dir

    out = {}
    for label in ("before", "after"):
        try:
            source = snapshot_dir(workspace, env, label) / "manifest.json"
        except CutoverError:
            continue
        if source.is_file():
            target = folder / "snapshots" / f"{label}-manifest.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            out[label] = {"path": target.relative_to(folder).as_posix(), "sha256": file_sha256(target)}
    return out


def _journal(folder: Path, workspace: Path, env: str) -> tuple[dict | None, list[dict]]:
    """Export the journal into the pack; (head information, the environment's entries)."""
    if not (workspace / JOURNAL_FILE).is_file():
        return None, []
    with Journal.open(workspace, create=False) as journal:
        check = journal.verify()
        entries = [e.as_dict() for e in journal.entries(env)]
        export = journal.export("jsonl", env)
        recorded = journal.recorded_head()
    target = folder / "journal"
    target.mkdir(parents=True, exist_ok=True)
    (target / "journal.jsonl").write_text(export, encoding="utf-8")
    head = {
        "seq": check.head.seq if check.head else None,
        "sha256": check.head.hash if check.head else None,
        "rows": check.rows,
        "chain_ok": check.ok,
        "problem": check.problem,
        "recorded_head": {"seq": recorded.seq, "sha256": recorded.hash} if recorded else None,
        "recorded_in": HEAD_FILE,
    }
    (target / "head.json").write_text(json.dumps(head, indent=2) + "\n", encoding="utf-8")
    return head, entries


def _balance_series(workspace: Path, env: str) -> dict[str, list[tuple[str, Decimal, Decimal]]] | None:
    """(label, before, after) per AR legal entity (accounting currency) and per GL legal entity
    and main account, from the snapshots (hashes checked); None without both snapshots."""
    try:
        import polars as pl

        from .snapshot import read_snapshot

        (ar_b, gl_b, _), (ar_a, gl_a, _) = (read_snapshot(workspace, env, label) for label in ("before", "after"))
    except (CutoverError, OSError):
        return None

    def per(frames, keys: list[str], amount: str) -> list[tuple[str, Decimal, Decimal]]:
        before, after = (f.group_by(keys).agg(pl.col(amount).sum().alias("v")).collect() for f in frames)
        joined = before.join(after, on=keys, how="full", coalesce=True, suffix="_after")
        rows = []
        for r in joined.sort(keys).iter_rows(named=True):
            label = " ".join(str(r[k]) for k in keys)
            rows.append((label, _dec(r["v"]), _dec(r["v_after"])))
        return rows

    def legal_entity(frame):
        names = frame.collect_schema().names()
        if "legal_entity" in names:
            return frame
        return frame.with_columns(pl.col("dataAreaId").str.to_uppercase().alias("legal_entity"))

    return {
        "ar": per((legal_entity(ar_b), legal_entity(ar_a)), ["legal_entity"], "AmountMst"),
        "gl": per((gl_b, gl_a), ["legal_entity", "MainAccount"], "AccountingCurrencyAmount"),
    }


# --- charts ----------------------------------------------------------------------------------------


def _svg_clean(svg: str) -> str:
    """matplotlib's SVG as an inline element: no XML prolog, no DOCTYPE (it names a URL)."""
    start = svg.find("<svg")
    svg = svg[start:] if start >= 0 else svg
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    # Inline SVG in HTML needs no namespace declarations: the page then names no URL at all.
    svg = svg.replace(' xmlns="http://www.w3.org/2000/svg"', "").replace(
        ' xmlns:xlink="http://www.w3.org/1999/xlink"', ""
    )
    return svg.strip()


def _chart(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]]) -> str:
    """A bar chart (one bar per series and label) as inline SVG."""
    try:
        import matplotlib

        matplotlib.use("svg", force=False)
        import matplotlib.pyplot as plt
    except Exception:  # matplotlib missing or unusable: draw it ourselves
        return _plain_chart(title, labels, series)
    with matplotlib.rc_context({"svg.hashsalt": "cutover", "svg.fonttype": "path", "font.size": 8}):
        width = max(4.0, min(11.0, 1.0 + 0.45 * len(labels) * max(1, len(series))))
        fig, ax = plt.subplots(figsize=(width, 2.8))
        n = max(1, len(series))
        step = 0.8 / n
        colours = ("#4c72b0", "#dd8452", "#55a868", "#c44e52")
        for i, (name, values) in enumerate(series):
            xs = [j - 0.4 + step * (i + 0.5) for j in range(len(labels))]
            ax.bar(xs, values, width=step, label=name, color=colours[i % len(colours)])
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=45 if len(labels) > 6 else 0, ha="right" if len(labels) > 6 else "center")
        ax.axhline(0, color="#444", linewidth=0.6)
        ax.set_title(title)
        if len(series) > 1:
            ax.legend(frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
        plt.close(fig)
    return _svg_clean(buf.getvalue())


def _plain_chart(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]]) -> str:
    width, height, pad = max(320, 60 * len(labels) + 80), 220, 40
    values = [v for _, vs in series for v in vs] or [0.0]
    top, bottom = max(0.0, *values), min(0.0, *values)
    span = (top - bottom) or 1.0

    def y(v: float) -> float:
        return pad + (top - v) / span * (height - 2 * pad)

    parts = [f'<svg width="{width}" height="{height}" role="img"><title>{_e(title)}</title>']
    parts.append(f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="12">{_e(title)}</text>')
    parts.append(f'<line x1="40" x2="{width - 10}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#444"/>')
    slot = (width - 60) / max(1, len(labels))
    bar = slot * 0.8 / max(1, len(series))
    colours = ("#4c72b0", "#dd8452", "#55a868")
    for j, label in enumerate(labels):
        for i, (_, vs) in enumerate(series):
            v = vs[j]
            x = 45 + j * slot + i * bar
            y0, y1 = sorted((y(0), y(v)))
            parts.append(
                f'<rect x="{x:.1f}" y="{y0:.1f}" width="{bar:.1f}" height="{max(0.5, y1 - y0):.1f}" fill="{colours[i % 3]}"/>'
            )
        parts.append(
            f'<text x="{45 + j * slot + slot * 0.4:.1f}" y="{height - 8}" text-anchor="middle" font-size="9">{_e(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _charts(series: dict[str, list[tuple[str, Decimal, Decimal]]] | None) -> list[tuple[str, str, str]]:
    """(title, svg, note) for the AR and GL balances before/after and their movement."""
    if not series:
        return []
    out = []
    ar = series["ar"]
    if ar:
        labels = [r[0] for r in ar]
        out.append(
            (
                "AR balance per legal entity (accounting currency)",
                _chart(
                    "AR balance before and after",
                    labels,
                    [("before", [float(r[1]) for r in ar]), ("after", [float(r[2]) for r in ar])],
                ),
                "; ".join(f"{r[0]}: {_money(r[1])} → {_money(r[2])}" for r in ar),
            )
        )
        out.append(
            (
                "AR movement per legal entity",
                _chart("AR movement (after − before)", labels, [("movement", [float(r[2] - r[1]) for r in ar])]),
                "; ".join(f"{r[0]}: {_signed(r[2] - r[1])}" for r in ar),
            )
        )
    gl = series["gl"]
    if gl:
        moved = [r for r in gl if r[2] != r[1]]
        shown = sorted(gl, key=lambda r: (-(abs(r[2] - r[1])), -abs(r[1])))[:MAX_BARS]
        shown = sorted(shown, key=lambda r: r[0])
        labels = [r[0] for r in shown]
        out.append(
            (
                "GL balance per main account (accounting currency)",
                _chart(
                    "GL balance before and after",
                    labels,
                    [("before", [float(r[1]) for r in shown]), ("after", [float(r[2]) for r in shown])],
                ),
                f"{len(gl):,} main accounts; the {len(shown)} shown are those that moved most, then the largest",
            )
        )
        out.append(
            (
                "GL movement per main account",
                _chart("GL movement (after − before)", labels, [("movement", [float(r[2] - r[1]) for r in shown])]),
                ("; ".join(f"{r[0]}: {_signed(r[2] - r[1])}" for r in moved) or "no main account moved"),
            )
        )
    return out


# --- the page --------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1100px;color:#1d1d1f;padding:0 1rem}
h1{font-size:1.6rem;margin:.2rem 0}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
.verdict{padding:1rem 1.2rem;border-radius:6px;font-size:1.3rem;font-weight:600;margin:1rem 0}
.passed{background:#e6f4ea;color:#0d652d}.failed,.error{background:#fce8e6;color:#a50e0e}
.incomplete,.not-verified{background:#fef7e0;color:#7a4f01}
.badge{display:inline-block;padding:0 .5rem;border-radius:4px;font-size:.8rem;font-weight:600}
table{border-collapse:collapse;margin:.5rem 0;font-size:.85rem}td,th{border:1px solid #ddd;padding:.2rem .45rem;text-align:left;vertical-align:top}
th{background:#f5f5f7}td.n{text-align:right;font-variant-numeric:tabular-nums}
.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:.4rem}
.fig{background:#f5f5f7;border-radius:4px;padding:.35rem .6rem}.fig b{display:block;font-size:1.05rem}
.scenario{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;margin:1rem 0}
.msg{white-space:pre-wrap;background:#fff8f7;border-left:3px solid #c5221f;padding:.4rem .6rem}
.steps{list-style:none;padding-left:0}.steps li{margin:.1rem 0}code{font-size:.85em}
.note{color:#555;font-size:.85rem}svg{max-width:100%;height:auto}
"""

_OUTCOME_CLASS = {
    "passed": "passed",
    "failed": "failed",
    "not verified": "not-verified",
    "error": "error",
    "skipped": "incomplete",
}


def _figures(figures: dict[str, Any]) -> str:
    if not figures:
        return ""
    cells = "".join(
        f'<div class="fig">{_e(k)}<b>{_e(json.dumps(v) if isinstance(v, (dict, list)) else v)}</b></div>'
        for k, v in figures.items()
    )
    return f'<div class="figures">{cells}</div>'


def _table(columns: Sequence[str], rows: Iterable[Sequence[Any]], numeric: set[int] | None = None) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="n">{_e(v)}</td>' if numeric and i in numeric else f"<td>{_e(v)}</td>"
            for i, v in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _scenario_html(s: dict[str, Any]) -> str:
    outcome = s.get("outcome", "error")
    cls = _OUTCOME_CLASS.get(outcome, "error")
    example = s.get("example") or {}
    title = s.get("scenario", "")
    if example:
        title += " — " + ", ".join(f"{k}: {v}" for k, v in example.items())
    parts = [f'<section class="scenario" id="s{s.get("index", 0)}">']
    parts.append(f'<h3><span class="badge {cls}">{_e(outcome.upper())}</span> {_e(title)}</h3>')
    parts.append(
        f'<p class="note">Feature: {_e(s.get("feature"))} (<code>{_e(s.get("feature_file"))}</code>, line '
        f"{_e(s.get('line'))}) · tags: {_e(' '.join('@' + t for t in s.get('tags', [])))}</p>"
    )
    if s.get("message") and outcome != "passed":
        prefix = "Not verified: " if outcome == "not verified" else ("Error: " if outcome == "error" else "")
        parts.append(f'<p class="msg">{_e(prefix + s["message"])}</p>')
    steps = "".join(
        f"<li>{'✔' if st['status'] == 'passed' else ('✘' if st['status'] == 'failed' else ('?' if st['status'] == 'not verified' else '·'))} "
        f"<b>{_e(st['keyword'])}</b> {_e(st['text'])}</li>"
        for st in s.get("steps", [])
    )
    parts.append(f'<ul class="steps">{steps}</ul>')
    parts.append(_figures(s.get("figures") or {}))
    for t in s.get("tables", []):
        shown = len(t.get("rows", []))
        more = f" (first {shown} of {t['total_rows']:,} rows)" if t.get("total_rows", 0) > shown else ""
        parts.append(
            f'<h4>{_e(t["title"])}{_e(more)} — <a href="{_e(t["csv"])}">{_e(t["csv"])}</a></h4>'
            + _table(t.get("columns", []), t.get("rows", []))
        )
    parts.append("</section>")
    return "".join(parts)


_HEADLINE_KEYS = (
    "invoiced legacy milestones",
    "matched",
    "missing in dataverse",
    "missing in fno",
    "customer balances that changed",
    "new customer vouchers",
    "main account balances that changed",
    "new vouchers",
)


def _headline(results: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for s in results.get("scenarios", []):
        for key, value in (s.get("figures") or {}).items():
            if key in _HEADLINE_KEYS and key not in found:
                found[key] = value
    return found


def _timeline(entries: list[dict]) -> str:
    rows = []
    for e in entries:
        kind = e["kind"]
        if kind not in (
            "run.started",
            "step.started",
            "step.attested",
            "check.passed",
            "check.failed",
            "check.not-verified",
            "step.finished",
            "step.failed",
            "step.blocked",
            "run.finished",
        ):
            continue
        data = e.get("data") or {}
        what = data.get("statement") or data.get("summary") or data.get("reason") or data.get("title") or ""
        if isinstance(data.get("evidence"), dict):
            what = what or data["evidence"].get("summary", "")
        rows.append((e["seq"], e["at"], e.get("step") or "", kind, e.get("actor") or "", str(what)[:300]))
    if not rows:
        return "<p>The journal holds no steps for this environment.</p>"
    return _table(("row", "at (UTC)", "step", "event", "who", "what"), rows)


def render_report(
    results: dict[str, Any],
    run: dict[str, Any],
    charts: list[tuple[str, str, str]],
    entries: list[dict],
) -> str:
    verdict = str(run.get("verdict", "error"))
    counts = run.get("counts", {})
    count_text = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    env = results.get("environment") or {}
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f"<title>cutover verification — {_e(run.get('environment'))} — {_e(verdict)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Cutover verification: {_e(run.get('environment'))}</h1>",
        f'<div class="verdict {_e(verdict)}">Verdict: {_e(verdict.upper())} — {_e(count_text)}</div>',
    ]
    if verdict == "incomplete":
        parts.append(
            "<p><b>Incomplete:</b> some evidence could not be read by this account; those scenarios are "
            "<em>not verified</em>, neither passed nor failed. Read them below before signing.</p>"
        )
    facts = {
        "environment": run.get("environment"),
        "organization (pinned)": run.get("pinned_organization_id"),
        "organization (answered)": env.get("organization_id"),
        "cutover date": run.get("cutover_date"),
        "extract SHA-256": run.get("source_sha256"),
        "verified at (UTC)": run.get("finished_utc"),
        "journal head": (run.get("journal_head") or {}).get("sha256"),
        "tool": f"cutover {run.get('tool_version')}",
    }
    parts.append(_figures({k: v for k, v in facts.items() if v}))
    headline = _headline(results)
    if headline:
        parts.append("<h2>Headline figures</h2>" + _figures(headline))
    parts.append("<h2>Scenarios</h2>")
    parts.append(
        _table(
            ("", "scenario", "feature", "outcome"),
            (
                (
                    s.get("index"),
                    s.get("scenario", "")
                    + (" — " + ", ".join(f"{v}" for v in s["example"].values()) if s.get("example") else ""),
                    s.get("feature"),
                    s.get("outcome", "").upper(),
                )
                for s in results.get("scenarios", [])
            ),
        )
    )
    parts.extend(_scenario_html(s) for s in results.get("scenarios", []))
    parts.append("<h2>AR and GL balances before and after</h2>")
    if charts:
        for title, svg, note in charts:
            parts.append(f"<h3>{_e(title)}</h3>{svg}<p class=note>{_e(note)}</p>")
    else:
        parts.append("<p>No pair of snapshots to draw.</p>")
    parts.append("<h2>The journal: steps and attestations</h2>")
    head = run.get("journal_head")
    if head:
        state = (
            "the hash chain checks" if head.get("chain_ok") else f"THE HASH CHAIN DOES NOT CHECK: {head.get('problem')}"
        )
        parts.append(
            f"<p>Head: row {_e(head.get('seq'))}, SHA-256 <code>{_e(head.get('sha256'))}</code>; {_e(state)}.</p>"
        )
    parts.append(_timeline(entries))
    parts.append("<h2>What ran</h2>")
    parts.append(
        _table(
            ("feature file (as run)", "from", "SHA-256"),
            ((f["path"], f["origin"], f["sha256"]) for f in run.get("features", [])),
        )
    )
    parts.append(
        "<h2>Sign-off</h2><p>Two different people sign this pack with <code>cutover signoff --report DIR --name NAME "
        "--role ROLE</code>. A signature is an attestation bound to the SHA-256 of <code>manifest.json</code> (which "
        "lists every file of the pack with its SHA-256), not a cryptographic signature: a changed, added or removed "
        "file is detected and signing is refused. <code>cutover signoff --check DIR</code> says whether the pack is "
        "accepted.</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts)


def build_pack(folder: Path, results: dict[str, Any], run_info: dict[str, Any]) -> Path:
    """Complete the evidence pack in ``folder`` (see the module docstring); returns manifest.json."""
    folder = Path(folder)
    workspace = Path(run_info["workspace"])
    env = str(run_info["environment"])
    snapshots = _copy_snapshot_manifests(folder, workspace, env)
    head, entries = _journal(folder, workspace, env)
    charts = _charts(_balance_series(workspace, env))
    counts: dict[str, int] = {}
    for s in results.get("scenarios", []):
        counts[s.get("outcome", "error")] = counts.get(s.get("outcome", "error"), 0) + 1
    features = []
    base = folder / "features"
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        origin = path.relative_to(base).parts[0]
        features.append({"path": rel, "origin": origin, "sha256": file_sha256(path)})
    source = run_info.get("source")
    mapping = run_info.get("mapping")
    run = dict(run_info)
    run.update(
        {
            "organization_id": (results.get("environment") or {}).get("organization_id"),
            "source_sha256": file_sha256(source) if source and Path(source).is_file() else None,
            "mapping_sha256": file_sha256(mapping) if mapping and Path(mapping).is_file() else None,
            "cutover_date": results.get("cutover_date"),
            "scope": results.get("scope"),
            "counts": counts,
            "features": features,
            "snapshot_manifests": snapshots,
            "journal_head": head,
            "pack_written_utc": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
        }
    )
    (folder / RUN_FILE).write_text(json.dumps(run, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (folder / REPORT_FILE).write_text(render_report(results, run, charts, entries), encoding="utf-8")
    return write_manifest(folder)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()

"""The reproduction report: for every figure in a results folder, its plots and key numbers
beside the paper's (where the paper states them) and beside theory.

Two renderings of the same content: ``report.md`` (images linked) and ``report.html``, one
self-contained page with the PNGs inlined as base64 (Jinja2, autoescaped). The content comes
from each figure's ``summary.json`` (written by :func:`modelcollapse.experiments.run_figure`),
so a report can be rebuilt at any time without simulating.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from ._files import atomic_write_text
from .experiments.figure_spec import FIGURES, Z_AGREE, quantity_kind, quantity_label
from .results import provenance

__all__ = [
    "Section",
    "build_sections",
    "censored_warning",
    "collect_summaries",
    "format_number",
    "format_value",
    "render_html",
    "render_markdown",
    "write_report",
]

#: How a column header marks where its numbers come from.
KIND_SUFFIX = {"sim": "", "theory": " (theory)", "approximation": " (approximation)"}
#: Figures in the paper's order (Fig. 5, the transformer, comes from modelcollapse.lm).
PAPER_ORDER = (*FIGURES[:4], "fig5", *FIGURES[4:])
#: Measured quantity -> the theory it is checked against (names of experiments.QUANTITIES).
THEORY_PARTNERS = {"T_mean": ("T_exact",),
                   "sigma_final": ("S_eq9_final", "S_eq6_final", "S_exact_final"),
                   "sigma_plateau": ("S_exact_plateau",), "sigma@": ("S_eq6@",),
                   "dirac_fraction@": ("dirac_fraction_exact@",)}


def format_number(x: float | int | None) -> str:
    """How the report writes a number: ints as they are, large floats with thousands
    separators, others to 4 significant digits; missing values as an em dash."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int) or (float(x).is_integer() and abs(x) < 1e15):
        return f"{int(x):,}" if abs(x) >= 1e4 else str(int(x))
    if abs(x) >= 1e4:
        return f"{x:,.0f}"
    return f"{x:.4g}"


def format_value(numbers: dict, name: str) -> str:
    """``value ± se`` when the quantity has a standard error, else the value."""
    value, se = numbers.get(name), numbers.get(f"{name}_se")
    text = format_number(value)
    if value is not None and se is not None:
        text += f" ± {se:.2g}"
    return text


#: Means over the runs that collapsed (absorbed) -> the count of runs that did not: such a
#: mean is biased low when some runs are censored, and the report says so beside it.
CENSORED_MEANS = {"T_mean": "censored_runs", "T_sd": "censored_runs",
                  "absorption_mean": "absorption_censored"}
#: Marks a mean over runs with censoring (explained under its table).
CENSORED_MARK = "⚠"
#: The 'agrees' column of a number only the full run can judge (quick mode).
NEEDS_FULL_RUN = "needs full run"


def censored_warning(numbers: dict, name: str) -> str | None:
    """The warning a mean over the uncensored runs needs, or None (no run censored, or no
    mean at all)."""
    count = CENSORED_MEANS.get(name)
    censored = numbers.get(count) if count else None
    if not censored or numbers.get(name) is None:
        return None
    runs = numbers.get("runs")
    what = "collapsed" if count == "censored_runs" else "were absorbed"
    kept = f"the {runs - censored} runs that {what}" if runs else f"the runs that {what}"
    return (f"{quantity_label(name)} is over {kept}; {censored}"
            f"{f' of {runs}' if runs else ''} censored at the horizon, so it is biased low "
            f"beside any prediction of the full mean")


def _marked_value(numbers: dict, name: str) -> str:
    """:func:`format_value`, marked when the value is a mean over runs with censoring."""
    text = format_value(numbers, name)
    return f"{text} {CENSORED_MARK}" if censored_warning(numbers, name) else text


def _agrees(row: dict) -> str:
    return NEEDS_FULL_RUN if row["agrees"] is None else "yes" if row["agrees"] else "no"


def _format_z(z: float | None) -> str:
    return "∞" if z is None or math.isinf(z) else f"{z:+.1f}"


def _format_abs(z: float) -> str:
    return "∞" if math.isinf(z) else f"{abs(z):.1f}"


@dataclass
class Section:
    """One figure's part of the report, already formatted."""

    figure: str
    title: str
    paper: str
    mode: str
    images: list[str]
    header: list[str]
    rows: list[list[str]]
    comparison: list[list[str]] = field(default_factory=list)
    verdict: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    notes: str = ""
    seconds: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return self.figure


def collect_summaries(out: str | Path) -> list[dict]:
    """Every ``<out>/<figure>/summary.json``, paper figures first in paper order."""
    out = Path(out)
    paths = sorted(out.glob("*/summary.json"),
                   key=lambda p: (PAPER_ORDER.index(p.parent.name) if p.parent.name in PAPER_ORDER
                                  else len(PAPER_ORDER), p.parent.name))
    return [json.loads(p.read_text()) for p in paths]


def _z_against(numbers: dict, name: str, target: float) -> float | None:
    """z of a measured number against theory. Where theory gives the variance it sets the
    standard error: the exact sd of T (the sample sd of a skewed T is unreliable over few
    runs) and the binomial variance of an exact probability. A mean over only the runs that
    collapsed is biased when some are censored: skipped (``None``). A value that differs from
    a theory with no spread at all gets an infinite z."""
    value = numbers.get(name)
    if value is None:
        return None
    se = numbers.get(f"{name}_se")
    if name == "T_mean":
        if numbers.get("censored_runs"):
            return None
        if numbers.get("T_exact_sd"):
            se = numbers["T_exact_sd"] / math.sqrt(numbers["collapsed_runs"])
    elif name.startswith("dirac_fraction@") and numbers.get("rows"):
        # A fraction against an exact probability q: the binomial se under q itself.
        se = math.sqrt(target * (1 - target) / numbers["rows"])
        if se == 0:
            return 0.0 if value == target else math.inf
    if not se:
        return None
    return (value - target) / se


def _theory_checks(summary: dict) -> list[str]:
    """Measured against theory across the cells (largest |z|), and eq. 8's bounds held."""
    cells = summary["cells"]
    groups: dict[tuple[str, str], dict] = {}
    for cell in cells:
        numbers = cell["numbers"]
        for name in numbers:
            base, at, m = name.partition("@")
            if name.endswith("_se"):
                continue
            for partner in THEORY_PARTNERS.get(base + at, ()):
                target = numbers.get(partner + m)
                z = None if target is None else _z_against(numbers, name, target)
                if z is None:
                    continue
                group = groups.setdefault((base + at, partner), {"z": [], "m": []})
                group["z"].append(z)
                if at:
                    group["m"].append(int(m))
    lines = []
    for (name, partner), group in groups.items():
        zs = group["z"]
        worst = max(abs(z) for z in zs)
        label = quantity_label(name + "0").split(", m = ")[0] if name.endswith("@") \
            else quantity_label(name)
        other = quantity_label(partner + "0").split(", m = ")[0] if partner.endswith("@") \
            else quantity_label(partner)
        where = (f" at m ∈ {{{', '.join(map(str, sorted(set(group['m']))))}}}"
                 if group["m"] else "")
        lines.append(f"{label} against {other}{where}: largest |z| = {_format_abs(worst)} over "
                     f"{len(zs)} value{'s' * (len(zs) > 1)}"
                     f"{'' if worst < Z_AGREE else f' (beyond {Z_AGREE:g})'}")
    bounds = (("T_lower_eq8", lambda t, b: t >= b), ("T_upper_eq8", lambda t, b: t <= b))
    for bound, holds in bounds:
        both = [(c["numbers"].get("T_mean"), c["numbers"].get(bound)) for c in cells]
        both = [(t, b) for t, b in both if t is not None and b is not None]
        if both:
            ok = sum(holds(t, b) for t, b in both)
            side = "above" if bound == "T_lower_eq8" else "below"
            lines.append(f"mean T {side} the {quantity_label(bound)} in {ok} of {len(both)} cells")
    return lines


def _verdict_lines(summary: dict) -> list[str]:
    lines = []
    agreeing = []
    for v in summary.get("verdict", []):
        z = "∞" if v["max_abs_z"] is None else f"{v['max_abs_z']:.1f}"
        count = f"{len(v['quantities'])} stated number{'s' * (len(v['quantities']) > 1)}"
        if v["agrees"] is None:  # quick mode: the horizon decides, not the model
            lines.append(f"{v['tag']} '{v['value']}': not judged in quick mode: some of its "
                         f"{count} need the full horizon (run without --quick)")
            continue
        word = "agrees with" if v["agrees"] else "does not agree with"
        lines.append(f"{v['tag']} '{v['value']}': {word} the paper (largest |z| = {z} over "
                     f"{count})")
        if v["agrees"]:
            agreeing.append(v["value"])
    if len(agreeing) == 1 and len(summary.get("verdict", [])) > 1:
        lines.append(f"The {summary['verdict'][0]['tag']} that reproduces the paper: "
                     f"'{agreeing[0]}'.")
    return lines


def build_sections(summaries: list[dict]) -> list[Section]:
    """Format every summary into a :class:`Section` (shared by Markdown and HTML)."""
    sections = []
    for s in summaries:
        header = ["cell", *(quantity_label(q) + KIND_SUFFIX[quantity_kind(q)]
                            for q in s["report"])]
        rows = [[c["label"], *(_marked_value(c["numbers"], q) for q in s["report"])]
                for c in s["cells"]]
        comparison = [[c["label"], quantity_label(r["quantity"]), format_number(r["paper"]),
                       _marked_value(c["numbers"], r["quantity"]), _format_z(r["z"]),
                       _agrees(r)]
                      for c in s["cells"] for r in c["comparison"]]
        shown = [*s["report"], *(r["quantity"] for c in s["cells"] for r in c["comparison"])]
        warnings = list(dict.fromkeys(
            f"{CENSORED_MARK} {c['label']}: {why}" for c in s["cells"]
            for q in dict.fromkeys(shown) if (why := censored_warning(c["numbers"], q))))
        warnings += [f"{c['label']}, {quantity_label(r['quantity'])}: needs the full run "
                     f"({r['needs_full_run']})"
                     for c in s["cells"] for r in c["comparison"] if r.get("needs_full_run")]
        images = [f"{s['figure']}/{f}" for f in s["files"] if f.endswith(".png")]
        sections.append(Section(s["figure"], s["title"], s["paper"], s["mode"], images, header,
                                rows, comparison, _verdict_lines(s), _theory_checks(s),
                                s.get("notes", ""), s.get("seconds", {}), warnings))
    return sections


#: The report's first paragraph (HTML tags, rewritten to Markdown for report.md).
INTRO = ("<em>How Bad is Training on Synthetic Data? A Statistical Analysis of Language Model "
         "Collapse</em> (Seddik et al., 2024). Measured numbers come from "
         "<code>modelcollapse reproduce</code>, theory from <code>modelcollapse.theory</code>, "
         "the paper's numbers from its text. A stated number agrees when |z| < {z}, "
         "z = (ours − paper) / √(se² + se_paper²): se is the standard error of ours, and "
         "se_paper the one the paper's number carries from its own runs (100 in its figures), "
         "estimated from our spread.")
COMPARISON_HEADER = ["cell", "quantity", "paper", "ours", "z", "agrees"]
#: Columns of text (left-aligned); every other column holds numbers (right-aligned).
TEXT_COLUMNS = {"rows": (0,), "comparison": (0, 1, 5), "all_comparison": (0, 1, 2, 6)}
COMPARISON_ID = "paper-numbers"
COMPARISON_TITLE = "The paper's numbers against ours"


def _md_table(header: list[str], rows: list[list[str]], text: tuple[int, ...] = (0,)
              ) -> list[str]:
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    align = [":---" if i in text else "---:" for i in range(len(header))]
    return [line(header), "| " + " | ".join(align) + " |", *(line(r) for r in rows)]


def _contents(sections: list[Section], with_comparison: bool) -> list[tuple[str, str]]:
    """(anchor, title) of every part of the report, in order."""
    entries = [(COMPARISON_ID, COMPARISON_TITLE)] if with_comparison else []
    return entries + [(s.anchor, f"{s.figure}: {s.title}") for s in sections]


def _meta() -> dict:
    return {"provenance": provenance(), "z_agree": Z_AGREE}


def render_markdown(sections: list[Section]) -> str:
    """The report as Markdown, images linked relative to the results folder."""
    meta = _meta()
    lines = ["# Reproduction of the paper's figures", "",
             INTRO.format(z=f"{Z_AGREE:g}").replace("<em>", "*").replace("</em>", "*")
             .replace("<code>", "`").replace("</code>", "`"), ""]
    rows = [[s.figure, *r] for s in sections for r in s.comparison]
    lines += ["## Contents", "", *(f"- [{title}](#{anchor})"
                                   for anchor, title in _contents(sections, bool(rows))), ""]
    if rows:
        lines += [f'<a id="{COMPARISON_ID}"></a>', "", f"## {COMPARISON_TITLE}", "",
                  *_md_table(["figure", *COMPARISON_HEADER], rows,
                             TEXT_COLUMNS["all_comparison"]), ""]
        if any(s.warnings for s in sections):
            lines += [f"{CENSORED_MARK}: a mean over the runs that collapsed, with some runs "
                      f"censored (see the figure's section).", ""]
    for s in sections:
        lines += [f'<a id="{s.anchor}"></a>', "", f"## {s.figure}: {s.title}", "",
                  f"Paper: {s.paper}. Mode: {s.mode}.", ""]
        if s.mode == "quick":
            lines += ["**Quick mode**: fewer runs and generations than the paper; the numbers "
                      "test the pipeline, they are not a reproduction.", ""]
        lines += [f"![{s.figure}]({img})" for img in s.images] + [""]
        lines += [*_md_table(s.header, s.rows, TEXT_COLUMNS["rows"]), ""]
        if s.comparison:
            lines += ["Against the paper:", "", *_md_table(COMPARISON_HEADER, s.comparison,
                                                           TEXT_COLUMNS["comparison"]), ""]
        if s.warnings:
            lines += [f"- **{line}**" for line in s.warnings] + [""]
        lines += [f"- {line}" for line in [*s.verdict, *s.checks]]
        if s.verdict or s.checks:
            lines.append("")
        if s.notes:
            lines += [s.notes, ""]
        if s.seconds:
            lines += [f"Time: {', '.join(f'{k} {v:.1f} s' for k, v in s.seconds.items())}.", ""]
    versions = ", ".join(f"{k} {v}" for k, v in meta["provenance"].items())
    lines += ["---", f"Produced with {versions}.", ""]
    return "\n".join(lines)


def render_html(sections: list[Section], out: str | Path) -> str:
    """The report as one HTML page with every PNG inlined (``out``: the results folder)."""
    env = Environment(loader=PackageLoader("modelcollapse", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    images = {img: base64.b64encode((Path(out) / img).read_bytes()).decode("ascii")
              for s in sections for img in s.images}
    rows = [[s.figure, *r] for s in sections for r in s.comparison]
    return env.get_template("report.html.j2").render(
        sections=sections, images=images, comparison_rows=rows,
        comparison_header=["figure", *COMPARISON_HEADER], meta=_meta(),
        intro=INTRO.format(z=f"{Z_AGREE:g}"), contents=_contents(sections, bool(rows)),
        comparison_id=COMPARISON_ID, comparison_title=COMPARISON_TITLE,
        text_columns=TEXT_COLUMNS, mark=CENSORED_MARK)


def write_report(out: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` over every figure summary in ``out``."""
    out = Path(out)
    sections = build_sections(collect_summaries(out))
    markdown = atomic_write_text(out / "report.md", render_markdown(sections))
    html = atomic_write_text(out / "report.html", render_html(sections, out))
    return markdown, html

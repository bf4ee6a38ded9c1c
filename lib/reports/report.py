"""What a notebook shows its reader: the run's scale in one line, tables with the paper's column beside ours,
the claims with verdict badges, per-seed figures.  The notebooks call these; they display inline in a notebook
kernel (papermill run → report.html) and return None (a cell ending with one shows it once); the pure functions
they use (``run_config``, ``summary_table``, ``table_html``, ``claims_frame``) can be tested anywhere.

    from lib.reports import report as R
    R.show_run_config(prof, dataset="mnist", resolution=16, seeds=[0, 1, 2], in_channels=1)
    R.show_table(df, metrics=["FD_mnistclf", "precision"], paper={"FD_mnistclf": {"ddpm": 17.6, "edge_preserving": 13.06}},
                 paper_label="AFHQ-Cat 128², Inception FID")
    R.show_claims(claim_list)
    run.save_figure(R.per_seed_figure(df, "FD_mnistclf"), "per_seed")

Numbers are written with three significant digits; "mean ± CI" is the mean over seeds and the half-width of its
95 % Student-t confidence interval (no interval for one seed).
"""
from __future__ import annotations

import html
import math
import re
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from lib.reports.claims import t_half_width
from lib.experiment import in_notebook, show_png

LEDGER = "../../index.html#claims"   # from results/<nb>/<folder>/report.html to the ledger of the index
CLAIMS_MD = "../../claims.md"
VERDICT_COLOURS = {"reproduced": "#2e7d32", "not reproduced": "#c0392b", "inconclusive": "#b7791f",
                   "qualitative": "#5b6bbf"}
CSS = """<style>
table.rep{border-collapse:collapse;font-size:.9rem;margin:.4rem 0 1rem 0}
table.rep th,table.rep td{border:1px solid #ddd;padding:.25rem .5rem;vertical-align:top;text-align:left!important}
table.rep td.claim{min-width:16rem;max-width:26rem}table.rep td.paper{min-width:9rem;max-width:16rem}
table.rep td.ours{max-width:18rem;white-space:normal!important}
table.rep th{background:#f3f3f3;max-width:12rem;overflow-wrap:break-word}div.repwrap{overflow-x:auto;max-width:100%}table.rep td.num{text-align:right!important;font-variant-numeric:tabular-nums;white-space:nowrap}
table.rep td.paper,table.rep th.paper{background:#f4f7fb}
table.rep td.detail{font-size:.8rem;color:#555;max-width:28rem}
span.vbadge{display:inline-block;padding:0 .45rem;border-radius:3px;font-size:.8rem;font-weight:600;color:#fff;
 white-space:nowrap}a.vlink{text-decoration:none}
p.runcfg{background:#f7f7f7;border-left:4px solid #5b6bbf;padding:.4rem .7rem;font-size:.92rem}
p.caption{color:#555;font-size:.85rem;margin:.1rem 0}
</style>"""


def _display(obj) -> None:
    if in_notebook():
        from IPython.display import display
        display(obj)


def _html(body: str):
    from IPython.display import HTML
    return HTML(CSS + body)


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


# ----------------------------------------------------------------------------------------------------------
# Numbers

def sig(x: Any, digits: int = 3) -> str:
    """``x`` with ``digits`` significant digits ("—" for None / NaN; integers as they are)."""
    if x is None:
        return "—"
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return "—"
    if v == 0:
        return "0"
    if abs(v) >= 10 ** digits and abs(v) < 1e9:
        return f"{float(f'{v:.{digits}g}'):.0f}"  # 1045.5 -> "1050", not "1.05e+03"
    return f"{v:.{digits}g}"


def paper_num(x: Any) -> str:
    """A paper's number as the paper prints it (13.06, not 13.1)."""
    if x is None:
        return "—"
    if isinstance(x, (list, tuple)):
        return " / ".join(paper_num(v) for v in x)
    try:
        return f"{float(f'{float(x):.4g}'):g}"  # at most 4 significant digits (a derived ratio: 1.009, not 1.00901)
    except (TypeError, ValueError):
        return str(x)


def mean_ci(values: Iterable[float], level: float = 0.95) -> tuple:
    """(mean, half-width of the Student-t confidence interval or None for n < 2, n) of the finite values."""
    v = np.asarray([float(x) for x in values if x is not None], float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None, None, 0
    if v.size < 2:
        return float(v.mean()), None, 1
    return float(v.mean()), t_half_width(float(v.std(ddof=1)), v.size, level), int(v.size)


def format_mean_ci(values: Iterable[float]) -> str:
    m, h, n = mean_ci(values)
    if m is None:
        return "—"
    return f"{sig(m)} ± {sig(h, 2)}" if h is not None else sig(m)


# ----------------------------------------------------------------------------------------------------------
# The run's scale, one line

def unet_params(prof, in_channels: int) -> Optional[int]:
    """Parameter count of the profile's U-Net for ``in_channels`` input channels (None when it cannot be built)."""
    try:
        from lib.unet import UNet
        return sum(p.numel() for p in UNet(prof.unet(in_channels)).parameters())
    except Exception:  # noqa: BLE001 - the count is informative only
        return None


def run_config(prof, dataset: str = "", resolution: Optional[int] = None, seeds: Sequence[int] = (),
               device: Any = None, in_channels: Optional[int] = None, n_eval: Optional[int] = None,
               precision: Optional[str] = None, trained: bool = True, **extra) -> str:
    """One line: profile, data, U-Net (width, levels, parameters), T, steps, batch, seeds, n_eval, device, precision
    and any ``extra`` items (``name=value``) — the configuration as actually run (``trained=False``: no model)."""
    items = [f"profile <b>{_e(prof.name)}</b>"]
    if dataset:
        items.append(_e(dataset) + (f" {resolution}×{resolution}" if resolution else ""))
    if trained:
        n_par = unet_params(prof, in_channels) if in_channels else None
        unet = f"U-Net {prof.unet_channels} ch × {tuple(prof.unet_mult)}"
        if n_par:
            unet += f", {n_par / 1e6:.2f}M params"
        items += [unet, f"T={prof.T}", f"{prof.train_steps} training steps (batch {prof.batch_size})"]
    if seeds:
        items.append(f"seed{'s' if len(seeds) > 1 else ''} {', '.join(str(s) for s in seeds)}")
    if trained:
        items.append(f"n_eval {n_eval if n_eval is not None else prof.n_eval}")
    precision = precision or getattr(prof, "precision", None)
    if precision:
        items.append(f"precision {_e(precision)}")
    if device is not None:
        from lib.experiment import device_name
        try:
            items.append(_e(device_name(device)))
        except Exception:  # noqa: BLE001
            items.append(_e(device))
    items += [f"{_e(k)} {_e(v)}" for k, v in extra.items()]
    return " · ".join(items)


def show_run_config(prof, **kwargs):
    """Display ``run_config`` as the report's first line (what is reproduced at which scale).  Like every
    ``show_*`` it returns None, so that a notebook cell ending with it does not show it twice."""
    _display(_html(f"<p class='runcfg'><b>Run as executed:</b> {run_config(prof, **kwargs)}</p>"))


def show_setup(s, **extra):
    """``show_run_config`` for a study set-up (``lib.studies.setup``): an EPD ``StudySetup`` (its data ``ds``, ``x``)
    or a Cold ``ColdSetup`` (its training data ``train_ds``, ``x_train``)."""
    ds = s.ds if hasattr(s, "ds") else s.train_ds
    info = ds.info() if hasattr(ds, "info") else {}
    x = getattr(s, "x", getattr(s, "x_train", None))
    if getattr(s, "weights", None):
        extra.setdefault("sampling weights", s.weights)
    show_run_config(s.prof, dataset=info.get("name", ""), resolution=info.get("resolution"),
                    seeds=s.seeds, device=s.run.device, in_channels=info.get("channels") or
                    (x.shape[1] if x is not None else None), precision=getattr(s, "precision", None), **extra)


# ----------------------------------------------------------------------------------------------------------
# Tables: ours (mean ± CI over seeds) beside the paper's number

def summary_table(df: pd.DataFrame, metrics: Optional[Sequence[str]] = None, group: Optional[str] = None,
                  paper: Optional[Mapping[str, Mapping[str, Any]]] = None, paper_label: str = "paper") -> pd.DataFrame:
    """One row per ``group`` value (order kept): n seeds, then per metric "ours (mean ± CI)" and, where ``paper``
    has that metric ({metric: {group value: number}}), the paper's number beside it."""
    group = group or next(c for c in ("arm", "method", "process", "setting") if c in df.columns)
    if metrics is None:
        metrics = [c for c in df.select_dtypes("number").columns if c not in ("seed",) and not c.startswith("n_")]
    paper = paper or {}
    rows = []
    for g, sub in df.groupby(group, sort=False):
        row = {group: g, "n": int(len(sub))}
        for m in metrics:
            if m not in sub.columns:
                continue
            row[f"{m} (ours)"] = format_mean_ci(pd.to_numeric(sub[m], errors="coerce"))
            if m in paper:
                # Both papers report Inception FID: beside our offline FD_<extractor> the paper's column is named
                # by its own metric, so a reader never takes it for the paper's value of ours.
                head = "FID_inception (paper)" if m.startswith("FD_") else f"{m} (paper)"
                row[head] = paper_num(paper[m].get(g))
        rows.append(row)
    return pd.DataFrame(rows)


def table_html(table: pd.DataFrame, caption: str = "") -> str:
    def is_paper(c) -> bool:
        return str(c).startswith("paper") or "(paper" in str(c)
    head = "".join(f"<th class='{'paper' if is_paper(c) else ''}'>{_e(c)}</th>" for c in table.columns)
    body = []
    for _, r in table.iterrows():
        cells = []
        for c in table.columns:
            v = r[c]
            text = v if isinstance(v, str) else (paper_num(v) if is_paper(c) and v == v else sig(v))
            num = bool(re.match(r"^[-+−]?[\d.]", text)) and c != table.columns[0]
            cls = " ".join(x for x in ("num" if num else "", "paper" if is_paper(c) else "") if x)
            cells.append(f"<td class='{cls}'>{_e(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<p class='caption'>{_e(caption)}</p>" if caption else ""
    return f"{cap}<div class='repwrap'><table class='rep'><tr>{head}</tr>{''.join(body)}</table></div>"


def show_table(df: pd.DataFrame, metrics: Optional[Sequence[str]] = None, group: Optional[str] = None,
               paper: Optional[Mapping[str, Mapping[str, Any]]] = None, paper_label: str = "paper",
               caption: str = ""):
    """Display ``summary_table`` of a per-seed frame (``paper_label`` says what the paper column is)."""
    table = summary_table(df, metrics, group, paper, paper_label)
    if not caption:
        caption = ("ours: mean ± 95 % CI half-width over seeds (3 significant digits)"
                   + (f"; paper: {paper_label}" if paper else "; the paper prints no number for this table"))
    _display(_html(table_html(table, caption)))


N_COLUMNS = ("n seeds", "training seeds", "n_seeds", "seeds")


def merge_mean_sd(table: pd.DataFrame, n: Optional[int] = None) -> pd.DataFrame:
    """Columns ``<m> mean``/``<m> std``, ``<m>``/``<m> sd`` or ``<m>``/``<m>_std`` as one column ``<m> (mean ± CI)``:
    the 95 % Student-t half-width from the sd and the row's seed count (a column of N_COLUMNS, else ``n``);
    a table without such pairs is returned unchanged."""
    t = table.copy()
    ncol = next((c for c in N_COLUMNS if c in t.columns), None)
    for sd in [c for c in t.columns if isinstance(c, str) and c.endswith((" std", " sd", "_std"))]:
        stem = sd[: -len(sd.split(" ")[-1]) - 1] if not sd.endswith("_std") else sd[:-4]
        base = next((b for b in (f"{stem} mean", stem) if b in t.columns and b != sd), None)
        if base is None:
            continue
        out = []
        for _, r in t.iterrows():
            m, d = r[base], r[sd]
            k = r[ncol] if ncol else n
            try:
                k = int(k)
                half = None if k < 2 or d is None or not np.isfinite(float(d)) else t_half_width(float(d), k)
            except (TypeError, ValueError):
                half = None
            out.append(sig(m) if half is None else f"{sig(m)} ± {sig(half, 2)}")
        pos = list(t.columns).index(base)
        t = t.drop(columns=[base, sd])
        t.insert(pos, f"{stem} (mean ± CI)", out)
    return t


def show_frame(table: pd.DataFrame, caption: str = "", merge_sd: bool = True):
    """Display any small table with 3 significant digits; mean/sd column pairs become "mean ± 95 % CI"
    (``merge_mean_sd``)."""
    if merge_sd:
        merged = merge_mean_sd(table)
        if list(merged.columns) != list(table.columns):
            caption = (caption + "; " if caption else "") + "mean ± 95 % CI half-width over seeds"
        table = merged
    plain = isinstance(table.index, pd.RangeIndex)
    _display(_html(table_html(table.reset_index(drop=True) if plain else table.reset_index(), caption)))


# ----------------------------------------------------------------------------------------------------------
# Claims

def badge(verdict: str, href: Optional[str] = LEDGER) -> str:
    colour = VERDICT_COLOURS.get(str(verdict), "#777")
    b = f"<span class='vbadge' style='background:{colour}'>{_e(verdict)}</span>"
    return f"<a class='vlink' href='{_e(href)}' title='the claims ledger'>{b}</a>" if href else b


def _ours(ours: Any) -> str:
    if isinstance(ours, Mapping) and "values" in ours and isinstance(ours["values"], list):
        return format_mean_ci(ours["values"]) + f" (n={len(ours['values'])})"
    if isinstance(ours, Mapping):
        parts = []
        for k, v in ours.items():
            if isinstance(v, Mapping) and isinstance(v.get("values"), list):
                parts.append(f"{k}: {format_mean_ci(v['values'])}")
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                parts.append(f"{k}: {sig(v)}")
            elif isinstance(v, list) and v and all(isinstance(x, (int, float)) for x in v):
                parts.append(f"{k}: {format_mean_ci(v)}")
            elif isinstance(v, Mapping):
                parts.append(f"{k}: " + ", ".join(f"{a} {format_mean_ci(b) if isinstance(b, list) else sig(b)}"
                                                  for a, b in v.items()))
        return "; ".join(parts) or "—"
    if isinstance(ours, list):
        return format_mean_ci(ours)
    return sig(ours) if ours is not None else "—"


def _paper(c: Mapping) -> str:
    pv = c.get("paper_value")
    if isinstance(pv, Mapping):
        text = ", ".join(f"{k} {paper_num(v)}" for k, v in pv.items())
    elif pv is None:
        text = "—"
    else:
        text = paper_num(pv) + (f" ± {paper_num(c['tolerance'])}" if c.get("tolerance") is not None else "")
    if c.get("paper_metric") and text != "—":
        text += f" ({c['paper_metric']})"
    return text


def claims_frame(claims: Sequence[Mapping]) -> pd.DataFrame:
    return pd.DataFrame([{"id": c.get("id"), "claim": c.get("claim"), "metric": c.get("metric"),
                          "ours": _ours(c.get("ours")), "paper": _paper(c), "verdict": c.get("verdict"),
                          "detail": c.get("detail")} for c in claims])


def show_claims(claims: Sequence[Mapping], ledger: str = LEDGER):
    """The claims as a table: id, claim, metric, ours (mean ± CI), the paper's number, a verdict badge linking to
    the ledger, and the verdict's reason (``claims_frame`` is the same table as a DataFrame)."""
    frame = claims_frame(claims)
    rows = []
    for c, (_, r) in zip(claims, frame.iterrows()):
        fig = f"<br><span class='caption'>figure: {_e(c['figure'])}</span>" if c.get("figure") else ""
        rows.append(f"<tr><td>{_e(r['id'])}</td><td class='claim'>{_e(r['claim'])}{fig}</td><td>{_e(r['metric'])}</td>"
                    f"<td class='ours'>{_e(r['ours'])}</td><td class='paper'>{_e(r['paper'])}</td>"
                    f"<td>{badge(r['verdict'], ledger)}</td><td class='detail'>{_e(r['detail'])}</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("id", "claim", "metric", "ours (mean ± 95 % CI)", "paper", "verdict",
                                            "why"))
    counts = frame["verdict"].value_counts().to_dict() if len(frame) else {}
    summary = " ".join(f"{badge(k, None)} {v}" for k, v in counts.items())
    body = (f"<p class='caption'>{len(frame)} ledger entr{'y' if len(frame) == 1 else 'ies'}: {summary} — "
            f"verdict rule of evaluation.md (paired one-sided t-test over training seeds, Holm within a claim, minimum effect, n ≥ 3; “not testable at this scale” when an arm fails the quality gate); all claims of both papers: "
            f"<a href='{_e(ledger)}'>the ledger</a> (<a href='{_e(CLAIMS_MD)}'>claims.md</a>)</p>"
            f"<table class='rep'><tr>{head}</tr>{''.join(rows)}</table>")
    if not len(frame):
        body = "<p class='caption'>This notebook tests no claim of the papers.</p>"
    _display(_html(body))


# ----------------------------------------------------------------------------------------------------------
# Figures

def per_seed_figure(df: pd.DataFrame, metric: str, group: Optional[str] = None, title: str = ""):
    """Every seed as a dot and the mean with its 95 % CI per arm (seaborn strip + point plot)."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    group = group or next(c for c in ("arm", "method", "process", "setting") if c in df.columns)
    d = df[[group, metric]].dropna()
    order = list(dict.fromkeys(d[group]))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(order) + 1.5), 3.2))
    sns.stripplot(data=d, x=group, y=metric, order=order, ax=ax, color="0.45", size=5, jitter=0.12, zorder=1)
    sns.pointplot(data=d, x=group, y=metric, order=order, ax=ax, errorbar=("ci", 95), linestyle="none",
                  color="#c0392b", markers="D", capsize=0.15, zorder=2)
    ax.set_xlabel("")
    ax.set_ylabel(metric)
    ax.tick_params(axis="x", labelrotation=20 if len(order) > 4 else 0)
    n = d.groupby(group).size()
    ax.set_title(title or f"{metric} per seed (dots) and mean ± 95 % CI (n={int(n.min())}"
                 + (f"–{int(n.max())}" if n.max() != n.min() else "") + " seeds)", fontsize=10)
    fig.tight_layout()
    return fig


def show_figure(run, name: str) -> None:
    """Display a figure the run already saved (``<name>.png``; e.g. one saved with ``show=False`` to be shown
    further down the report); nothing when the file does not exist."""
    p = run.path(f"{name}.png") if not str(name).endswith(".png") else run.path(name)
    if p.exists():
        show_png(p)


def show_figures(run, names: Sequence[str]) -> None:
    for n in names:
        show_figure(run, n)

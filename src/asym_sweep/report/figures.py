"""Plotly figures: the thesis' per-architecture figures and the grid views it lacks.

- `accuracy_curves`: validation and test accuracy per epoch, one line per
  method with its 95% CI band (thesis Figures 9.10-9.83).
- `backward_bars`: backward seconds split into selection and products, and the
  ratio to dropout beside the thesis' ratio (Figures 9.12-9.84).
- `grid_heatmap`: a metric over depth x width, one panel per method; missing
  cells stay blank and say "missing".
- `thesis_scatter`: our mean accuracy against the thesis' with the diagonal.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from asym_sweep.grid import ThesisGrid

PALETTE = qualitative.D3 + qualitative.Dark24
# The backward split (selection, products): greys, which no method gets from PALETTE.
SELECTION_COLOR, PRODUCTS_COLOR = "#3d3d3d", "#b5b5b5"


def method_colors(tags, grid: ThesisGrid) -> dict[str, str]:
    return {tag: PALETTE[i % len(PALETTE)] for i, tag in enumerate(grid.order(tags))}


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def accuracy_curves(curves: pd.DataFrame, colors: dict[str, str], title: str, grid: ThesisGrid) -> go.Figure:
    """``curves``: rows of `aggregate.epoch_curves` for one (dataset, arch)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Validation accuracy", "Test accuracy"), shared_yaxes=True)
    for col, split in enumerate(("val_acc", "test_acc"), start=1):
        for tag in grid.order(curves["method_tag"]):
            c = curves[curves["method_tag"] == tag].sort_values("epoch")
            color = colors[tag]
            band = c.dropna(subset=[f"{split}_lo", f"{split}_hi"])
            if not band.empty:
                fig.add_trace(
                    go.Scatter(
                        x=band["epoch"],
                        y=band[f"{split}_hi"],
                        mode="lines",
                        line={"width": 0},
                        showlegend=False,
                        hoverinfo="skip",
                        legendgroup=tag,
                    ),
                    row=1,
                    col=col,
                )
                fig.add_trace(
                    go.Scatter(
                        x=band["epoch"],
                        y=band[f"{split}_lo"],
                        mode="lines",
                        line={"width": 0},
                        fill="tonexty",
                        fillcolor=_rgba(color, 0.18),
                        showlegend=False,
                        hoverinfo="skip",
                        legendgroup=tag,
                    ),
                    row=1,
                    col=col,
                )
            fig.add_trace(
                go.Scatter(
                    x=c["epoch"],
                    y=c[f"{split}_mean"],
                    mode="lines+markers",
                    name=grid.label(tag),
                    line={"color": color},
                    legendgroup=tag,
                    showlegend=col == 1,
                    customdata=c["n"],
                    hovertemplate="epoch %{x}: %{y:.4f} (n=%{customdata})",
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="accuracy", col=1)
    fig.update_layout(title=title, height=420, margin={"t": 70, "b": 40}, legend={"orientation": "h", "y": -0.2})
    return fig


def backward_bars(times: pd.DataFrame, colors: dict[str, str], title: str, grid: ThesisGrid) -> go.Figure:
    """``times``: rows of `thesis.time_comparison` for one (dataset, arch)."""
    rows = times.set_index("method_tag").reindex(grid.order(times["method_tag"]))
    labels = [grid.label(t) for t in rows.index]
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            "Backward seconds per run (ours; bars: mean, whiskers: min–max over seeds)",
            "Backward time / dropout's",
        ),
    )
    # The split is drawn in greys, apart from the methods' colours of the ratio panel.
    fig.add_trace(
        go.Bar(x=labels, y=rows["select_s_mean"], name="selection (top-k)", marker_color=SELECTION_COLOR), row=1, col=1
    )
    fig.add_trace(
        go.Bar(
            x=labels,
            y=rows["product_s_mean"],
            name="products",
            marker_color=PRODUCTS_COLOR,
            error_y={
                "type": "data",
                "symmetric": False,
                "visible": True,
                "array": (rows["backward_s_max"] - rows["backward_s_mean"]).fillna(0),
                "arrayminus": (rows["backward_s_mean"] - rows["backward_s_min"]).fillna(0),
            },
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Bar(x=labels, y=rows["backward_ratio"], name="ours", marker_color=[colors[t] for t in rows.index]),
        row=1,
        col=2,
    )
    fig.add_trace(
        go.Scatter(
            x=labels,
            y=rows["thesis_ratio"],
            name="thesis",
            mode="markers",
            marker={"symbol": "diamond", "size": 12, "color": "black"},
        ),
        row=1,
        col=2,
    )
    fig.add_trace(
        go.Scatter(
            x=labels,
            y=rows["flop_ratio_mean"],
            name="multiply-add ratio",
            mode="markers",
            marker={"symbol": "line-ew-open", "size": 24, "color": "grey"},
        ),
        row=1,
        col=2,
    )
    fig.update_layout(barmode="stack", title=title, height=420, margin={"t": 70, "b": 40})
    return fig


def grid_heatmap(
    summary: pd.DataFrame, value: str, title: str, grid: ThesisGrid, fmt: str = ".3f", colorscale: str = "Viridis"
) -> go.Figure:
    """One panel per method over depth (rows) x width (columns) of ``summary[value]`` for one dataset."""
    tags = grid.order(summary["method_tag"])
    depths = sorted(summary["depth"].dropna().astype(int).unique())
    widths = sorted(summary["width"].dropna().astype(int).unique())
    cols = min(len(tags), 4) or 1
    nrows = max(math.ceil(len(tags) / cols), 1)
    # Plotly refuses a vertical spacing above 1 / (rows - 1): a runs root with the readings panel
    # and other rules holds dozens of method tags (10 rows met), so the gap shrinks with the rows.
    spacing = 0.18 if nrows < 3 else 0.5 / (nrows - 1)
    fig = make_subplots(
        rows=nrows,
        cols=cols,
        subplot_titles=[grid.label(t) for t in tags],
        horizontal_spacing=0.06,
        vertical_spacing=spacing,
    )
    finite = summary[value].replace([float("inf"), float("-inf")], float("nan")).dropna()
    zmin, zmax = (finite.min(), finite.max()) if not finite.empty else (0, 1)
    for i, tag in enumerate(tags):
        sub = summary[summary["method_tag"] == tag]
        grid = sub.pivot_table(index="depth", columns="width", values=value).reindex(index=depths, columns=widths)
        text = [[("missing" if pd.isna(v) else format(v, fmt)) for v in row] for row in grid.to_numpy()]
        fig.add_trace(
            go.Heatmap(
                z=grid.to_numpy(),
                x=[str(w) for w in widths],
                y=[f"l{d}" for d in depths],
                text=text,
                texttemplate="%{text}",
                zmin=zmin,
                zmax=zmax,
                colorscale=colorscale,
                showscale=i == 0,
                hovertemplate="depth %{y}, width %{x}: %{text}<extra></extra>",
            ),
            row=i // cols + 1,
            col=i % cols + 1,
        )
    fig.update_xaxes(title_text="width", type="category")
    fig.update_yaxes(title_text="depth", type="category")
    fig.update_layout(title=title, height=320 * nrows + 60, margin={"t": 80})
    return fig


def thesis_scatter(comparison: pd.DataFrame, colors: dict[str, str], title: str, grid: ThesisGrid) -> go.Figure:
    """Our mean accuracy (y, with CI) against the thesis' (x), validation and test; the diagonal is agreement."""
    data = comparison.dropna(subset=["val_acc_mean", "thesis_val"])
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Validation accuracy", "Test accuracy"))
    values = pd.concat([data[c] for c in ("val_acc_mean", "thesis_val", "test_acc_mean", "thesis_test")]).dropna()
    lo, hi = (values.min() - 0.01, values.max() + 0.01) if not values.empty else (0.0, 1.0)
    for col, split in enumerate(("val", "test"), start=1):
        fig.add_trace(
            go.Scatter(
                x=[lo, hi],
                y=[lo, hi],
                mode="lines",
                line={"dash": "dot", "color": "grey"},
                name="ours = thesis",
                showlegend=col == 1,
            ),
            row=1,
            col=col,
        )
        for tag in grid.order(data["method_tag"]):
            d = data[data["method_tag"] == tag]
            fig.add_trace(
                go.Scatter(
                    x=d[f"thesis_{split}"],
                    y=d[f"{split}_acc_mean"],
                    mode="markers",
                    name=grid.label(tag),
                    marker={"color": colors[tag], "size": 8},
                    legendgroup=tag,
                    showlegend=col == 1,
                    error_y={
                        "type": "data",
                        "array": (d[f"{split}_acc_hi"] - d[f"{split}_acc_mean"]).fillna(0),
                        "visible": True,
                        "thickness": 1,
                    },
                    text=d["dataset"] + " " + d["arch"],
                    hovertemplate="%{text}: thesis %{x:.4f}, ours %{y:.4f}<extra></extra>",
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text="thesis", range=[lo, hi], row=1, col=col)
        fig.update_yaxes(title_text="ours", range=[lo, hi], row=1, col=col)
    fig.update_layout(title=title, height=460, margin={"t": 70})
    return fig


# The rules page's colours by source (`report.rules.SOURCES`), symbols for the thesis' methods.
SOURCE_COLORS = {"Srivastava 2022": PALETTE[0], "meProp variants": PALETTE[1], "SWAT": PALETTE[2], "VR-PGE": PALETTE[3]}


def rules_tradeoff(panel: pd.DataFrame, title: str, costs: dict[str, str]) -> go.Figure:
    """Test accuracy over the ranked cells (mean, 95% CI) against each cost in ``costs`` (log x), one
    marker per method coloured by source, the thesis' methods as diamonds, the Pareto front a line."""
    fig = make_subplots(rows=1, cols=len(costs), subplot_titles=list(costs.values()), shared_yaxes=True)
    shown: set[str] = set()
    for col, cost in enumerate(costs, start=1):
        d = panel.dropna(subset=[cost, "test_mean"])
        for source, g in d.groupby("source", sort=False):
            color = SOURCE_COLORS.get(source, PALETTE[len(SOURCE_COLORS)])
            fig.add_trace(
                go.Scatter(
                    x=g[cost],
                    y=g["test_mean"],
                    mode="markers+text",
                    name=source,
                    legendgroup=source,
                    showlegend=source not in shown,
                    text=g["name"],
                    textposition="top center",
                    textfont={"size": 9},
                    marker={
                        "color": color,
                        "size": 9,
                        "symbol": ["diamond" if t else "circle" for t in g["thesis_method"]],
                    },
                    error_y={
                        "type": "data",
                        "array": (g["test_hi"] - g["test_mean"]).fillna(0),
                        "visible": True,
                        "thickness": 1,
                    },
                    hovertemplate="%{text}: %{x:.3f}, test %{y:.4f}<extra></extra>",
                ),
                row=1,
                col=col,
            )
            shown.add(source)
        on = d[d[f"on_{cost.split('_')[0]}_front"]].sort_values(cost)
        fig.add_trace(
            go.Scatter(
                x=on[cost],
                y=on["test_mean"],
                mode="lines",
                line={"color": "grey", "dash": "dot"},
                name="Pareto front",
                legendgroup="front",
                showlegend=col == 1,
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(type="log", title_text=costs[cost], row=1, col=col)
    fig.update_yaxes(title_text="test accuracy, mean over the cells", row=1, col=1)
    fig.update_layout(title=title, height=520, margin={"t": 80})
    return fig

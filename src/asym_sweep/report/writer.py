"""Writes the report's files (data, tables in every format, figures) under its staging folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from asym_sweep.report import tables
from asym_sweep.report.page import Section


class Writer:
    """Writes files under the staging folder and keeps the figures for static export."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: list[Path] = []
        self.figures: dict[str, go.Figure] = {}

    def data(self, name: str, frame: pd.DataFrame, parquet: bool = False) -> list[tuple[str, str]]:
        path = self.root / "data" / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)
        links = [(f"{name}.csv", f"data/{name}.csv")]
        if parquet:
            frame.to_parquet(path.with_suffix(".parquet"), index=False)
            links.append((f"{name}.parquet", f"data/{name}.parquet"))
        self.files += [self.root / href for _, href in links]
        return links

    def table(self, section: Section, table: pd.DataFrame, name: str, title: str) -> None:
        paths = tables.write_all_formats(table, self.root / "tables" / name, title)
        self.files += paths
        section.add_html(tables.to_html(table, title))
        section.add_links("this table as", [(p.suffix[1:], str(p.relative_to(self.root))) for p in paths])

    def figure(self, section: Section, fig: go.Figure, name: str) -> None:
        path = self.root / "figures" / f"{name}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.write_html(str(path), include_plotlyjs="directory")
        self.files.append(path)
        self.figures[name] = fig
        section.add_figure(fig, f"fig-{name}")
        section.add_links("figure", [("standalone page", f"figures/{name}.html")])

"""Charts drawn on the server as plain data the page templates turn into SVG (no script, no library):
bars, a line of points, and the process graph coloured by time spent against expectation."""

from __future__ import annotations

from dataclasses import dataclass

from api.ui.dag import Drawing, draw
from core.process.analytics import StateFigures
from core.process.contracts import StateNode

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 640, 220, 44, 36, 12


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # under the bar
    value: str  # the bar's figure (its title)


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str
    value: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    points: list[Point]
    y_max: str
    empty: bool


def bars(values: list[tuple[str, float, str]]) -> Chart:
    """One bar per (label, value, shown value), scaled to the largest."""
    top = max((v for _, v, _ in values), default=0.0) or 1.0
    plot_w, plot_h = WIDTH - PAD_LEFT - 8, HEIGHT - PAD_BOTTOM - PAD_TOP
    step = plot_w / max(len(values), 1)
    drawn = []
    for index, (label, value, shown) in enumerate(values):
        height = plot_h * value / top
        drawn.append(
            Bar(
                x=round(PAD_LEFT + index * step + step * 0.1, 1),
                y=round(PAD_TOP + plot_h - height, 1),
                width=round(step * 0.8, 1),
                height=round(height, 1),
                label=label,
                value=shown,
            )
        )
    return Chart(WIDTH, HEIGHT, drawn, [], _short(top), not values)


def line(values: list[tuple[str, float, str]], top: float = 100.0) -> Chart:
    """Points (label, value 0..top, shown value) left to right."""
    plot_w, plot_h = WIDTH - PAD_LEFT - 8, HEIGHT - PAD_BOTTOM - PAD_TOP
    step = plot_w / max(len(values) - 1, 1)
    points = [
        Point(
            x=round(PAD_LEFT + index * step, 1),
            y=round(PAD_TOP + plot_h - plot_h * value / top, 1),
            label=label,
            value=shown,
        )
        for index, (label, value, shown) in enumerate(values)
    ]
    return Chart(WIDTH, HEIGHT, [], points, _short(top), not values)


def _short(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.2g}"


def heat(ratio: float | None) -> str:
    """A state's colour by mean time spent over its expected time."""
    if ratio is None:
        return "#eef1f5"
    if ratio <= 1:
        return "#d1fadf"  # within expectation
    if ratio <= 1.5:
        return "#fef0c7"  # up to half again as long
    return "#fee4e2"  # more


@dataclass(frozen=True)
class HeatBox:
    id: int
    name: str
    x: int
    y: int
    fill: str
    figure: str  # "2.4 d / 2 d" or the entries


def heat_map(states: list[StateNode], figures: list[StateFigures]) -> tuple[Drawing, list[HeatBox]]:
    drawing = draw(states, current=-1, taken=set(), allowed=set(), path=set())
    by_state = {f.state_id: f for f in figures}
    boxes = []
    for box in drawing.boxes:
        f = by_state.get(box.id)
        if f is None:
            fill, figure = "#ffffff", "no entries"
        elif f.terminal:
            fill, figure = "#eef1f5", f"{f.entries:,} reached"
        else:
            mean = (f.time_spent_seconds.average or 0) / 86400
            expected = f"{f.expected_days:g} d" if f.expected_days else "no expectation"
            fill, figure = heat(f.ratio), f"{mean:.1f} d / {expected}"
        boxes.append(HeatBox(box.id, box.name, box.x, box.y, fill, figure))
    return drawing, boxes

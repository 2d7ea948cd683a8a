"""The session benchmark's sweep report: ``docs/performance.md`` and its plot, ``docs/performance.png``.

``bench/sessions.py --sweep`` runs the grid and hands this module every point's ``SESSIONS-RESULT``;
the plot shows the desk's and the bare client's p99 against the number of agents (at one call rate) and
against the call rate (at one number of agents), one line per vendor and worker count. Needs matplotlib
(the project's ``bench`` extra).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

from matplotlib import pyplot  # noqa: E402 (after choosing the backend)

MARKDOWN = "performance.md"
WIDTH = 100  # the page's prose lines
IMAGE = "performance.png"
COLOURS = {1: "tab:blue", 2: "tab:orange"}
MARKERS = {"genesys": "o", "huawei": "s"}
AIMS = """\
The aims (issue 11), ratios measured in one run on the 2-core machine:

- 2,000 agents at 100 calls/s: desk p50 within 1.5x and p99 within 2x of the bare client's; 0 pushes
  lost; the achieved rate within 10 % of the asked rate.
- 5,000 agents across two workers: the same ratios at 50 calls/s; every session connected and resynced
  within 30 s of start.
- Agent action: desk within 1.5x of the direct request at p50.
- Page render with five live calls: under 15 ms p50."""


def vendor_rows(results: Iterable[dict[str, Any]]) -> list[tuple[dict[str, Any], str, dict[str, Any]]]:
    """(point, vendor, that vendor's figures) for every vendor of every point that ran, by vendor,
    worker count, agents and rate."""
    rows = [
        (point, vendor, figures)
        for point in results
        if point.get("ok")
        for vendor, figures in point["vendors"].items()
    ]
    return sorted(rows, key=lambda row: (row[1], row[0]["workers"], row[0]["agents"], row[0]["rate"]))


def _series(
    rows: list[tuple[dict[str, Any], str, dict[str, Any]]], axis: str, keep: dict[str, Any]
) -> dict[tuple[str, int], list[tuple[float, float, float]]]:
    """(vendor, workers) -> sorted (x, desk p99, bare p99), over the points matching ``keep``."""
    lines: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    for point, vendor, figures in rows:
        if any(point[name] != value for name, value in keep.items()):
            continue
        if not figures.get("desk_ms") or not figures.get("bare_ms"):
            continue
        line = lines.setdefault((vendor, point["workers"]), [])
        line.append((float(point[axis]), figures["desk_ms"][1], figures["bare_ms"][1]))
    return {key: sorted(values) for key, values in lines.items()}


def plot(results: list[dict[str, Any]], path: Path, *, sweep_rate: float, sweep_rate_agents: int) -> None:
    """Two panels, p99 on a log scale: against agents at ``sweep_rate``, and against the call rate at
    ``sweep_rate_agents``; the desk solid, the bare client dashed, one colour per worker count."""
    rows = vendor_rows(results)
    figure, (by_agents, by_rate) = pyplot.subplots(1, 2, figsize=(12, 4.8))
    panels = (
        (by_agents, "agents", {"rate": sweep_rate}, f"p99 against agents, {sweep_rate:g} calls/s"),
        (
            by_rate,
            "rate",
            {"agents": sweep_rate_agents},
            f"p99 against call rate, {sweep_rate_agents:,} agents",
        ),
    )
    for axes, axis, keep, title in panels:
        ticks: set[float] = set()
        for (vendor, workers), points in sorted(_series(rows, axis, keep).items()):
            xs = [x for x, _, _ in points]
            ticks.update(xs)
            style = {"color": COLOURS.get(workers, "tab:grey"), "marker": MARKERS.get(vendor, "^")}
            label = f"{vendor}, {workers} worker{'s' if workers > 1 else ''}"
            axes.plot(xs, [desk for _, desk, _ in points], linestyle="-", label=f"desk, {label}", **style)
            axes.plot(xs, [bare for _, _, bare in points], linestyle="--", label=f"bare, {label}", **style)
        axes.set_title(title)
        axes.set_xlabel("agents" if axis == "agents" else "calls per second asked")
        axes.set_ylabel("p99, ms from the control POST")
        axes.set_yscale("log")
        if ticks and max(ticks) >= 4 * min(ticks):  # 500 to 5,000 agents: evenly spaced on a log scale
            axes.set_xscale("log")
        if ticks:
            axes.set_xticks(sorted(ticks), [f"{tick:,g}" for tick in sorted(ticks)])
            axes.minorticks_off()
        axes.grid(True, which="both", alpha=0.3)
        if axes.lines:
            axes.legend(fontsize="small")
        else:
            axes.text(0.5, 0.5, "no point ran", ha="center", va="center", transform=axes.transAxes)
    figure.suptitle("Ringing card on the desk against a bare Voice API client, same switch, same run")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


def _pair(pair: list[float] | None, digits: int = 0) -> str:
    return "-" if not pair else f"{pair[0]:,.{digits}f} / {pair[1]:,.{digits}f}"


def _ratio(pair: list[float | None] | None) -> str:
    if not pair or pair[0] is None or pair[1] is None:
        return "-"
    return f"{pair[0]:.2f}x / {pair[1]:.2f}x"


def _bring_up(point: dict[str, Any]) -> str:
    serving = f" ({point['workers_serving_s']:.1f})" if "workers_serving_s" in point else ""
    if point.get("bring_up_s") is None:
        return f"not all up ({point.get('bring_up_missing', '?')} pages){serving}"
    return f"{point['bring_up_s']:.1f}{serving}"


def _one(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _takeover(point: dict[str, Any]) -> str:
    if not point.get("takeover_sessions"):
        return "-"
    seconds = point.get("takeover_s")
    done = "not all back" if seconds is None else f"{seconds:.1f}"
    return f"{done} ({point['takeover_sessions']:,}, {point['lease_s']:g})"


def tables(results: list[dict[str, Any]]) -> list[str]:
    """The latency table of the issue, then the click path and the page render, then failed points."""
    lines = [
        "| vendor | agents | workers / daphnes | calls/s asked / achieved | desk p50 / p99 ms "
        "| bare p50 / p99 ms | ratio p50 / p99 | bring-up (workers serving) s "
        "| worker KiB/session | daphne KiB/socket "
        "| pushes lost |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    rows = vendor_rows(results)
    for point, vendor, figures in rows:
        lines.append(
            f"| {vendor} | {point['agents']:,} | {point['workers']} / {point['daphnes']} "
            f"| {point['rate']:g} / {point['achieved_rate']:g} | {_pair(figures['desk_ms'])} "
            f"| {_pair(figures['bare_ms'])} | {_ratio(figures['ratio'])} | {_bring_up(point)} "
            f"| {point['worker_kib_per_session']:,} | {point['daphne_kib_per_socket']:,} "
            f"| {point['pushes_lost']} |"
        )
    lines += [
        "",
        *textwrap.wrap(
            "The click path (Hold and Retrieve on an answered call: the desk's `POST /calls/<id>/` against "
            "the same Voice API request sent with httpx) and the desk page's render (`GET /` with five live "
            "calls):",
            WIDTH,
        ),
        "",
        "| vendor | agents | workers | desk action p50 / p99 ms | direct p50 / p99 ms | ratio p50 / p99 "
        "| render p50 / p99 ms |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for point, vendor, figures in rows:
        lines.append(
            f"| {vendor} | {point['agents']:,} | {point['workers']} | {_pair(figures['click_desk_ms'], 1)} "
            f"| {_pair(figures['click_direct_ms'], 1)} | {_ratio(figures['click_ratio'])} "
            f"| {_pair(figures['render_ms'], 1)} |"
        )
    lines += [
        "",
        *textwrap.wrap(
            "The bring-up (every worker stopped and started again: until every page has its agent's state "
            "again) with the workers' CPU per session start, and, with two workers, the takeover (the worker "
            "with the most sessions killed: until the other has sent every one of its agents' pages their "
            "state again, the lease running out first):",
            WIDTH,
        ),
        "",
        "| agents | workers / daphnes | bring-up (workers serving) s | worker CPU ms per session start "
        "| takeover s (sessions, lease s) |",
        "|--:|--:|--:|--:|--:|",
    ]
    for point in results:
        if point.get("ok"):
            lines.append(
                f"| {point['agents']:,} | {point['workers']} / {point['daphnes']} | {_bring_up(point)} "
                f"| {_one(point.get('worker_ms_per_start'))} | {_takeover(point)} |"
            )
    stopped = [
        f"- {vendor}, {point['agents']:,} agents, {point['workers']} worker(s), {what}: {error[:300]}"
        for point, vendor, figures in rows
        for what, error in (
            ("click path", figures.get("click_error")),
            ("render", figures.get("render_error")),
        )
        if error
    ]
    if stopped:
        lines += ["", "Measurements that stopped early (their figures are over what ran):", "", *stopped]
    failed = [point for point in results if not point.get("ok")]
    if failed:
        lines += ["", "Points that did not run to the end:", ""]
        lines += [
            f"- {point['agents']:,} agents, {point['rate']:g} calls/s, {point['workers']} worker(s): "
            f"{str(point.get('error') or 'no result').splitlines()[0][:300]}"
            for point in failed
        ]
    return lines


def write_report(
    results: list[dict[str, Any]],
    out: Path,
    *,
    command: str,
    machine: dict[str, str],
    generated: str,
    sweep_rate: float,
    sweep_rate_agents: int,
) -> tuple[Path, Path]:
    """Writes the plot and the Markdown page into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    markdown, image = out / MARKDOWN, out / IMAGE
    plot(results, image, sweep_rate=sweep_rate, sweep_rate_agents=sweep_rate_agents)
    commands = [f"    {point['command']}" for point in results if point.get("command")]
    intro = (
        f"Written by `bench/sessions.py --sweep` on {generated}. The production shape on loopback: a "
        "standalone `voicesim`, daphne, `manage.py runworker voice-sessions`, PostgreSQL and Redis, each "
        "its own process (bench/README.md says what each figure is). Latency runs from just before the "
        "control API's POST that places a call to the Ringing card on the agent's desktop WebSocket, and "
        "to the Ringing event on a bare client on the same switch in the same run: on Genesys a bare "
        "CometD client beside the desk on the same agents and calls; on Huawei, where an agent has one "
        "session only, a bare poller on agents of its own."
    )
    lines = [
        "# Performance: the desk against a bare Voice API client",
        "",
        *textwrap.wrap(intro, WIDTH),
        "",
        "The command:",
        "",
        f"    {command}",
        "",
        *textwrap.wrap(
            f"The machine: {machine['nproc']} CPUs (`nproc`), {machine['memory']} of memory, "
            f"{machine['cpu']}; {machine['system']}, Python {machine['python']}.",
            WIDTH,
        ),
        "",
        f"![Desk and bare p99 against agents and against call rate]({IMAGE})",
        "",
        *tables(results),
        "",
        AIMS,
        "",
        "Each point's own command:",
        "",
        *commands,
        "",
    ]
    markdown.write_text("\n".join(lines))
    return markdown, image

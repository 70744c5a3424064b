"""A ``gimm-bench/1`` document as a readable table, a JSON file and a PNG (per-stage latency, fps, memory)."""

from pathlib import Path

from ..core.files import atomic_write, write_json
from ..core.stages import STAGES

__all__ = ["format_table", "write_json", "write_plot"]


def format_table(doc: dict) -> str:
    """Readable summary: one line per row, then what was skipped and why, then the notes."""
    c, env = doc["config"], doc["environment"]
    where = env["gpu"] or env["cpu"] or "cpu"
    rows = doc["rows"]
    size = f"{c['width']}x{c['height']}"
    lines = [
        f"gimm-bench: GIMM-VFI-{c['variant']} at {size}{'' if c['resolution'] == size else ' = ' + c['resolution']}"
        f", ds_scale {c['ds_scale']}, factor {c['factor']} ({c['factor'] - 1} new frames per pair), {c['pairs']} timed "
        f"pairs after {c['warmup']} warm-up pair(s), {c['device']} ({where})",
        f"weights: {rows[0]['weights'] if rows else '?'}",
        "",
    ]
    head = (
        "row",
        "pair ms mean",
        "median",
        "p90",
        "p99",
        "min",
        "max",
        "frame ms",
        *(f"{s} ms" for s in STAGES),
        "fps",
        "speed-up",
        "PSNR dB",
        "max |d|",
        "dev MiB",
        "host MiB",
    )
    table = [head]
    for r in rows:
        pair = r["latency_ms"]["pair"]
        acc = r["accuracy"]
        table.append(
            (
                r["name"] + (" (1 t/call)" if r["mode"] == "official-way" else ""),
                *(_ms(pair[k]) for k in ("mean", "median", "p90", "p99", "min", "max")),
                _ms(r["latency_ms"]["frame"]["mean"]),
                *(_ms(r["stage_ms"][s]["mean"]) for s in STAGES),
                f"{r['fps']:.3g}",
                f"{r['speedup']:.2f}x",
                "ref"
                if r["mode"] == "official-way"
                else ("inf" if acc["psnr_db"] is None else f"{acc['psnr_db']:.1f}"),
                "ref" if r["mode"] == "official-way" else f"{acc['max_abs']:.1e}",
                _mib(r["peak_device_mib"]),
                _mib(r["peak_host_rss_mib"]),
            )
        )
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    for row in table:
        cells = [str(row[0]).ljust(widths[0])] + [str(v).rjust(w) for v, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells))
    for s in doc["skipped"]:
        lines.append(f"skipped {s['name']}: {s['reason']}")
    lines += [f"note: {n}" for n in doc["notes"]]
    return "\n".join(lines)


def _ms(v: float) -> str:
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _mib(v) -> str:
    return "-" if v is None else f"{v:.0f}"


def write_plot(doc: dict, path) -> None:
    """Three panels: mean latency per pair split by stage, fps, peak memory (device and host)."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or state is touched

    rows = doc["rows"]
    names = [r["name"] for r in rows]
    x = range(len(rows))
    fig = Figure(figsize=(max(8, 1.5 * len(rows) + 6), 4.5), layout="constrained")
    lat, fps, mem = fig.subplots(1, 3)
    bottom = [0.0] * len(rows)
    for stage in STAGES:
        values = [r["stage_ms"][stage]["mean"] for r in rows]
        lat.bar(x, values, bottom=bottom, label=stage)
        bottom = [b + v for b, v in zip(bottom, values)]
    lat.plot(x, [r["latency_ms"]["pair"]["mean"] for r in rows], "k_", markersize=20, label="pair (total)")
    lat.set(title="latency per pair (mean)", ylabel="ms")
    lat.legend(fontsize="small")
    fps.bar(x, [r["fps"] for r in rows], color="tab:green")
    fps.set(title="new frames per second", ylabel="frames/s")
    series = [
        (label, [r[key] or 0.0 for r in rows])
        for label, key in (("device (peak)", "peak_device_mib"), ("host RSS (peak)", "peak_host_rss_mib"))
        if any(r[key] is not None for r in rows)
    ]  # no device bars for a CPU run
    width = 0.8 / max(len(series), 1)
    for k, (label, values) in enumerate(series):
        mem.bar([i + (k - (len(series) - 1) / 2) * width for i in x], values, width, label=label)
    mem.set(title="memory", ylabel="MiB")
    mem.legend(fontsize="small")
    for ax in (lat, fps, mem):
        ax.set_xticks(list(x), names, rotation=20, ha="right", fontsize="small")
    c = doc["config"]
    fig.suptitle(
        f"GIMM-VFI-{c['variant']} {c['width']}x{c['height']} ds {c['ds_scale']} x{c['factor']} on "
        f"{doc['environment']['gpu'] or doc['environment']['cpu']}",
        fontsize="medium",
    )
    kind = Path(path).suffix.lstrip(".").lower() or "png"  # savefig would take it from the name, not a file object
    atomic_write(path, lambda f: fig.savefig(f, format=kind, dpi=110))

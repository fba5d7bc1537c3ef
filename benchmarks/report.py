#!/usr/bin/env python
"""Turn a pytest-benchmark JSON from benchmarks/ into ratio tables and a speedup chart.

    python benchmarks/report.py bench.json --markdown bench.md --png bench.png

Prints a header naming the machine that ran the benchmarks, then two Markdown tables:
  1. median time of every implementation per group (one group = one op x workload x dtype),
     with the memory-bandwidth floor;
  2. per fastsoftmax variant: its speedup over each peer (peer time / fastsoftmax time, so > 1
     means fastsoftmax is faster) and over the fastest peer, and its time as a multiple of the floor.
A line of notes under the header says what each cross-entropy op measures (extra_info["computes"]:
cross_entropy is loss+grad, cross_entropy_loss the loss alone, all that ONNX Runtime's inference
graph gives) and the thread setting of peers that record one (extra_info["intra_op_num_threads"]).
The floor is the larger of two lower bounds: (bytes_read + bytes_written) / bandwidth, the
bandwidth being the better of the `bandwidth` group's parallel copy and read, and bytes_read over
the read probe's rate alone (a machine may copy faster, per byte moved, than it reads alone; a
JSON from before the read probe, with a `sum` probe instead, gets the first bound only). The PNG shows the speedup over the fastest peer.
Only the standard library is needed, plus matplotlib for the PNG.
"""

from __future__ import annotations  # `float | None` on Python 3.9

import argparse
import json
import math
import sys
from dataclasses import dataclass, field

BANDWIDTH_GROUP = "bandwidth"
OURS = "fastsoftmax"  # implementations named fastsoftmax* are ours, everything else is a peer
MISSING = "—"
OURS_OUT = "fastsoftmax_out"  # the variant that writes into `out=` / `grad_out=`
PREFERRED_VARIANTS = (OURS_OUT, OURS)


@dataclass
class Group:
    op: str
    workload: str
    shape: str
    dtype: str
    bytes_moved: int
    bytes_read: int
    times: dict = field(default_factory=dict)  # implementation -> median seconds

    @property
    def ours(self):
        return {k: v for k, v in self.times.items() if k.startswith(OURS)}

    @property
    def peers(self):
        return {k: v for k, v in self.times.items() if not k.startswith(OURS)}

    @property
    def label(self):
        return f"{self.op} {self.workload} {self.dtype}"


@dataclass
class Results:
    machine: dict
    bandwidth: float | None  # bytes/second
    bandwidth_probe: str | None
    read_bandwidth: float | None  # bytes/second read alone (the `read` probe), if measured
    groups: list
    implementations: list  # ours first, then peers, each in order of first appearance
    computes: dict = field(default_factory=dict)  # op -> what it measures, e.g. "loss+grad"
    intra_op_threads: dict = field(default_factory=dict)  # implementation -> its thread setting


def load(path):
    with open(path) as f:
        data = json.load(f)
    groups, probes, impls, computes, intra_op = {}, {}, [], {}, {}
    for bench in data["benchmarks"]:
        info, median = bench["extra_info"], bench["stats"]["median"]
        if "bytes_read" not in info:  # not one of ours (e.g. a JSON of several suites)
            continue
        moved = info["bytes_read"] + info["bytes_written"]
        if bench["group"] == BANDWIDTH_GROUP:
            probes[info["op"]] = moved / median
            continue
        impl = info["implementation"]
        if impl not in impls:
            impls.append(impl)
        if "computes" in info:
            computes.setdefault(info["op"], info["computes"])
        if "intra_op_num_threads" in info:
            intra_op.setdefault(impl, info["intra_op_num_threads"])
        group = groups.get(bench["group"])
        if group is None:
            shape = "x".join(map(str, info["shape"]))
            group = groups[bench["group"]] = Group(info["op"], info["workload"], shape, info["dtype"],
                                                   moved, info["bytes_read"])
        group.times[impl] = median
    # Group by op first, then workload, then dtype, each in the order the suite ran them.
    order = {key: {} for key in ("op", "workload", "dtype")}
    for g in groups.values():
        for key in order:
            order[key].setdefault(getattr(g, key), len(order[key]))
    ranked = sorted(groups.values(), key=lambda g: tuple(order[k][getattr(g, k)] for k in order))
    best_probe = max(probes, key=probes.get, default=None)
    return Results(
        machine=data.get("machine_info", {}),
        bandwidth=probes.get(best_probe),
        bandwidth_probe=best_probe,
        read_bandwidth=probes.get("read"),
        groups=ranked,
        implementations=sorted(impls, key=lambda name: not name.startswith(OURS)),
        computes=computes,
        intra_op_threads=intra_op,
    )


# --- formatting ------------------------------------------------------------------------------


def fmt_time(seconds):
    if seconds is None:
        return MISSING
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_ratio(ratio):
    if ratio is None:
        return MISSING
    return f"{ratio:,.0f}×" if ratio >= 100 else f"{ratio:.2f}×"  # tiny calls sit 1000s× above the floor


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine_header(machine):
    """One line: CPU, cores, library versions (with thread counts) of the machine that ran the suite."""
    ours = machine.get("fastsoftmax_bench")  # written by benchmarks/conftest.py
    if ours is None:  # an older or foreign JSON: fall back to what pytest-benchmark records
        cpu = machine.get("cpu", {})
        ours = {
            "cpu_model": cpu.get("brand_raw") or machine.get("processor") or machine.get("machine"),
            "cpu_count": cpu.get("count"),
            "versions": {},
            "threads": {},
        }
    libs = []
    for name, version in ours["versions"].items():
        threads = ours["threads"].get(name)
        libs.append(f"{name} {version or 'not installed'}" + (f" ({threads} threads)" if threads else ""))
    system = " ".join(filter(None, (machine.get("system"), machine.get("machine"))))
    return (
        f"Machine: {ours['cpu_model']}, {ours['cpu_count']} cores"
        + (f", {system}" if system else "")
        + (f", Python {machine['python_version']}" if "python_version" in machine else "")
        + (f" | {', '.join(libs)}" if libs else "")
    )


def floor_seconds(results, group):
    """The least time the group's bytes can take: all of them at the best rate measured, and
    the bytes read at the read probe's rate, whichever is longer (None without probes)."""
    if not results.bandwidth:
        return None
    moved = group.bytes_moved / results.bandwidth
    return max(moved, group.bytes_read / results.read_bandwidth) if results.read_bandwidth else moved


def speedups(group, ours_s):
    """(peer -> peer time / our time, name of the fastest peer or None)."""
    per_peer = {peer: t / ours_s for peer, t in group.peers.items()}
    fastest = min(group.peers, key=group.peers.get, default=None)
    return per_peer, fastest


def render(results):
    peers = [i for i in results.implementations if not i.startswith(OURS)]
    parts = [machine_header(results.machine)]
    if results.bandwidth:
        probe = results.bandwidth_probe
        parts.append(f"Bandwidth: {results.bandwidth / 1e9:.2f} GB/s (best of the parallel copy/read probes: {probe})"
                     + (f"; reading alone {results.read_bandwidth / 1e9:.2f} GB/s"
                        if results.read_bandwidth else ""))
    else:
        parts.append("Bandwidth: not measured (the `bandwidth` tests were not in this run), so no floor.")
    notes = [f"`{op}` measures {what}" for op, what in results.computes.items()]
    notes += [
        f"{impl} runs with intra_op_num_threads={n}" + (" (its default: it picks the count)" if n == 0 else "")
        for impl, n in results.intra_op_threads.items()
    ]
    if notes:
        parts.append("Notes: " + "; ".join(notes) + ".")

    header = ["op", "workload", "shape", "dtype", "bandwidth floor", *results.implementations]
    rows = [
        [g.op, g.workload, g.shape, g.dtype, fmt_time(floor_seconds(results, g))]
        + [fmt_time(g.times.get(i)) for i in results.implementations]
        for g in results.groups
    ]
    parts.append("## Median time per call\n\n" + markdown_table(header, rows))

    header = ["op", "workload", "dtype", "variant", "time", *(f"vs {p}" for p in peers), "vs fastest peer", "× floor"]
    rows = []
    for g in results.groups:
        floor = floor_seconds(results, g)
        for variant, ours_s in g.ours.items():
            per_peer, fastest = speedups(g, ours_s)
            vs_fastest = f"{fmt_ratio(per_peer[fastest])} ({fastest})" if fastest else MISSING
            rows.append(
                [g.op, g.workload, g.dtype, variant, fmt_time(ours_s)]
                + [fmt_ratio(per_peer.get(p)) for p in peers]
                + [vs_fastest, fmt_ratio(ours_s / floor if floor else None)]
            )
    if rows:
        title = "## fastsoftmax speedup (peer time / fastsoftmax time; > 1 is faster) and time vs floor"
        parts.append(f"{title}\n\n{markdown_table(header, rows)}")
    else:
        parts.append("No fastsoftmax results in this run, so no speedups.")
    return "\n\n".join(parts) + "\n"


def preferred_variant(group):
    """The fastsoftmax variant a one-line summary shows: `out=` where the group has it (the peers
    write into preallocated memory too where they can: ONNX Runtime's IOBinding), else the first."""
    ours = group.ours
    return next((v for v in PREFERRED_VARIANTS if v in ours), next(iter(ours), None))


def render_summary(results, dtype):
    """One table of every op × workload in `dtype`: fastsoftmax's time, its multiple of the floor,
    and each peer's time over it (> 1: fastsoftmax is faster). The README's performance table.

    Raises ValueError where the run has no fastsoftmax result in `dtype`."""
    peers = [i for i in results.implementations if not i.startswith(OURS)]
    header = ["op", "workload", "shape", "fastsoftmax", "× floor", *(f"{p} ÷ ours" for p in peers)]
    rows = []
    for g in results.groups:
        variant = preferred_variant(g)
        if g.dtype != dtype or variant is None:
            continue
        ours_s = g.times[variant]
        floor = floor_seconds(results, g)
        per_peer, _ = speedups(g, ours_s)
        rows.append([g.op, g.workload, g.shape, fmt_time(ours_s) + ("" if variant == OURS_OUT else " †"),
                     fmt_ratio(ours_s / floor if floor else None)]
                    + [fmt_ratio(per_peer.get(p)) for p in peers])
    if not rows:
        dtypes = sorted({g.dtype for g in results.groups})
        raise ValueError(f"no fastsoftmax result in dtype {dtype!r} in this run (it has: {', '.join(dtypes) or 'none'})")
    note = "† a new result: the op has no `out=` (a loss, top_k), or the run did not time it with one."
    return markdown_table(header, rows) + "\n\n" + note + "\n"


def plot(results, path):
    """Horizontal bars, one per group and fastsoftmax variant: speedup over the fastest peer.

    Bars grow from the parity line at 1× on a log axis, so 2× faster and 2× slower look alike.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    groups = [g for g in results.groups if g.ours and g.peers]
    variants = [i for i in results.implementations if i.startswith(OURS)]
    if not groups:
        return False
    height = 0.8 / len(variants)
    fig, ax = plt.subplots(figsize=(10, 1.5 + 0.16 * len(groups) * (len(variants) + 1)))
    extent = math.log(2.0)  # show at least 0.5×..2×
    for k, variant in enumerate(variants):
        ys, xs = [], []
        for row, g in enumerate(groups):
            if variant in g.times:
                ys.append(row + (k - (len(variants) - 1) / 2) * height)
                xs.append(min(g.peers.values()) / g.times[variant])
        extent = max([extent] + [abs(math.log(x)) for x in xs])
        ax.barh(ys, [x - 1 for x in xs], left=1, height=height, label=variant)
        for y, x in zip(ys, xs):
            ax.annotate(
                fmt_ratio(x),
                (x, y),
                xytext=(3 if x >= 1 else -3, 0),
                textcoords="offset points",
                ha="left" if x >= 1 else "right",
                va="center",
                fontsize=6,
            )
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlim(math.exp(-1.3 * extent), math.exp(1.3 * extent))  # symmetric around parity, room for labels
    ax.xaxis.set_major_locator(LogLocator(base=2, numticks=12))  # ..., 1/4×, 1/2×, 1×, 2×, 4×, ...
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×" if v >= 1 else f"1/{1 / v:g}×"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_yticks(range(len(groups)), [f"{g.label} ({g.shape})" for g in groups], fontsize=7)
    ax.set_ylim(len(groups) - 0.5, -0.5)  # first group at the top, as in the tables
    ax.set_xlabel("fastsoftmax speedup over the fastest peer (fastest peer time / fastsoftmax time; > 1× is faster)")
    ax.set_title(machine_header(results.machine).split(" | ")[0], fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", help="file written by pytest --benchmark-json")
    parser.add_argument("--markdown", metavar="OUT.md", help="write the header and tables here")
    parser.add_argument("--png", metavar="OUT.png", help="write the speedup bar chart here")
    parser.add_argument("--summary", metavar="DTYPE",
                        help="print only one table, the README's: each op × workload in DTYPE "
                             "(float32, float64, ...), fastsoftmax's time (with out= where it has "
                             "one), × floor, and each peer's time over ours")
    args = parser.parse_args(argv)

    results = load(args.json)
    if args.summary:
        try:
            print(render_summary(results, args.summary), end="")
        except ValueError as error:
            parser.error(str(error))
        return 0
    text = render(results)
    print(text, end="")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(text)
    if args.png:
        try:
            written = plot(results, args.png)
        except ImportError:
            print(
                f"matplotlib is not installed: {args.png} not written (pip install matplotlib); "
                "the tables are complete.",
                file=sys.stderr,
            )
        else:
            if not written:
                print(f"no group has both fastsoftmax and a peer: {args.png} not written.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

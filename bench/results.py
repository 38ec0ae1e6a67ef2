"""What one benchmark hands back: a markdown table, and numbers for the plot."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Result:
    title: str
    notes: str
    header: list[str]
    rows: list[list[str]]
    plot: dict[str, float] = field(default_factory=dict)  # label -> value, for docs/bench.png
    # When and on which commit this step ran (`python -m bench` stamps it): steps rerun
    # with --only sit beside older ones in BENCHMARKS.md, each saying where it is from.
    measured: str = ""

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        if self.measured:
            lines += [f"Measured {self.measured}.", ""]
        lines += [self.notes, ""]
        lines.append("| " + " | ".join(self.header) + " |")
        lines.append("|" + "---|" * len(self.header))
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"

    def print(self) -> None:
        print(self.markdown(), flush=True)


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}x" if baseline else "n/a"

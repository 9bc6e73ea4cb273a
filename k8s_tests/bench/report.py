"""The benchmark's figures: samples per (case, metric), written as JSON and as a Markdown table."""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Metric:
    case: str
    name: str
    unit: str
    samples: list[float] = field(default_factory=list)


@dataclass
class Results:
    command: str
    machine: dict[str, str]
    metrics: dict[str, Metric] = field(default_factory=dict)
    # Set when a case failed: the figures before it are still written.
    error: str | None = None

    def add(self, case: str, name: str, unit: str, value: float) -> None:
        key = f"{case}|{name}"
        metric = self.metrics.setdefault(key, Metric(case, name, unit))
        metric.samples.append(round(value, 3))
        print(f"  [{case}] {name}: {value:.2f} {unit}", flush=True)

    def markdown(self) -> str:
        lines = [
            "| case | metric | unit | n | median | min | max |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for metric in sorted(self.metrics.values(), key=lambda m: m.case):
            samples = metric.samples
            lines.append(
                f"| {metric.case} | {metric.name} | {metric.unit} | {len(samples)} | "
                f"{statistics.median(samples):.2f} | {min(samples):.2f} | {max(samples):.2f} |"
            )
        return "\n".join(lines) + "\n"

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data["metrics"] = list(data["metrics"].values())
        (directory / "results.json").write_text(json.dumps(data, indent=2) + "\n")
        table = directory / "results.md"
        header = f"Command: `{self.command}`\n\nMachine: {self.machine['summary']}\n\n"
        footer = f"\nStopped early: {self.error}\n" if self.error else ""
        table.write_text(header + self.markdown() + footer)
        return table


def machine_summary() -> dict[str, str]:
    """What the figures were measured on: cores, memory, OS (`nproc`, `free -g`, os-release)."""
    cores = subprocess.run(["nproc"], check=True, text=True, capture_output=True).stdout.strip()
    memory_line = subprocess.run(["free", "-g"], check=True, text=True, capture_output=True).stdout.splitlines()[1]
    memory_gib = memory_line.split()[1]
    os_release = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    os_name = os_release.get("PRETTY_NAME", platform.platform()).strip('"')
    return {
        "cores": cores,
        "memory_gib": memory_gib,
        "os": os_name,
        "summary": f"{cores} cores, {memory_gib} GiB (free -g total), {os_name}",
    }

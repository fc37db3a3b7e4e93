"""Benchmarks. `python -m bench --list` lists them; `python -m bench NAME` runs one.

Each benchmark prints readable figures and, as its very last line, one JSON object:
{"bench": NAME, "figures": {...}, "baseline": {...}, "ratios": {...}, "targets": {...},
 "met": true|false}. Baselines are measured in the same run, on the same machine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    bench: str
    figures: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    targets: dict[str, str] = field(default_factory=dict)
    met: bool = False

    def json_line(self) -> str:
        return json.dumps(
            {
                "bench": self.bench,
                "figures": self.figures,
                "baseline": self.baseline,
                "ratios": self.ratios,
                "targets": self.targets,
                "met": self.met,
            },
            sort_keys=False,
        )

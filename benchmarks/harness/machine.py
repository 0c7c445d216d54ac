"""The machine a result was measured on, in the form every results file records."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine() -> dict:
    import torch  # here, not at import: `--help` and the probe's light spawner stay torch-free

    found = {
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": cpu_model(),
    }
    if torch.cuda.is_available():
        found["gpu"] = torch.cuda.get_device_name(0)
    return found


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def show() -> dict:
    """The machine, printed in one line and returned."""
    m = machine()
    gpu = f", {m['gpu']}" if "gpu" in m else ""
    print(
        f"machine: {m['cpu_cores']} cores ({m['processor']}{gpu}), torch {m['torch']} with "
        f"{m['torch_threads']} threads, python {m['python']}"
    )
    return m

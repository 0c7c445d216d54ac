"""Render the README's result figures from benchmarks/results, so they cannot drift.

Each rendered passage sits between `<!-- results:NAME -->` and `<!-- /results:NAME -->`.
`python benchmarks/render_readme.py` rewrites them; `--check` exits 1 when the README
differs from what the results files say (the test suite runs that).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"


def soak(d: dict) -> str:
    lives = d["rss_per_life"]
    growth = max(life["rss_max_mib"] - life["rss_at_20s_mib"] for life in lives)
    lost = d["lost_env_steps_per_resume"]
    drops = d["dropped_all_lives"]
    top = sorted(drops.items(), key=lambda kv: -kv[1])[:5]
    return (
        f"over {d['seconds']:.0f} s the learner was killed {d['learner_kills']} times and "
        f"resumed each time, {d['actor_kills']} actors were killed and replaced, and the "
        f"authorized peer sent {d['fuzz_messages_sent']:,} fuzzed messages. The learner died "
        f"only by the kills and ended with exit {d['final_learner_exit_code']} (SIGTERM mid-"
        f"run); a resume lost at most {max(max(lost), 0):,} env steps against its last "
        f"metrics record; RSS grew at most {growth:.1f} MiB within a life "
        f"({min(life['rss_max_mib'] for life in lives):.0f}-"
        f"{max(life['rss_max_mib'] for life in lives):.0f} MiB); every actor left when the run "
        f"ended. {sum(drops.values()):,} messages were refused by {len(drops)} reasons (most: "
        + ", ".join(f"`{k}` {v:,}" for k, v in top)
        + f"), none as `internal_error`; {d['env_steps']:,} env steps in all "
        f"(commit `{d['git_rev'][:7]}`)."
    )


RENDERERS = {"soak": (soak, "soak.json")}


def render(text: str) -> str:
    for name, (fn, path) in RENDERERS.items():
        data = json.loads((RESULTS / path).read_text())
        body = fn(data)
        pattern = re.compile(
            rf"(<!-- results:{name} -->\n)(?:.*?\n)?(<!-- /results:{name} -->)", re.S
        )
        text = pattern.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(2), text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Exit 1 if the README is stale.")
    args = parser.parse_args()
    text = README.read_text()
    rendered = render(text)
    if args.check:
        if rendered != text:
            print("README.md figures differ from benchmarks/results: run this script")
            return 1
        return 0
    README.write_text(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main())

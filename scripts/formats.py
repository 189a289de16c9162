"""Write docs/formats.md from the JSON schemas in the code (``*_SCHEMA``): ``python scripts/formats.py``.

``tests/test_layout.py`` checks that the committed page is what this renders, so the page cannot drift from the code.
"""

from __future__ import annotations

import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "formats.md"
# (title, command that writes it, module, schema name)
SCHEMAS = [
    ("check report", "`ltp-deploy check --json`", "ltp_deploy.check", "CHECK_SCHEMA"),
    ("benchmark report", "`ltp-deploy bench --json`", "ltp_deploy.bench", "BENCH_SCHEMA"),
    ("profile report", "`ltp-deploy profile --json`", "ltp_deploy.runtimes.profile", "PROFILE_SCHEMA"),
    ("claims report", "`ltp-deploy reproduce` (`claims.json`)", "ltp_deploy.claims", "CLAIMS_SCHEMA"),
    ("load test report", "`ltp-deploy loadtest --json`", "ltp_deploy.serving.loadtest", "LOADTEST_SCHEMA"),
]


def render() -> str:
    """The page: one table per schema, field -> type -> meaning, in the code's order."""
    import importlib

    lines = ["# JSON formats", "",
             "Generated from the schemas in the code by `python scripts/formats.py`; do not edit by hand. Dotted paths; "
             "`[]` marks the items of a list, `*` any of the roles a report names; `|null` where a value may be null. "
             "Fields are only ever added within a schema version.", ""]
    for title, command, module, name in SCHEMAS:
        schema = getattr(importlib.import_module(module), name)
        lines += [f"## {title[0].upper() + title[1:]}", "", f"Written by {command}; `{module}.{name}`.", "",
                  "| field | type | meaning |", "|---|---|---|"]
        for field, text in schema.items():
            kind, _, meaning = text.partition(": ")
            meaning = meaning.replace("|", "\\|")
            lines.append(f"| `{field}` | `{kind}` | {meaning} |".replace("|null`", "\\|null`"))
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    PAGE.write_text(render(), encoding="utf-8")
    print(f"wrote {PAGE}", file=sys.stderr)

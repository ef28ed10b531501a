"""Write rules/roles.json, the compiled form of rules/roles.yaml that `ckpt-size` reads at start (no YAML parser on
the common path). Run after editing rules/roles.yaml; tests/test_fast_start.py fails until then.

    python tools/compile_rules.py
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inspector.roles import COMPILED, PACKAGED, parse_rules, rules_to_json  # noqa: E402


def main() -> int:
    rules = parse_rules((ROOT / "rules" / PACKAGED).read_text(encoding="utf-8"), f"rules/{PACKAGED}")
    target = ROOT / "rules" / COMPILED
    target.write_text(rules_to_json(rules), encoding="utf-8")
    print(f"wrote {target.relative_to(ROOT)} ({len(rules.rules)} rules)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env bash
# Commit the finished cells of the issue-15 grids (tools/earn-their-keep.sh): each
# experiment's config.json and results.json, and the records of the cells results.json
# lists as finished (config, structure, summary, timing; weights and events are ignored).
# A cell still training is left out, so a checkout never holds half a cell.
set -euo pipefail
cd "$(dirname "$0")/.."
for exp in docs/reproduction/grid/*/; do
    [ -f "$exp/results.json" ] || continue
    git add "$exp/config.json" "$exp/results.json"
    python3 -c 'import json, sys; print("\n".join(json.load(open(sys.argv[1]))["cells"]))' \
        "$exp/results.json" | while read -r cell; do git add "$exp/cells/$cell"; done
done
git diff --cached --quiet || git commit -qm "${1:-Grid cells finished so far (issue 15)}"
git log --oneline -1

#!/usr/bin/env bash
# Render a medmtl HTML report in a real browser (headless Chromium) and fail unless it renders cleanly.
#
# Usage: bash scripts/check_html_report.sh TARGET [OUT.png]
#   TARGET   a run directory (its report/report.html), a comparison directory (comparison.html)
#            or an .html file
#   OUT.png  where the screenshot goes (default: a new temporary folder); its path is printed
#
# Needs Chromium: `apt-get install -y chromium` on Debian (or CHROMIUM=/path/to/chrome). The page is
# opened from file:// at 1200×3000 with --headless --no-sandbox --disable-gpu. The check fails (exit 1)
# when chromium fails or times out (CHECK_TIMEOUT seconds, default 120), when the screenshot is
# missing, empty, not a PNG or blank (one colour), or when chromium reports errors:
#   - any page console message (`:CONSOLE`): medmtl's pages carry a Content-Security-Policy that
#     allows only data: images, so a figure left as a file reference, an outside resource or a
#     script error shows up there;
#   - any ERROR or FATAL line of chromium itself, except those matching CHECK_IGNORE (default: the
#     D-Bus lines chromium prints in any container without a system bus, `ERROR:dbus/...`).
# Exit 2: bad usage (no such report, no chromium).
set -uo pipefail

target=${1:?usage: check_html_report.sh RUN_DIR|COMPARE_DIR|FILE.html [OUT.png]}
chromium=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
ignore=${CHECK_IGNORE:-ERROR:dbus/}
limit=${CHECK_TIMEOUT:-120}

if [[ -f "$target" ]]; then
  page=$target
elif [[ -f "$target/report/report.html" ]]; then
  page=$target/report/report.html
elif [[ -f "$target/comparison.html" ]]; then
  page=$target/comparison.html
else
  echo "error: $target: no report/report.html or comparison.html (write it with: medmtl report $target)" >&2
  exit 2
fi
if [[ -z "$chromium" ]]; then
  echo "error: chromium is not installed (Debian: apt-get install -y chromium; or set CHROMIUM)" >&2
  exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work/profile" "$work/stderr.log"; rmdir "$work" 2>/dev/null' EXIT
out=${2:-$work/screenshot.png}
rm -f "$out"
page_url="file://$(cd "$(dirname "$page")" && pwd)/$(basename "$page")"

timeout "$limit" "$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --user-data-dir="$work/profile" --enable-logging=stderr --v=0 \
  --window-size=1200,3000 --screenshot="$out" "$page_url" >"$work/stderr.log" 2>&1
status=$?

failed=0
if [[ $status -ne 0 ]]; then
  [[ $status -eq 124 ]] && echo "FAIL: chromium timed out after ${limit}s" >&2 \
    || echo "FAIL: chromium exited with status $status" >&2
  failed=1
fi
errors=$(grep -E ':CONSOLE|:ERROR:|:FATAL:' "$work/stderr.log" | grep -vE "$ignore" || true)
if [[ -n "$errors" ]]; then
  echo "FAIL: chromium reported errors rendering $page:" >&2
  echo "$errors" >&2
  failed=1
fi
if [[ ! -s "$out" ]]; then
  echo "FAIL: no screenshot was written ($out missing or empty)" >&2
  failed=1
elif [[ "$(head -c 8 "$out" | od -An -tx1 | tr -d ' \n')" != "89504e470d0a1a0a" ]]; then
  echo "FAIL: $out is not a PNG" >&2
  failed=1
else
  python=${PYTHON:-$( [[ -x .venv/bin/python ]] && echo .venv/bin/python || command -v python3 || true )}
  if [[ -n "$python" ]] && "$python" -c "import PIL" 2>/dev/null; then
    if ! "$python" - "$out" <<'EOF'
import sys
from PIL import Image
image = Image.open(sys.argv[1]).convert("L")
low, high = image.getextrema()
print(f"screenshot {image.size[0]}x{image.size[1]}, grey levels {low}..{high}")
sys.exit(0 if high - low > 32 else 1)
EOF
    then
      echo "FAIL: $out is blank (one colour)" >&2
      failed=1
    fi
  fi
fi
if [[ $failed -ne 0 ]]; then
  echo "chromium's full output: see below" >&2
  cat "$work/stderr.log" >&2
  exit 1
fi
echo "OK: $page rendered without errors -> $out ($(wc -c <"$out") bytes)"

"""Render a report.html in headless Chromium (Debian's package) and measure its charts' layout.

The page itself has no JavaScript. A copy gets one appended script that, once laid out, measures
every ``svg.chart``: each text label's box against its SVG's box (a label outside it is cut off
on screen), pairs of labels that overlap, and how many drawn marks (``class="mark"`` with a
non-empty box) the chart has. The result is written into the DOM as JSON, which
``chromium --dump-dom`` prints, so no driver or network is needed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.ci import missing_tool

CHROMIUM = ("chromium", "chromium-browser")
MEASURE = """<script>
const slack = 0.5;
const charts = [...document.querySelectorAll('svg.chart')].map(svg => {
  const box = svg.getBoundingClientRect();
  const labels = [...svg.querySelectorAll('text')].map(t => ({text: t.textContent, r: t.getBoundingClientRect()}));
  const clipped = labels.filter(({r}) => r.width === 0 || r.left < box.left - slack || r.right > box.right + slack
                                          || r.top < box.top - slack || r.bottom > box.bottom + slack)
                        .map(({text}) => text);
  const overlapping = [];
  labels.forEach((a, i) => labels.slice(i + 1).forEach(b => {
    const x = Math.min(a.r.right, b.r.right) - Math.max(a.r.left, b.r.left);
    const y = Math.min(a.r.bottom, b.r.bottom) - Math.max(a.r.top, b.r.top);
    if (x > 1 && y > 1) overlapping.push([a.text, b.text]);
  }));
  const marks = [...svg.querySelectorAll('.mark')].filter(m => {
    const r = m.getBoundingClientRect(); return r.width + r.height > 0; }).length;
  return {label: svg.getAttribute('aria-label'), width: box.width, height: box.height,
          labels: labels.length, clipped, overlapping, marks};
});
const pre = document.createElement('pre');
pre.id = 'layout-check';
pre.textContent = JSON.stringify(charts);
document.body.appendChild(pre);
</script>"""


def chromium() -> str:
    """The Chromium binary; skips (fails under CI) when it is not installed."""
    for name in CHROMIUM:
        found = shutil.which(name)
        if found:
            return found
    missing_tool("chromium is not installed (Debian: apt-get install chromium; make debian-tools)")


def measure_charts(page: str, workdir: Path) -> list[dict[str, Any]]:
    """Lay ``page`` out in headless Chromium; return one measurement per ``svg.chart``."""
    binary = chromium()
    copy = workdir / "measured.html"
    copy.write_text(page.replace("</body>", MEASURE + "</body>"))
    process = subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
         f"--user-data-dir={workdir / 'profile'}", "--dump-dom", "--virtual-time-budget=5000",
         copy.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    found = re.search(r'<pre id="layout-check">(.*?)</pre>', process.stdout, re.S)
    assert found, f"chromium printed no measurement (exit {process.returncode}): {process.stderr[-2000:]}"
    text = found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return list(json.loads(text))

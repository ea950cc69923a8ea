"""Benchmark the status page at ``/`` (called by ``hack/bench status``; issue #15).

The claim under test (issue #15): page weight under 100 KB and first paint with 10,000
names under 1 s on this machine. Black box: the script writes N ServiceRecord definitions
(the data set of ``hack/bench reconcile``: 80% in one multi-document file, the rest in
small files; A, PTR, SRV, TXT, CNAME and aggregated names), starts the real daemon
(``dockzone run`` with Docker and forwarding off, DNS and HTTP on free 127.0.0.1 ports, a
private zones and state directory), waits for its first pass (``/readyz``), then:

1. in headless chromium (Debian's, driven by its chromedriver, the options of
   tests/integration/test_status_page.py), one cold load of each view (reported apart),
   then R rounds, the browser cache cleared before each load
   (``Network.clearBrowserCache`` over the DevTools protocol): load ``/``, a search for one
   name (``/?q=NAME``) and the explain view for it (``/ui/explain?name=NAME``); from the
   browser's Performance API: first-contentful-paint (``paint`` entries),
   domContentLoaded and load (``navigation`` entry, from the start of the navigation), and
   the bytes transferred for the document and each sub-resource (``transferSize``, with
   headers);
2. with urllib, R times each: the same three URLs, the time to the whole response (the
   server's render plus loopback) and the bytes of ``/``, ``/ui/status.css`` and
   ``/ui/status.js`` (the page weight).

Medians and maxima against the targets: first paint of ``/`` <= 1 s, weight <= 100 KB.
Traffic goes only to 127.0.0.1 (chromium's host resolver maps every other name to
NOTFOUND). Every wait is bounded (``--timeout``); the daemon, chromedriver and chromium
are stopped and the work directory removed, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from bench_reconcile import Daemon, Definitions, describe, free_port, interruptible, make_records

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import CHROMIUM_OPTIONS  # noqa: E402 (the repository root is on the path only now)

FIRST_PAINT_S = 1.0
WEIGHT_KB = 100.0

TIMINGS = """
const nav = performance.getEntriesByType('navigation')[0];
const paint = {};
for (const e of performance.getEntriesByType('paint')) paint[e.name] = e.startTime;
return {
  fcp: paint['first-contentful-paint'] ?? null,
  fp: paint['first-paint'] ?? null,
  ttfb: nav ? nav.responseStart : null,
  dcl: nav ? nav.domContentLoadedEventEnd : null,
  load: nav ? nav.loadEventEnd : null,
  doc: nav ? {name: nav.name, transfer: nav.transferSize, encoded: nav.encodedBodySize,
              decoded: nav.decodedBodySize} : null,
  resources: performance.getEntriesByType('resource').map(e => ({
    name: e.name, transfer: e.transferSize, encoded: e.encodedBodySize,
    decoded: e.decodedBodySize})),
  rows: document.querySelectorAll('#names tbody tr').length,
};
"""


# --- the browser --------------------------------------------------------------------------


class Browser:
    """Headless chromium through chromedriver, its profile in ``profile``."""

    def __init__(self, profile: Path, timeout: float) -> None:
        from selenium import webdriver  # noqa: PLC0415 - only this benchmark needs selenium
        from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

        chromium = shutil.which("chromium") or "/usr/bin/chromium"
        driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
        for binary in (chromium, driver):
            if not Path(binary).exists():
                raise SystemExit(f"{binary} is not installed (hack/deps installs it)")
        self.profile = profile
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for argument in (*CHROMIUM_OPTIONS, f"--user-data-dir={profile}"):
            options.add_argument(argument)
        self.service = Service(
            executable_path=driver,
            log_output=subprocess.DEVNULL,
            # its own session: Ctrl-C reaches the benchmark, which quits the browser in order
            popen_kw={"start_new_session": True},
        )
        self.driver = webdriver.Chrome(options=options, service=self.service)
        self.driver.set_page_load_timeout(timeout)
        self.driver.set_script_timeout(timeout)
        self.timeout = timeout

    def load(self, url: str) -> dict[str, Any]:
        """Clear the cache, load ``url`` and return its Performance API figures (ms)."""
        self.driver.get("about:blank")
        self.driver.execute_cdp_cmd("Network.clearBrowserCache", {})
        self.driver.get(url)
        # loadEventEnd is set just after the load event that get() waited for, and the
        # paint entries once the compositor has presented the frame (often after load)
        deadline = time.monotonic() + min(self.timeout, 10)
        while True:
            figures: dict[str, Any] = self.driver.execute_script(TIMINGS)
            if (figures["load"] and figures["fcp"]) or time.monotonic() > deadline:
                return figures
            time.sleep(0.01)

    def quit(self) -> None:
        """Quit chromium and chromedriver; kill what is left of them (by pid, ours only)."""
        with suppress(Exception):
            self.driver.quit()
        process = getattr(self.service, "process", None)
        if process is not None and process.poll() is None:
            process.kill()
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        for pid in self._chromium_pids():
            with suppress(OSError):
                os.kill(pid, 9)

    def _chromium_pids(self) -> list[int]:
        """Processes whose command line names our profile directory: our chromium."""
        mine = f"--user-data-dir={self.profile}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with suppress(OSError):
                    if mine in (entry / "cmdline").read_bytes().split(b"\0"):
                        pids.append(int(entry.name))
        return pids


# --- HTTP ---------------------------------------------------------------------------------


def fetch(url: str, timeout: float) -> tuple[float, int]:
    """GET ``url`` (loopback only): seconds to the whole response, and its body bytes."""
    host = urllib.parse.urlsplit(url).hostname
    assert host == "127.0.0.1", url
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    started = time.perf_counter()
    with opener.open(url, timeout=timeout) as response:
        body = response.read()
    return time.perf_counter() - started, len(body)


def wait_ready(daemon: Daemon, http: str, deadline: float) -> float | None:
    """Poll ``/readyz`` until the first pass is done; the monotonic time it was, or None."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while time.monotonic() < deadline and daemon.alive():
        with suppress(OSError), opener.open(f"http://{http}/readyz", timeout=2) as response:
            if response.status == 200:
                return time.monotonic()
        time.sleep(0.05)
    return None


# --- measuring ----------------------------------------------------------------------------


def summary(values: list[float | None]) -> tuple[float | None, float | None]:
    got = [v for v in values if v is not None]
    if not got:
        return None, None
    return statistics.median(got), max(got)


def measure(
    base: str,
    name: str,
    rounds: int,
    browser: Browser,
    *,
    timeout: float,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """R rounds of the three views in the browser and over urllib."""
    views = {
        "page": f"{base}/",
        "search": f"{base}/?q={urllib.parse.quote(name)}",
        "explain": f"{base}/ui/explain?name={urllib.parse.quote(name)}",
    }
    # one cold load of each view first, not in the medians: the daemon compiles its
    # templates and builds the search index, chromium starts its renderer
    cold = {}
    for view, url in views.items():
        cold[view] = browser.load(url)
        cold[view]["server_s"] = fetch(url, timeout)[0]
    samples: dict[str, list[dict[str, Any]]] = {view: [] for view in views}
    server: dict[str, list[float]] = {view: [] for view in views}
    for number in range(1, rounds + 1):
        for view, url in views.items():
            samples[view].append(browser.load(url))
            server[view].append(fetch(url, timeout)[0])
        page = samples["page"][-1]
        log(
            f"  round {number}: / first paint {page['fcp'] or 0:.0f} ms, load "
            f"{page['load'] or 0:.0f} ms; search {server['search'][-1] * 1000:.0f} ms on the "
            "server"
        )
    weight = {}
    for path in ("/", "/ui/status.css", "/ui/status.js"):
        weight[path] = fetch(base + path, timeout)[1]
    first = samples["page"][0]
    transfer = {"document": first["doc"]["transfer"] if first["doc"] else None}
    for resource in first["resources"]:
        path = urllib.parse.urlsplit(resource["name"]).path
        if path.startswith("/ui/") and path != "/ui/poll":
            transfer[path] = resource["transfer"]
    return {
        "cold": cold,
        "samples": samples,
        "server_s": server,
        "bytes": weight,
        "transfer": transfer,
        "rows": first["rows"],
        "search_rows": samples["search"][0]["rows"],
    }


def report(result: dict[str, Any], header: str) -> str:
    """The table: per measure median and max, the targets, the weight in KB."""
    lines = [header, ""]
    lines.append(f"{'measure':44} {'median':>9} {'max':>9}  target")
    samples, server = result["samples"], result["server_s"]

    def row(label: str, values: list[float | None], unit: str, target: str = "") -> None:
        median, most = summary(values)
        if median is None or most is None:
            lines.append(f"{label:44} {'n/a':>9} {'n/a':>9}  {target}")
            return
        lines.append(f"{label:44} {median:>7.0f}{unit:>2} {most:>7.0f}{unit:>2}  {target}")

    paint = [s["fcp"] for s in samples["page"]]
    fcp_median, fcp_max = summary(paint)
    verdict = ""
    if fcp_median is not None and fcp_max is not None:
        verdict = "ok" if fcp_max <= FIRST_PAINT_S * 1000 else "MISSED"
    row("/  first contentful paint", paint, "ms", f"<= {FIRST_PAINT_S * 1000:.0f} ms  {verdict}")
    for view, label in (("page", "/"), ("search", "/?q=NAME"), ("explain", "/ui/explain")):
        if view != "page":
            row(f"{label}  first contentful paint", [s["fcp"] for s in samples[view]], "ms")
        row(f"{label}  domContentLoaded", [s["dcl"] for s in samples[view]], "ms")
        row(f"{label}  load", [s["load"] for s in samples[view]], "ms")
        row(f"{label}  server response (urllib)", [t * 1000 for t in server[view]], "ms")
    cold = result["cold"]
    lines.append("")
    lines.append(
        "cold, the first load of each view after the first pass (not above): "
        + "; ".join(
            f"{label} first paint {cold[view]['fcp'] or 0:.0f} ms, load "
            f"{cold[view]['load'] or 0:.0f} ms, then {cold[view]['server_s'] * 1000:.0f} ms "
            "on the server"
            for view, label in (("page", "/"), ("search", "search"), ("explain", "explain"))
        )
    )
    weight = sum(result["bytes"].values()) / 1000
    parts = ", ".join(f"{path} {size / 1000:.1f}" for path, size in result["bytes"].items())
    status = "ok" if weight <= WEIGHT_KB else "MISSED"
    lines.append(f"page weight {weight:.1f} KB ({parts}); target <= {WEIGHT_KB:.0f} KB  {status}")
    transfer = ", ".join(
        f"{path} {size / 1000:.1f}" for path, size in result["transfer"].items() if size
    )
    total = sum(size for size in result["transfer"].values() if size) / 1000
    lines.append(f"transferred (browser, with headers) {total:.1f} KB ({transfer})")
    lines.append(f"rows shown: / {result['rows']}, search {result['search_rows']}")
    return "\n".join(lines)


# --- main ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--names", type=int, default=10_000, help="ServiceRecord definitions (default 10000)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="loads per view (default 5)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=0,
        help="seconds any one wait may take (default 30 + names/250)",
    )
    parser.add_argument("--json", action="store_true", help="also print the samples as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    timeout = args.timeout or 30 + args.names / 250
    load = os.getloadavg()[0]

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="dz-bench-status-", dir="/tmp"))
    daemon: Daemon | None = None
    browser: Browser | None = None
    try:
        with interruptible():
            for sub in ("definitions", "staging", "zones", "state", "chromium"):
                (workdir / sub).mkdir()
            records = make_records(args.names)
            Definitions(workdir / "definitions", workdir / "staging", records).write_all()
            http = f"127.0.0.1:{free_port()}"
            env = {
                k: v for k, v in os.environ.items() if not k.startswith(("DOCKZONE_", "DOCKER_"))
            }
            env["XDG_STATE_HOME"] = str(workdir / "state")
            command = [
                str(ROOT / ".venv" / "bin" / "dockzone"),
                "run",
                "--docker=off",
                f"--http={http}",
                f"--dns=127.0.0.1:{free_port()}",
                "--no-rec",
                "--nameserver=127.0.0.1:9",  # never used with --no-rec
                "--definitions",
                str(workdir / "definitions"),
                "--zones",
                str(workdir / "zones"),
                "--resync=86400",  # no periodic full pass during the loads
            ]
            daemon = Daemon(command, env, workdir / "dockzone.log")
            log(f"{args.names} definitions; starting dockzone run (HTTP on {http})")
            daemon.start()
            ready = wait_ready(daemon, http, time.monotonic() + timeout)
            if ready is None:
                log("the daemon did not finish its first pass in time:\n" + daemon.tail())
                return 1
            log(f"first pass done {ready - daemon.started:.1f} s after start; loading the page")
            browser = Browser(workdir / "chromium", timeout)
            name = records[len(records) // 2].fqdn
            result = measure(f"http://{http}", name, args.rounds, browser, timeout=timeout, log=log)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        if browser is not None:
            browser.quit()
        if daemon is not None:
            daemon.stop(timeout=10)
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    header = (
        f"hack/bench status: {describe(ROOT)}; {args.names} names, {args.rounds} rounds, "
        f"search and explain for {name}; {os.cpu_count()} CPUs, load "
        f"{load:.1f} at the start; browser cache cleared before each load; ms from the "
        "start of the navigation"
    )
    print(report(result, header))
    if args.json:
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

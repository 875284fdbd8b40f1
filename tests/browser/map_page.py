"""Drives headless Chromium (Debian's chromium + chromedriver, via Selenium) through the
live map for crates/apiary-server/tests/map_browser.rs.

Protocol on stdout/stdin with the Rust test:
  -> prints "READY <stats-json>" once the map is loaded, signed in and connected to /api/live
  <- reads one line from stdin ("PUBLISHED") after the test published events over hpfeeds
  -> prints "STATS <stats-json>" once markers and log lines appeared (or the timeout passed)
and saves a screenshot. Exit code 0 when the page behaved, 1 otherwise, 2 when the browser
is not available (the Rust test reports that as a failure with the reason).
"""
import argparse
import json
import sys
import time

from chromium import start_chromium


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--email", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--screenshot", required=True)
    ap.add_argument("--want-attackers", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=30)
    a = ap.parse_args()
    try:
        from selenium.webdriver.common.by import By
    except ImportError as e:
        print(f"selenium missing: {e}", file=sys.stderr)
        return 2
    try:
        d = start_chromium()
    except Exception as e:  # noqa: BLE001
        print(f"cannot start chromium: {e}", file=sys.stderr)
        return 2
    try:
        d.set_page_load_timeout(30)
        d.get(a.base + "/ui/login/?next=/ui/map/")
        d.find_element(By.NAME, "email").send_keys(a.email)
        d.find_element(By.NAME, "password").send_keys(a.password)
        d.find_element(By.CSS_SELECTOR, "form[action='/ui/login/'] button, form[action='/ui/login/'] input[type=submit]").click()
        deadline = time.time() + a.timeout
        stats = None
        while time.time() < deadline:
            if "/ui/map/" in d.current_url:
                stats = d.execute_script("return window.apiaryMap ? window.apiaryMap.stats() : null")
                if stats and stats.get("connected") and stats.get("countries", 0) > 100:
                    break
            time.sleep(0.1)
        print("READY " + json.dumps(stats), flush=True)
        if not stats or not stats.get("connected"):
            print(f"map not ready at {d.current_url}", file=sys.stderr)
            return 1
        sys.stdin.readline()
        deadline = time.time() + a.timeout
        while time.time() < deadline:
            stats = d.execute_script("return window.apiaryMap.stats()")
            if (stats["attackers"] >= a.want_attackers and stats["honeypots"] >= 1
                    and stats["logLinesTotal"] >= a.want_attackers + 1 and stats["queued"] == 0):
                break
            time.sleep(0.2)
        time.sleep(0.5)  # let arcs animate into the screenshot
        lines = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#map-log div")]
        # Hostile text must stay text: no element was created from event data.
        injected = d.execute_script("return document.querySelectorAll('#map-log img, #map-log script').length")
        stats["logText"] = lines[-20:]
        stats["injected"] = injected
        d.save_screenshot(a.screenshot)
        print("STATS " + json.dumps(stats), flush=True)
        return 0
    finally:
        d.quit()


if __name__ == "__main__":
    sys.exit(main())

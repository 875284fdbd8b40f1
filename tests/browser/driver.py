"""A small line protocol over stdin/stdout for driving headless Chromium (Debian's chromium
+ chromedriver, via Selenium) from Rust tests (crates/apiary-server/tests/map_browser.rs).

Each command is one JSON object on a line of stdin; each answer is one line on stdout,
"OK <json>" or "ERR <message>":

  {"cmd": "login", "base": URL, "email": E, "password": P, "next": "/ui/map/"}
  {"cmd": "get", "url": URL}                       open a page
  {"cmd": "js", "script": "return ..."}             execute_script, answer its value
  {"cmd": "wait", "script": "return ...", "timeout": S}
                                                     poll until the script returns a truthy
                                                     value (answered) or S seconds pass (ERR)
  {"cmd": "hover", "selector": CSS, "x": X, "y": Y}  move the real mouse to (x, y) inside
                                                     the element (from its top-left corner)
  {"cmd": "click", "selector": CSS}
  {"cmd": "screenshot", "path": P}
  {"cmd": "quit"}

Exit code 2 when the browser cannot be started (the first line is then "ERR ...").
"""
import json
import sys
import time

from chromium import start_chromium


def main():
    try:
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By
    except ImportError as e:
        print(f"ERR selenium missing: {e}", flush=True)
        return 2
    try:
        d = start_chromium()
    except Exception as e:  # noqa: BLE001
        print(f"ERR cannot start chromium: {e}".replace("\n", " "), flush=True)
        return 2
    d.set_page_load_timeout(30)
    print("OK " + json.dumps({"browser": d.capabilities.get("browserVersion")}), flush=True)

    def answer(v):
        print("OK " + json.dumps(v), flush=True)

    try:
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            try:
                c = json.loads(line)
                cmd = c["cmd"]
                if cmd == "quit":
                    answer(None)
                    return 0
                if cmd == "login":
                    d.get(c["base"] + "/ui/login/?next=" + c.get("next", "/ui/dashboard/"))
                    d.find_element(By.NAME, "email").send_keys(c["email"])
                    d.find_element(By.NAME, "password").send_keys(c["password"])
                    d.find_element(By.CSS_SELECTOR, "form[action='/ui/login/'] button, "
                                   "form[action='/ui/login/'] input[type=submit]").click()
                    deadline = time.time() + 30
                    while "/ui/login/" in d.current_url and time.time() < deadline:
                        time.sleep(0.1)
                    answer(d.current_url)
                elif cmd == "get":
                    d.get(c["url"])
                    answer(d.current_url)
                elif cmd == "js":
                    answer(d.execute_script(c["script"]))
                elif cmd == "wait":
                    deadline = time.time() + float(c.get("timeout", 30))
                    v = None
                    while time.time() < deadline:
                        v = d.execute_script(c["script"])
                        if v:
                            break
                        time.sleep(0.1)
                    if v:
                        answer(v)
                    else:
                        print("ERR timeout; last value " + json.dumps(v), flush=True)
                elif cmd == "hover":
                    el = d.find_element(By.CSS_SELECTOR, c["selector"])
                    r = el.rect
                    # Selenium 4 offsets are from the element's centre.
                    ActionChains(d).move_to_element_with_offset(
                        el, int(round(c["x"] - r["width"] / 2)), int(round(c["y"] - r["height"] / 2))
                    ).perform()
                    answer(True)
                elif cmd == "click":
                    d.find_element(By.CSS_SELECTOR, c["selector"]).click()
                    answer(True)
                elif cmd == "screenshot":
                    answer(d.save_screenshot(c["path"]))
                else:
                    print(f"ERR unknown command {cmd}", flush=True)
            except Exception as e:  # noqa: BLE001
                print("ERR " + str(e).replace("\n", " ")[:2000], flush=True)
        return 0
    finally:
        d.quit()


if __name__ == "__main__":
    sys.exit(main())

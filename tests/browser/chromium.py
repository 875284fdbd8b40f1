"""Headless Chromium for the browser tests (driver.py, map_page.py): Debian's chromium and
chromedriver through Selenium, or APIARY_CHROMIUM / APIARY_CHROMEDRIVER."""
import os
import tempfile


def start_chromium():
    """A headless Chromium WebDriver with a fresh profile and a 1400x1000 window.

    Raises ImportError when Selenium is missing, and whatever Selenium raises when the
    browser cannot be started."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="apiary-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("APIARY_CHROMIUM", "/usr/bin/chromium")
    for f in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,1000"]:
        opts.add_argument(f)
    service = Service(os.environ.get("APIARY_CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(options=opts, service=service)

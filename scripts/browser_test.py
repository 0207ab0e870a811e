#!/usr/bin/env python3
"""The hub's web page in a real browser: Debian's chromium, headless, driven by chromedriver
through python3-selenium, against real hubs, a real worker and real jobs on 127.0.0.1.

    /usr/bin/python3 scripts/browser_test.py PATH_TO_XN [--xterm-dir DIR] [--screenshots DIR]

What a user does and sees: signing in (and a wrong or revoked token sent back to sign-in with the
reason), a job submitted from the form appearing and succeeding in a job list open in another tab
without a reload, a job printing 20,000 red lines shown as a bounded tail in red, typing into the
browser terminal of a bash job, the terminal following the window's size, the terminal resuming
without loss or repetition across a hub restart, a read token's terminal that cannot type, the
line mode, and a cross-site form post refused. Every wait is bounded; a wait that times out fails.
"""

import argparse
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import JavascriptException, StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, str(Path(__file__).resolve().parent))
from xn_wire import upgrade  # noqa: E402  (the raw WebSocket client the contract check uses too)

WAIT = 20  # seconds any one observable state may take to appear


class Failure(Exception):
    pass


def check(condition, what, detail=""):
    if not condition:
        raise Failure(f"{what}: {detail}" if detail else what)
    print(f"  ok: {what}")


# ---------------------------------------------------------------------------------------------
# Processes: a hub (started again on the same port and data folder), a worker.


class Process:
    def __init__(self, args, name, work, cwd=None):
        self.args, self.name, self.work, self.cwd = args, name, work, cwd
        self.proc = None
        self.out = None

    def start(self, ready):
        self.out = open(self.work / f"{self.name}.log", "ab")
        self.proc = subprocess.Popen(self.args, stdout=self.out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=self.cwd)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            text = (self.work / f"{self.name}.log").read_text(errors="replace")
            found = ready(text)
            if found:
                return found
            if self.proc.poll() is not None:
                raise Failure(f"{self.name} exited ({self.proc.returncode}): {text[-2000:]}")
            time.sleep(0.05)
        raise Failure(f"{self.name} did not start in {WAIT} s: {self.log()[-2000:]}")

    def log(self):
        return (self.work / f"{self.name}.log").read_text(errors="replace")

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise Failure(f"{self.name} did not stop within {WAIT} s of {sig.name}")
        if self.out:
            self.out.close()
            self.out = None


class Hub(Process):
    def __init__(self, xn, work, data, extra):
        self.xn, self.data, self.extra, self.port = xn, data, extra, 0
        super().__init__([], "hub", work)

    def start(self):
        self.args = [self.xn, "hub", "-p", str(self.port), "--data", str(self.data), "--log-level", "info"] + self.extra
        lines = self.work / "hub.log"
        before = lines.read_text(errors="replace") if lines.exists() else ""

        def ready(text):
            match = re.search(r"web page: (http://127\.0\.0\.1:(\d+)/ui/)", text[len(before):])
            return match
        match = super().start(ready)
        self.port = int(match.group(2))
        self.url = f"http://127.0.0.1:{self.port}"
        return self


def token(xn, data, role, name):
    return subprocess.run([xn, "token", "create", "--role", role, "--name", name, "--data", str(data)],
                          check=True, capture_output=True, text=True, timeout=WAIT).stdout.strip()


def call(hub, method, path, token=None, body=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(hub.url + path, method=method, headers=headers,
                                     data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as answer:
            data = answer.read()
            return answer.status, (json.loads(data) if data[:1] in (b"{", b"[") else data)
    except urllib.error.HTTPError as error:
        data = error.read()
        return error.code, (json.loads(data) if data[:1] == b"{" else data)


def wait_until(what, probe, timeout=WAIT):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.1)
    raise Failure(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


# ---------------------------------------------------------------------------------------------
# The browser.


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,900", "--force-device-scale-factor=1"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = ChromeService(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(WAIT)
    driver.set_script_timeout(WAIT)
    return driver


def wait_for(driver, what, condition, timeout=WAIT, ignored=()):
    try:
        return WebDriverWait(
            driver, timeout, poll_frequency=0.1, ignored_exceptions=(JavascriptException,) + ignored).until(
            lambda d: condition(d))
    except TimeoutException:
        raise Failure(f"timed out after {timeout} s waiting for {what}") from None


def click(driver, what, by, value):
    """Clicks an element of a view that re-renders as it updates live: one replaced between being
    found and clicked is found again."""
    wait_for(driver, what, lambda d: d.find_element(by, value).click() or True,
             ignored=(StaleElementReferenceException,))


def text_of(driver, css):
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0].text if found else ""


def terminal_text(driver):
    """The browser terminal's whole buffer, line by line, as xterm.js holds it."""
    return driver.execute_script("""
        const t = window.xnTerminal; if (!t) return null;
        const b = t.buffer.active; const lines = [];
        for (let i = 0; i < b.length; i++) lines.push(b.getLine(i).translateToString(true));
        return lines.join('\\n');""")


def type_into_terminal(driver, text):
    area = driver.find_element(By.CSS_SELECTOR, "#terminal .xterm-helper-textarea")
    area.send_keys(text)


def sign_in(driver, hub, secret):
    driver.get(hub.url + "/ui/")
    field = wait_for(driver, "the sign-in form", lambda d: d.find_elements(By.ID, "token"))[0]
    field.clear()
    field.send_keys(secret, Keys.ENTER)


def sign_out(driver, hub):
    driver.get(hub.url + "/ui/#/jobs")
    wait_for(driver, "the sign-out button", lambda d: d.find_element(By.ID, "sign-out").is_displayed())
    driver.find_element(By.ID, "sign-out").click()
    wait_for(driver, "the sign-in form after signing out",
             lambda d: d.find_elements(By.ID, "token") and "Signed out" in text_of(d, "#flash"))
    check(not any(c["name"] == "xn_session" and c["value"] for c in driver.get_cookies()),
          "signing out removes the session cookie")


def console_errors(driver):
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


# ---------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("xn")
    parser.add_argument("--xterm-dir", default=str(Path(__file__).resolve().parent.parent / ".build/share/xn/xterm"))
    parser.add_argument("--screenshots", help="save screenshots of the list, a job page and the terminal here")
    args = parser.parse_args()
    xn = os.path.abspath(args.xn)
    work = Path(tempfile.mkdtemp(prefix="xn-browser-"))
    data = work / "data"
    admin = token(xn, data, "admin", "web-admin")
    reader = token(xn, data, "read", "web-reader")
    worker_token = token(xn, data, "worker", "web-worker")
    hub = Hub(xn, work, data, ["--no-local", "--xterm-dir", args.xterm_dir, "--heartbeat-timeout", "30"])
    worker = None
    driver = None
    shots = Path(args.screenshots) if args.screenshots else None
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    cross_site = None
    try:
        hub.start()
        print(f"== hub at {hub.url}, worker, chromium (work folder {work})")
        (work / "worker.token").write_text(worker_token + "\n")
        os.chmod(work / "worker.token", 0o600)
        worker = Process([xn, "worker", "--hub", hub.url.replace("http://", "ws://"), "--name", "web-worker",
                          "--slots", "4", "--spool", str(work / "spool"), "--token-file", str(work / "worker.token")],
                         "worker", work, cwd="/")
        worker.start(lambda text: "xn worker web-worker" in text)
        wait_until("the worker to connect", lambda: call(hub, "GET", "/v1/workers", admin)[1]["workers"])
        driver = browser()

        print("== sign in")
        driver.get(hub.url + "/")
        wait_for(driver, "GET / in a browser to land on /ui/", lambda d: d.current_url.endswith("/ui/"))
        sign_in(driver, hub, "xn_not-a-token")
        wait_for(driver, "the refusal of an unknown token", lambda d: "unknown token" in text_of(d, "#flash"))
        sign_in(driver, hub, admin)
        wait_for(driver, "the job list after signing in", lambda d: d.find_elements(By.ID, "jobs"))
        check("web-admin (admin)" in text_of(driver, "#who"), "the header names the signed-in token")
        cookies = {c["name"]: c for c in driver.get_cookies()}
        session = cookies.get("xn_session", {})
        check(session.get("httpOnly") and session.get("sameSite") == "Strict",
              "the session is an HttpOnly, SameSite=Strict cookie", str(session))
        check(driver.execute_script("return document.cookie") == "", "the page's script cannot read the token")

        print("== a job submitted from the form appears and succeeds in a list open in another tab")
        list_tab = driver.current_window_handle
        driver.execute_script("window.xnNotReloaded = true")
        driver.switch_to.new_window("tab")
        form_tab = driver.current_window_handle
        driver.get(hub.url + "/ui/#/submit")
        command = wait_for(driver, "the submit form", lambda d: d.find_elements(By.ID, "command"))[0]
        command.send_keys("echo")
        driver.find_element(By.ID, "args").send_keys("hello from the form")
        driver.find_element(By.ID, "submit-job").click()
        wait_for(driver, "the new job's page", lambda d: "/jobs/" in d.current_url)
        job_id = driver.current_url.rsplit("/", 1)[-1]
        wait_for(driver, "its output on its page", lambda d: "hello from the form" in text_of(d, "#stdout"))
        driver.switch_to.window(list_tab)
        wait_for(driver, "the job to appear as succeeded in the other tab's list",
                 lambda d: d.execute_script(
                     "const r = document.querySelector(`tr[data-id='${arguments[0]}'] [data-state]`);"
                     "return r && r.getAttribute('data-state');", job_id) == "succeeded")
        check(driver.execute_script("return window.xnNotReloaded === true"), "the list was not reloaded")
        row = driver.find_element(By.CSS_SELECTOR, f"tr[data-id='{job_id}']").text
        check("echo 'hello from the form'" in row and "0" in row.split()[-1], "its row shows the command and exit 0", row)
        driver.switch_to.window(form_tab)
        driver.close()
        driver.switch_to.window(list_tab)
        if shots:
            for n in range(6):
                call(hub, "POST", "/v1/jobs", admin, {"command": "sh", "args": ["-c", f"echo step {n}; exit {n % 3}"]})
            call(hub, "POST", "/v1/jobs", admin, {"command": "sleep", "args": ["600"], "labels": {"zone": "eu"}})
            wait_for(driver, "the screenshot's jobs", lambda d: len(d.find_elements(By.CSS_SELECTOR, "#jobs tr")) >= 8)
            driver.save_screenshot(str(shots / "ui-jobs.png"))

        print("== 20,000 red lines: a bounded tail, in red")
        status, job = call(hub, "POST", "/v1/jobs?wait=60", admin, {"command": "bash", "args": ["-c",
                           r"for i in $(seq 1 20000); do printf '\e[31mred line %d\e[0m\n' $i; done"]})
        check(status == 201 and job["state"] == "succeeded", "the job ran", str(job)[:300])
        driver.get(f"{hub.url}/ui/#/jobs/{job['id']}")
        wait_for(driver, "the last line on the page",
                 lambda d: d.execute_script(
                     "const l = document.querySelectorAll('#stdout .line');"
                     "return [...l].slice(-3).some(x => x.textContent === 'red line 20000');"))
        lines = driver.execute_script("return document.querySelectorAll('#stdout .line').length")
        check(1000 <= lines <= 5001, "the page holds a bounded tail of the output", f"{lines} lines")
        first = driver.execute_script("return document.querySelector('#stdout .line:not(:empty)').textContent")
        check(first != "red line 1", "the start of the output is not in the page", first)
        colour = driver.execute_script(
            "const l = [...document.querySelectorAll('#stdout .line')].find(x => x.textContent === 'red line 20000');"
            "return getComputedStyle(l.querySelector('span')).color")
        red = [int(n) for n in re.findall(r"\d+", colour)[:3]]
        check(red[0] > 180 and red[1] < 110 and red[2] < 110, "red text is red", colour)
        check(driver.find_element(By.ID, "download-stdout").get_attribute("href").endswith(f"/v1/jobs/{job['id']}/stdout"),
              "a link downloads the full output")
        if shots:
            driver.save_screenshot(str(shots / "ui-job.png"))

        print("== the browser terminal of a bash job")
        driver.get(hub.url + "/ui/#/jobs")
        wait_for(driver, "the job list", lambda d: d.find_elements(By.ID, "jobs"))
        driver.find_element(By.ID, "new-terminal").click()
        wait_for(driver, "the terminal page", lambda d: d.current_url.endswith("/terminal"))
        term_job = driver.current_url.split("/jobs/")[1].split("/")[0]
        wait_for(driver, "a shell prompt in the terminal", lambda d: re.search(r"[#$] *$", terminal_text(d) or "", re.M))
        type_into_terminal(driver, "echo $((6*7))\n")
        wait_for(driver, "42 in the terminal", lambda d: re.search(r"^42 *$", terminal_text(d) or "", re.M))
        check("attached" in text_of(driver, "#terminal-status"), "the terminal says it is attached")

        print("== resize the window: stty size follows")
        size_before = driver.execute_script("return [window.xnTerminal.rows, window.xnTerminal.cols]")
        driver.set_window_size(900, 650)
        wait_for(driver, "the terminal to take the new size",
                 lambda d: d.execute_script("return [window.xnTerminal.rows, window.xnTerminal.cols]") != size_before)
        rows, cols = driver.execute_script("return [window.xnTerminal.rows, window.xnTerminal.cols]")
        type_into_terminal(driver, "stty size\n")
        wait_for(driver, f"stty size to say {rows} {cols}",
                 lambda d: re.search(rf"^{rows} {cols} *$", terminal_text(d) or "", re.M))
        driver.set_window_size(1280, 900)
        type_into_terminal(driver, "for i in 1 2 3; do echo count-$i; done\n")
        wait_for(driver, "count-3", lambda d: re.search(r"^count-3 *$", terminal_text(d) or "", re.M))
        type_into_terminal(driver, "sleep 300; echo slept\n")
        wait_for(driver, "the sleep to start", lambda d: "sleep 300" in (terminal_text(d) or ""))
        before_interrupt = len(re.findall(r"[#$] *$", terminal_text(driver), re.M))
        type_into_terminal(driver, Keys.CONTROL + "c")
        wait_for(driver, "Ctrl-C to interrupt the sleep and give back the prompt",
                 lambda d: "^C" in terminal_text(d) and len(re.findall(r"[#$] *$", terminal_text(d), re.M)) > before_interrupt)
        check("slept" not in terminal_text(driver).replace("echo slept", ""), "the interrupted command did not go on")
        if shots:
            type_into_terminal(driver, "printf '\\e[1;32mxn\\e[0m in the browser: '; uname -s; ls --color=always /usr\n")
            wait_for(driver, "ls output", lambda d: "in the browser:" in (terminal_text(d) or ""))
            driver.save_screenshot(str(shots / "ui-terminal.png"))

        print("== stop and restart the hub: the terminal resumes without losing or repeating output")
        port = hub.port
        hub.stop()
        wait_for(driver, "the terminal to notice", lambda d: "reconnecting" in text_of(d, "#terminal-status")
                 or "lost" in text_of(d, "#terminal-status"))
        hub.port = port
        hub.start()
        wait_for(driver, "the terminal to attach again", lambda d: text_of(d, "#terminal-status") == "attached",
                 timeout=40)
        type_into_terminal(driver, "echo after-$((20+22))-restart\n")
        wait_for(driver, "output typed after the restart",
                 lambda d: re.search(r"^after-42-restart *$", terminal_text(d) or "", re.M), timeout=40)
        buffer = terminal_text(driver)
        check(len(re.findall(r"^42 *$", buffer, re.M)) == 1, "the earlier output is there once, not repeated",
              buffer[-1500:])
        check(len(re.findall(r"^count-\d *$", buffer, re.M)) == 3, "nothing was lost or repeated")
        status, stdout = call(hub, "GET", f"/v1/jobs/{term_job}/stdout", admin)
        check(b"after-42-restart" in stdout, "the job itself received the typing")

        print("== workers, tokens, a recorded attach session, cancel")
        driver.get(hub.url + "/ui/#/workers")
        wait_for(driver, "the worker's row", lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-worker='web-worker']"))
        row = driver.find_element(By.CSS_SELECTOR, "tr[data-worker='web-worker']").text
        check(" / 4" in row, "the workers page shows slots in use out of 4", row)
        driver.get(hub.url + "/ui/#/tokens")
        name = wait_for(driver, "the token form", lambda d: d.find_elements(By.ID, "token-name"))[0]
        name.send_keys("made-in-browser")
        driver.find_element(By.CSS_SELECTOR, "#token-form button").click()
        secret = wait_for(driver, "the new token's secret, shown once",
                          lambda d: re.search(r"xn_[A-Za-z0-9_-]{43}", text_of(d, "#created-token")))
        check(call(hub, "GET", "/v1/jobs", secret.group(0))[0] == 200, "the token made in the browser works")
        wait_for(driver, "its row", lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-token='made-in-browser'] button"))
        click(driver, "the new token's revoke button", By.CSS_SELECTOR, "tr[data-token='made-in-browser'] button")
        WebDriverWait(driver, WAIT).until(lambda d: d.switch_to.alert).accept()
        wait_for(driver, "the revoked token's row", lambda d: not d.find_elements(
            By.CSS_SELECTOR, "tr[data-token='made-in-browser'] button"))
        check(call(hub, "GET", "/v1/jobs", secret.group(0))[0] == 401, "the token revoked in the browser is refused")
        driver.get(f"{hub.url}/ui/#/jobs/{term_job}")
        link = wait_for(driver, "the recorded attach sessions", lambda d: d.find_elements(By.CSS_SELECTOR, "#transcripts a"))
        link[0].click()
        wait_for(driver, "the replay to finish", lambda d: text_of(d, "#replay-status").startswith("done"))
        check(re.search(r"^42 *$", terminal_text(driver), re.M), "the replay shows what the session saw")
        status, sleeper = call(hub, "POST", "/v1/jobs", admin, {"command": "sleep", "args": ["300"]})
        driver.get(f"{hub.url}/ui/#/jobs/{sleeper['id']}")
        wait_for(driver, "the job to run", lambda d: d.execute_script(
            "const s = document.querySelector('#facts [data-state]'); return s && s.getAttribute('data-state')") == "running")
        click(driver, "the cancel button", By.ID, "cancel")
        wait_for(driver, "the job page to say canceled", lambda d: d.execute_script(
            "const s = document.querySelector('#facts [data-state]'); return s && s.getAttribute('data-state')") == "canceled")

        print("== line mode (no xterm.js)")
        driver.get(f"{hub.url}/ui/#/jobs/{term_job}/terminal?mode=line")
        entry = wait_for(driver, "the line-mode input", lambda d: d.find_elements(By.ID, "line-input"))[0]
        wait_for(driver, "the replayed output in line mode", lambda d: "after-42-restart" in text_of(d, "#line-output"))
        entry.send_keys("echo line-$((6*7))", Keys.ENTER)
        wait_for(driver, "line mode's answer", lambda d: "line-42" in text_of(d, "#line-output").replace("echo line-", ""))

        print("== a read token's terminal cannot type")
        sign_out(driver, hub)
        sign_in(driver, hub, reader)
        wait_for(driver, "the job list as the reader", lambda d: "web-reader (read)" in text_of(d, "#who"))
        check(not driver.find_element(By.ID, "new-terminal").is_displayed(), "a reader has no new-terminal button")
        driver.get(f"{hub.url}/ui/#/jobs/{term_job}/terminal")
        wait_for(driver, "the read-only terminal", lambda d: "read-only" in text_of(d, "#terminal-mode"))
        wait_for(driver, "the replay in the reader's terminal",
                 lambda d: re.search(r"^after-42-restart *$", terminal_text(d) or "", re.M))
        type_into_terminal(driver, "echo typed-by-the-reader\n")
        # Then the owner types a marker over the API: once it is in the output, anything the reader
        # could have sent before it would be there too.
        response, _, socket = upgrade(hub.url, f"/v1/jobs/{term_job}/attach", {"Authorization": f"Bearer {admin}"},
                                      keep=True)
        check(response.status == 101 and socket, "the owner attaches over the API", str(response.status))
        socket.send_binary(b"echo marker-$((1+1))\n")
        wait_until("the marker in the job's output",
                   lambda: b"marker-2" in call(hub, "GET", f"/v1/jobs/{term_job}/stdout", admin)[1])
        socket.close()
        status, stdout = call(hub, "GET", f"/v1/jobs/{term_job}/stdout", admin)
        check(b"typed-by-the-reader" not in stdout, "the reader's keys never reached the job")

        print("== a revoked token sends the browser back to sign-in with the reason")
        submitter = call(hub, "POST", "/v1/tokens", admin, {"name": "web-submitter", "role": "submit"})[1]["secret"]
        sign_out(driver, hub)
        sign_in(driver, hub, submitter)
        wait_for(driver, "the job list as the submitter", lambda d: "web-submitter (submit)" in text_of(d, "#who"))
        check(call(hub, "DELETE", "/v1/tokens/web-submitter", admin)[0] == 200, "the admin revokes it")
        driver.execute_script("location.hash = '#/workers'")
        wait_for(driver, "the sign-in page with the reason",
                 lambda d: d.find_elements(By.ID, "token") and "revoked" in text_of(d, "#flash"))

        print("== a cross-site form post is refused")
        sign_in(driver, hub, admin)
        wait_for(driver, "the job list", lambda d: "web-admin" in text_of(d, "#who"))
        page = (f'<form id="f" method="POST" action="{hub.url}/v1/jobs" enctype="text/plain">'
                '<input name=\'{"command":"echo","args":["cross-site"],"x":"\' value=\'"}\'></form>'
                '<script>document.getElementById("f").submit()</script>')

        class Evil(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(page.encode())

            def log_message(self, *args):
                pass
        cross_site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Evil)
        threading.Thread(target=cross_site.serve_forever, daemon=True).start()
        driver.get(f"http://localhost:{cross_site.server_address[1]}/")
        wait_for(driver, "the hub's answer to the forged post", lambda d: d.current_url.startswith(hub.url))
        answer = driver.find_element(By.TAG_NAME, "body").text
        check("refused" in answer or "forbidden" in answer, "the hub refuses it", answer[:300])
        status, found = call(hub, "GET", "/v1/jobs?q=cross-site", admin)
        check(status == 200 and found["jobs"] == [], "no job was made", str(found)[:300])

        errors = [e for e in console_errors(driver) if "favicon" not in e and "401" not in e and "403" not in e]
        check(not errors, "no script errors in the browser console", "\n".join(errors))
        print("browser tests passed")
        return 0
    except Failure as failure:
        print(f"FAILED: {failure}")
        for name in ["hub", "worker"]:
            log = work / f"{name}.log"
            if log.exists():
                print(f"--- {name} log (end) ---\n{log.read_text(errors='replace')[-3000:]}")
        if driver:
            try:
                driver.save_screenshot(str(work / "failure.png"))
                print(f"screenshot: {work / 'failure.png'}")
                print("browser console:", "\n".join(e["message"] for e in driver.get_log("browser"))[-3000:])
            except Exception:  # noqa: BLE001 - the report goes on without it
                pass
        return 1
    finally:
        if driver:
            driver.quit()
        if hub.proc and hub.proc.poll() is None:
            # What is still running (the terminal's bash) ends now, so the worker stops at once.
            for job in call(hub, "GET", "/v1/jobs?state=running,assigned,queued", admin)[1].get("jobs", []):
                call(hub, "POST", f"/v1/jobs/{job['id']}/cancel", admin)
        if cross_site:
            cross_site.shutdown()
        if worker:
            worker.stop()
        hub.stop()
        if os.environ.get("XN_KEEP_BROWSER_WORK") != "1":
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

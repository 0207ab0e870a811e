// xn's web page: hand-written, no framework, no build step. Every piece of job output and every
// value from the API goes into the page as text (textContent), never as HTML.
"use strict";

const app = { session: null, view: null, events: null, xterm: null };

// ---------------------------------------------------------------------------------------------
// Small helpers

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function show(...nodes) {
  const view = document.getElementById("view");
  view.replaceChildren(...nodes);
}

function flash(message, kind) {
  const box = document.getElementById("flash");
  box.textContent = message || "";
  box.className = kind || "";
  box.hidden = !message;
}

function when(text) {
  if (!text) return "";
  const date = new Date(text);
  return isNaN(date) ? text : date.toLocaleString();
}

function took(from, to) {
  if (!from) return "";
  const ms = (to ? new Date(to) : new Date()) - new Date(from);
  if (!(ms >= 0)) return "";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

function bytes(count) {
  if (count < 1024) return `${count} B`;
  if (count < 1 << 20) return `${(count / 1024).toFixed(1)} KiB`;
  if (count < 1 << 30) return `${(count / (1 << 20)).toFixed(1)} MiB`;
  return `${(count / (1 << 30)).toFixed(2)} GiB`;
}

function commandLine(job) {
  return [job.command, ...(job.args || [])].map((word) => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`)).join(" ");
}

function stateBadge(state) {
  return el("span", { class: `state state-${state}`, "data-state": state }, state);
}

const terminalStates = ["succeeded", "failed", "canceled", "timed_out", "lost"];

function role() { return app.session ? app.session.role : "read"; }
function maySubmit() { return role() === "submit" || role() === "admin"; }
function mayControl(job) {
  if (role() === "admin") return true;
  return role() === "submit" && job.owner === app.session.name;
}

// ---------------------------------------------------------------------------------------------
// The API: same-origin requests carry the session cookie; changes carry the CSRF value.

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const headers = { "X-XN-CSRF": app.session ? app.session.csrf : "" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
  });
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await response.json().catch(() => null) : await response.text();
  if (!response.ok) {
    const message = (data && data.error && (data.error.message || data.error)) || (data && data.message) || `${response.status}`;
    if (response.status === 401 && path !== "/ui/session") signIn(String(message));
    throw new ApiError(response.status, String(message));
  }
  return data;
}

// ---------------------------------------------------------------------------------------------
// Session

async function start() {
  document.getElementById("sign-out").addEventListener("click", signOut);
  document.getElementById("new-terminal").addEventListener("click", newTerminal);
  window.addEventListener("hashchange", route);
  try {
    app.session = await api("GET", "/ui/session");
  } catch (error) {
    if (error.status === 401) return signIn(error.message === "this hub needs a bearer token (Authorization: Bearer …)" ? "" : error.message);
    show(el("p", { class: "status bad" }, `The hub cannot be reached: ${error.message}`));
    return;
  }
  signedIn();
}

function signedIn() {
  const session = app.session;
  document.getElementById("nav").hidden = false;
  document.getElementById("sign-out").hidden = !session.tokens;
  document.getElementById("who").textContent = session.tokens ? `${session.name} (${session.role})` : "no tokens on this hub";
  for (const link of document.querySelectorAll("[data-needs]")) {
    const need = link.getAttribute("data-needs");
    link.hidden = need === "admin" ? session.role !== "admin" : !maySubmit();
  }
  followEvents();
  if (!location.hash || location.hash === "#/signin") location.hash = "#/jobs";
  else route();
}

function signIn(message) {
  stopView();
  if (app.events) { app.events.close(); app.events = null; }
  app.session = null;
  document.getElementById("nav").hidden = true;
  document.getElementById("sign-out").hidden = true;
  document.getElementById("who").textContent = "";
  flash(message);
  const input = el("input", { type: "password", name: "token", id: "token", autocomplete: "off", placeholder: "xn_…", required: true });
  const form = el("form", { class: "signin", id: "sign-in" },
    el("h1", {}, "Sign in"),
    el("p", { class: "muted" }, "This hub needs a token. Ask its admin for one (xn token create)."),
    el("label", { for: "token" }, "Token"), input,
    el("button", { class: "primary", type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      app.session = await api("POST", "/ui/session", { token: input.value });
      flash("");
      signedIn();
    } catch (error) {
      flash(error.message);
    }
  });
  show(form);
  input.focus();
}

async function signOut() {
  try { await api("DELETE", "/ui/session"); } catch (error) { /* signed out either way */ }
  location.hash = "#/signin";
  signIn("Signed out.");
  document.getElementById("flash").className = "info";
}

// Job changes from the hub, for whichever page shows jobs. EventSource reconnects by itself;
// when the session is gone (revoked), the next API call sends the page to sign-in.
function followEvents() {
  if (app.events) app.events.close();
  const source = new EventSource("/ui/events");
  source.addEventListener("job", (event) => {
    const job = JSON.parse(event.data);
    if (app.view && app.view.onJob) app.view.onJob(job);
  });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) setTimeout(() => { if (app.session) checkSession(); }, 2000);
  });
  // Changes before the stream opened (the page's first load races it) or while it was down are
  // not sent: the page shown loads again whenever it opens.
  source.addEventListener("open", () => { if (app.view && app.view.onReconnect) app.view.onReconnect(); });
  app.events = source;
}

async function checkSession() {
  try {
    app.session = await api("GET", "/ui/session");
    followEvents();
  } catch (error) { /* api() sent the page to sign-in on a 401 */ }
}

// ---------------------------------------------------------------------------------------------
// Routing: #/jobs, #/jobs/ID, #/jobs/ID/terminal, #/jobs/ID/transcripts/N, #/submit, #/workers, #/tokens

function stopView() {
  if (app.view && app.view.stop) app.view.stop();
  app.view = null;
}

function route() {
  if (!app.session) return;
  stopView();
  flash("");
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean);
  const params = new URLSearchParams(query || "");
  for (const link of document.querySelectorAll("[data-nav]")) link.classList.toggle("current", link.getAttribute("data-nav") === parts[0]);
  if (parts[0] === "jobs" && parts[1] && parts[2] === "terminal") app.view = terminalView(parts[1], params);
  else if (parts[0] === "jobs" && parts[1] && parts[2] === "transcripts" && parts[3]) app.view = transcriptView(parts[1], parts[3]);
  else if (parts[0] === "jobs" && parts[1]) app.view = jobView(parts[1]);
  else if (parts[0] === "submit") app.view = submitView();
  else if (parts[0] === "workers") app.view = workersView();
  else if (parts[0] === "tokens") app.view = tokensView();
  else app.view = listView(params);
}

// ---------------------------------------------------------------------------------------------
// The job list: a page from GET /v1/jobs, kept live by the event stream.

function listView(params) {
  const filter = {
    state: params.get("state") || "", owner: params.get("owner") || "", label: params.get("label") || "", q: params.get("q") || "",
  };
  const before = params.get("before") || "";
  const limit = 50;
  const body = el("tbody", { id: "jobs" });
  const pager = el("div", { class: "pager" });
  const stateSelect = el("select", { name: "state", id: "filter-state" }, el("option", { value: "" }, "any state"),
    ["queued", "assigned", "running", "succeeded", "failed", "canceled", "timed_out", "lost"].map((s) => el("option", { value: s, selected: s === filter.state }, s)));
  const owner = el("input", { name: "owner", placeholder: "owner (token)", value: filter.owner, size: 12 });
  const label = el("input", { name: "label", placeholder: "label key=value", value: filter.label, size: 16 });
  const text = el("input", { name: "q", id: "filter-text", placeholder: "search id, command, args", value: filter.q, size: 24 });
  const form = el("form", { class: "filters", id: "filters" }, stateSelect, owner, label, text, el("button", { type: "submit" }, "Filter"),
    el("a", { href: "#/jobs" }, "clear"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const [key, input] of [["state", stateSelect], ["owner", owner], ["label", label], ["q", text]]) if (input.value.trim()) query.set(key, input.value.trim());
    location.hash = "#/jobs" + (query.toString() ? "?" + query : "");
  });
  show(el("h1", {}, "Jobs"), form,
    el("table", {}, el("thead", {}, el("tr", {}, ["job", "state", "command", "owner", "worker", "submitted", "took", "exit"].map((h) => el("th", {}, h)))), body),
    pager);

  const rows = new Map();
  let newest = 0;
  function matches(job) {
    if (filter.state && job.state !== filter.state) return false;
    if (filter.owner && job.owner !== filter.owner) return false;
    if (filter.label) {
      const [key, ...rest] = filter.label.split("=");
      if (!job.labels || job.labels[key] !== rest.join("=")) return false;
    }
    if (filter.q && ![job.id, job.command, (job.args || []).join(" "), job.owner || ""].some((t) => t.includes(filter.q))) return false;
    return true;
  }
  function row(job) {
    const exit = job.signal ? `signal ${job.signal}` : job.exit_code ?? "";
    return el("tr", { "data-id": job.id },
      el("td", { class: "mono" }, el("a", { href: `#/jobs/${job.id}` }, job.id.slice(0, 12))),
      el("td", {}, stateBadge(job.state)),
      el("td", { class: "mono" }, commandLine(job)),
      el("td", {}, job.owner || ""),
      el("td", {}, job.worker || ""),
      el("td", {}, when(job.created_at)),
      el("td", {}, terminalStates.includes(job.state) ? took(job.started_at, job.finished_at) : ""),
      el("td", { class: "exit" }, String(exit)));
  }
  async function load() {
    const query = new URLSearchParams({ limit: String(limit) });
    for (const [key, value] of Object.entries(filter)) if (value) query.set(key, value);
    if (before) query.set("before", before);
    try {
      const page = await api("GET", "/v1/jobs?" + query);
      rows.clear();
      body.replaceChildren(...page.jobs.map((job) => { const r = row(job); rows.set(job.id, r); return r; }));
      if (!page.jobs.length) body.append(el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No jobs.")));
      newest = page.jobs.length ? page.jobs[0].created_at : "";
      const nav = [];
      if (before) nav.push(el("a", { href: "#/jobs" + (filter.state || filter.owner || filter.label || filter.q ? "?" + new URLSearchParams(Object.entries(filter).filter(([, v]) => v)) : "") }, "« newest"));
      if (page.next) {
        const next = new URLSearchParams(Object.entries(filter).filter(([, v]) => v));
        next.set("before", page.next);
        nav.push(el("a", { href: "#/jobs?" + next, id: "older" }, "older »"));
      }
      nav.push(el("span", { class: "status", id: "live" }, before ? "older page: state changes only" : "live"));
      pager.replaceChildren(...nav);
    } catch (error) {
      if (error.status !== 401) flash(error.message);
    }
  }
  load();
  return {
    onJob(job) {
      const existing = rows.get(job.id);
      if (existing) {
        const fresh = row(job);
        if (!matches(job)) { existing.remove(); rows.delete(job.id); return; }
        existing.replaceWith(fresh);
        rows.set(job.id, fresh);
        return;
      }
      // New jobs appear on the first page only, newest first.
      if (before || !matches(job) || (newest && job.created_at < newest)) return;
      const placeholder = body.querySelector("td[colspan]");
      if (placeholder) placeholder.parentNode.remove();
      const fresh = row(job);
      fresh.classList.add("fresh");
      body.prepend(fresh);
      rows.set(job.id, fresh);
      newest = job.created_at;
      while (body.children.length > limit) { const last = body.lastElementChild; rows.delete(last.getAttribute("data-id")); last.remove(); }
    },
    onReconnect: load,
  };
}

// ---------------------------------------------------------------------------------------------
// ANSI colours for job output: SGR sequences become classes, every other escape sequence is
// dropped, and the text itself is only ever a text node.

class AnsiLines {
  constructor(container, maxLines) {
    this.container = container;
    this.maxLines = maxLines;
    this.style = {};
    this.line = null;
    this.pending = "";
    this.newLine();
  }

  newLine() {
    this.line = el("div", { class: "line" });
    this.container.append(this.line);
    while (this.container.children.length > this.maxLines) this.container.firstElementChild.remove();
  }

  span(text) {
    if (!text) return;
    const s = this.style;
    const classes = [];
    if (s.bold) classes.push("b");
    if (s.dim) classes.push("d");
    if (s.italic) classes.push("i");
    if (s.underline) classes.push("u");
    let fg = s.fg, bg = s.bg;
    if (s.inverse) [fg, bg] = [bg ?? 7, fg ?? 0];
    if (typeof fg === "number") classes.push(`fg${fg}`);
    if (typeof bg === "number" && bg < 8) classes.push(`bg${bg}`);
    if (!classes.length && typeof fg !== "string" && typeof bg !== "string") { this.line.append(text); return; }
    const node = el("span", { class: classes.join(" ") || undefined }, text);
    if (typeof fg === "string") node.style.color = fg;
    if (typeof bg === "string") node.style.background = bg;
    else if (typeof bg === "number" && bg >= 8) node.style.background = xtermColour(bg);
    this.line.append(node);
  }

  sgr(params) {
    const codes = params === "" ? [0] : params.split(/[;:]/).map((p) => parseInt(p || "0", 10));
    for (let i = 0; i < codes.length; i++) {
      const c = codes[i];
      if (c === 0) this.style = {};
      else if (c === 1) this.style.bold = true;
      else if (c === 2) this.style.dim = true;
      else if (c === 3) this.style.italic = true;
      else if (c === 4) this.style.underline = true;
      else if (c === 7) this.style.inverse = true;
      else if (c === 22) { this.style.bold = false; this.style.dim = false; }
      else if (c === 23) this.style.italic = false;
      else if (c === 24) this.style.underline = false;
      else if (c === 27) this.style.inverse = false;
      else if (c >= 30 && c <= 37) this.style.fg = c - 30;
      else if (c >= 90 && c <= 97) this.style.fg = c - 90 + 8;
      else if (c === 39) delete this.style.fg;
      else if (c >= 40 && c <= 47) this.style.bg = c - 40;
      else if (c >= 100 && c <= 107) this.style.bg = c - 100 + 8;
      else if (c === 49) delete this.style.bg;
      else if ((c === 38 || c === 48) && codes[i + 1] === 5) {
        const n = codes[i + 2];
        const colour = n < 16 ? n : xtermColour(n);
        if (c === 38) this.style.fg = colour; else this.style.bg = colour;
        i += 2;
      } else if ((c === 38 || c === 48) && codes[i + 1] === 2) {
        const colour = `rgb(${codes[i + 2] | 0}, ${codes[i + 3] | 0}, ${codes[i + 4] | 0})`;
        if (c === 38) this.style.fg = colour; else this.style.bg = colour;
        i += 4;
      }
    }
  }

  write(text) {
    text = this.pending + text;
    this.pending = "";
    let plain = "";
    let i = 0;
    const flush = () => { this.span(plain); plain = ""; };
    while (i < text.length) {
      const ch = text[i];
      if (ch === "\x1b") {
        flush();
        const rest = text.slice(i);
        let match = /^\x1b\[([0-9;:?<=>]*)([ -\/]*)([@-~])/.exec(rest);
        if (match) {
          if (match[3] === "m" && !/[?<=>]/.test(match[1])) this.sgr(match[1]);
          i += match[0].length;
          continue;
        }
        match = /^\x1b\][^\x07\x1b]*(\x07|\x1b\\)/.exec(rest);
        if (match) { i += match[0].length; continue; }
        if (/^\x1b(\[[0-9;:?<=>]*[ -\/]*|\][^\x07\x1b]*|\x1b?)?$/.test(rest) && rest.length < 256) { this.pending = rest; return; }
        i += rest.length > 1 ? 2 : 1;
        continue;
      }
      if (ch === "\n") { flush(); this.newLine(); i++; continue; }
      if (ch === "\r") {
        flush();
        if (text[i + 1] === "\n" || (i + 1 === text.length)) { i++; continue; }
        this.line.replaceChildren();
        i++;
        continue;
      }
      if (ch < " " && ch !== "\t") { i++; continue; }
      plain += ch;
      i++;
    }
    flush();
  }

  note(text) {
    this.container.append(el("div", { class: "note" }, text));
    this.newLine();
  }
}

function xtermColour(n) {
  const base = ["#3b3b3b", "#ef4444", "#22c55e", "#eab308", "#3b82f6", "#d946ef", "#06b6d4", "#e5e5e5",
    "#737373", "#f87171", "#4ade80", "#facc15", "#60a5fa", "#e879f9", "#22d3ee", "#ffffff"];
  if (n < 16) return base[n];
  if (n >= 232) { const v = 8 + (n - 232) * 10; return `rgb(${v}, ${v}, ${v})`; }
  const i = n - 16, steps = [0, 95, 135, 175, 215, 255];
  return `rgb(${steps[Math.floor(i / 36)]}, ${steps[Math.floor(i / 6) % 6]}, ${steps[i % 6]})`;
}

// ---------------------------------------------------------------------------------------------
// Attaching: the hub's attach WebSocket, resumed from the last byte after a drop.
// Output frames are [stream: 1 stdout, 2 stderr][offset: u64 big-endian][bytes].

function attach(id, { readOnly, offsets, onOutput, onExit, onError, onStatus }) {
  const next = { 1: offsets.stdout || 0, 2: offsets.stderr || 0 };
  let socket = null;
  let stopped = false;
  let ended = false;
  let retry = 500;
  let timer = null;
  let onOpen = null;
  let connectedOnce = false;
  function connect() {
    const query = new URLSearchParams({ stdout: String(next[1]), stderr: String(next[2]) });
    if (readOnly) query.set("mode", "read-only");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}/v1/jobs/${id}/attach?${query}`);
    socket.binaryType = "arraybuffer";
    onStatus && onStatus(connectedOnce ? "reconnecting…" : "connecting…");
    socket.addEventListener("open", () => {
      retry = 500;
      connectedOnce = true;
      onStatus && onStatus("attached");
      onOpen && onOpen();
    });
    socket.addEventListener("message", (event) => {
      if (typeof event.data === "string") {
        const notice = JSON.parse(event.data);
        if (notice.type === "exit") { ended = true; onExit && onExit(notice.job); socket.close(); }
        else if (notice.type === "error") onError && onError(notice.message);
        return;
      }
      const frame = new DataView(event.data);
      const stream = frame.getUint8(0);
      const offset = frame.getUint32(1) * 4294967296 + frame.getUint32(5);
      let data = new Uint8Array(event.data, 9);
      const expected = next[stream] || 0;
      if (offset + data.length <= expected) return; // already shown before a reconnect
      if (offset < expected) data = data.subarray(expected - offset);
      // A frame past the expected offset is a gap the hub could not fill: shown as such.
      next[stream] = Math.max(offset, expected) + data.length;
      onOutput(stream, data, offset > expected);
    });
    socket.addEventListener("close", (event) => {
      if (stopped || ended) return;
      if (event.code === 1008) { onStatus && onStatus(event.reason || "closed by the hub", true); checkSession(); return; }
      onStatus && onStatus(`connection lost; reconnecting in ${(retry / 1000).toFixed(1)} s`, true);
      timer = setTimeout(connect, retry);
      retry = Math.min(retry * 2, 5000);
    });
  }
  connect();
  return {
    send(data) { if (socket && socket.readyState === WebSocket.OPEN) socket.send(data); },
    control(message) { if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message)); },
    set onOpen(callback) { onOpen = callback; },
    offsets: next,
    stop() { stopped = true; clearTimeout(timer); if (socket) socket.close(); },
  };
}

// ---------------------------------------------------------------------------------------------
// A job's page: what it is, its output live (a bounded tail), and what may be done to it.

const tailLines = 5000;
const tailBytes = 512 * 1024;

function jobView(id) {
  const facts = el("dl", { class: "facts", id: "facts" });
  const actions = el("div", { class: "actions", id: "actions" });
  const outPane = el("pre", { class: "output", id: "stdout", tabindex: 0 });
  const errPane = el("pre", { class: "output", id: "stderr", tabindex: 0 });
  const outHead = el("div", { class: "stream-head" }, el("h2", {}, "stdout"), el("a", { href: `/v1/jobs/${id}/stdout`, download: `${id}.stdout`, id: "download-stdout" }, "download full output"), el("span", { class: "status", id: "stdout-size" }));
  const errHead = el("div", { class: "stream-head" }, el("h2", {}, "stderr"), el("a", { href: `/v1/jobs/${id}/stderr`, download: `${id}.stderr` }, "download full output"), el("span", { class: "status", id: "stderr-size" }));
  const status = el("span", { class: "status", id: "attach-status" });
  const transcripts = el("div", { id: "transcripts" });
  show(el("h1", {}, "Job ", el("span", { class: "mono" }, id)), facts, actions, outHead, outPane, errHead, errPane, status, transcripts);
  const panes = { 1: new AnsiLines(outPane, tailLines), 2: new AnsiLines(errPane, tailLines) };
  const decoders = { 1: new TextDecoder(), 2: new TextDecoder() };
  const follow = { 1: true, 2: true };
  for (const [stream, pane] of [[1, outPane], [2, errPane]]) {
    pane.addEventListener("scroll", () => { follow[stream] = pane.scrollTop + pane.clientHeight >= pane.scrollHeight - 4; });
  }
  let job = null;
  let session = null;
  let stopped = false;

  function render(current) {
    job = current;
    const exit = job.signal ? `signal ${job.signal}` : job.exit_code;
    const rows = [
      ["state", stateBadge(job.state)], ["command", el("span", { class: "mono" }, commandLine(job))],
      ["name", job.name], ["program", job.program], ["cwd", job.cwd], ["owner", job.owner], ["worker", job.worker],
      ["labels", job.labels && Object.entries(job.labels).map(([k, v]) => `${k}=${v}`).join(", ")],
      ["terminal", job.tty ? `tty ${job.tty.cols}×${job.tty.rows}` : job.interactive ? "interactive (stdin open)" : null],
      ["submitted", when(job.created_at)], ["started", when(job.started_at)], ["finished", when(job.finished_at)],
      ["took", job.started_at ? took(job.started_at, job.finished_at) : null],
      ["exit", exit === undefined || exit === null ? null : String(exit)], ["err", job.err],
      ["waiting", job.waiting], ["attempts", job.attempts ? `${job.attempts}${job.retries ? ` (retries allowed: ${job.retries})` : ""}` : null],
      ["timeout", job.timeout ? `${job.timeout} s` : null],
      ["callback", job.callback ? `${job.callback} — ${job.callback_status || "pending"}${job.callback_delivery ? `, ${job.callback_delivery.attempts} attempt(s)${job.callback_delivery.last_error ? `: ${job.callback_delivery.last_error}` : ""}${job.callback_delivery.status ? ` (HTTP ${job.callback_delivery.status})` : ""}` : ""}` : null],
      ["usage", job.usage ? `CPU ${job.usage.cpu_user_seconds ?? "?"} s user, ${job.usage.cpu_system_seconds ?? "?"} s system${job.usage.peak_memory_bytes ? `, peak ${bytes(job.usage.peak_memory_bytes)}` : ""}` : null],
      ["limits", job.limits && Object.entries(job.limits).map(([k, v]) => `${k} ${v}`).join(", ")],
      ["isolated", job.isolate ? (job.network ? "yes, with network" : "yes, no network") : null],
    ];
    facts.replaceChildren(...rows.filter(([, v]) => v !== null && v !== undefined && v !== "").flatMap(([k, v]) => [el("dt", {}, k), el("dd", { "data-fact": k }, v)]));
    document.getElementById("stdout-size").textContent = `${bytes(job.stdout_bytes)}${job.stdout_truncated ? " (truncated at the hub's cap)" : ""}`;
    document.getElementById("stderr-size").textContent = `${bytes(job.stderr_bytes)}${job.stderr_truncated ? " (truncated at the hub's cap)" : ""}`;
    const running = !terminalStates.includes(job.state);
    const buttons = [];
    if ((job.tty || job.interactive)) buttons.push(el("a", { href: `#/jobs/${id}/terminal`, id: "open-terminal" }, running ? "Open terminal" : "Terminal replay"));
    if (running && mayControl(job)) {
      buttons.push(el("button", { class: "danger", id: "cancel", onclick: async () => {
        try { render(await api("POST", `/v1/jobs/${id}/cancel`)); } catch (error) { flash(error.message); }
      } }, "Cancel"));
      const signal = el("select", { id: "signal-name" }, ["INT", "TERM", "HUP", "QUIT", "USR1", "USR2", "KILL"].map((s) => el("option", { value: s }, `SIG${s}`)));
      buttons.push(signal, el("button", { id: "send-signal", onclick: async () => {
        try { await api("POST", `/v1/jobs/${id}/signal`, { signal: signal.value }); flash(`Sent SIG${signal.value}.`, "info"); } catch (error) { flash(error.message); }
      } }, "Send signal"));
    }
    actions.replaceChildren(...buttons);
  }

  function output(stream, data, gap) {
    const pane = stream === 1 ? outPane : errPane;
    if (gap) panes[stream].note("… output the hub no longer holds is skipped …");
    panes[stream].write(decoders[stream].decode(data, { stream: true }));
    if (follow[stream]) pane.scrollTop = pane.scrollHeight;
  }

  async function loadTranscripts() {
    if (role() !== "admin") return;
    try {
      const list = await api("GET", `/v1/jobs/${id}/transcripts`);
      if (!list.transcripts.length) return;
      transcripts.replaceChildren(el("h2", {}, "Attach sessions (recorded)"),
        el("ul", {}, list.transcripts.map((t) => el("li", {}, el("a", { href: `#/jobs/${id}/transcripts/${t.session}` }, `session ${t.session}`),
          ` — ${t.token || "no token"} from ${t.peer}, ${when(t.started_at)}${t.ended_at ? ` to ${when(t.ended_at)}` : ", still attached"}, ${t.events} events`))));
    } catch (error) { /* not shown */ }
  }

  // A change that comes while the first read is on its way is not applied to a job not shown yet,
  // and that read may predate it (seen: a job page stuck on assigned): read again after it.
  let changedWhileLoading = false;
  (async () => {
    try {
      let current = await api("GET", `/v1/jobs/${id}`);
      if (stopped) return;
      render(current);
      if (changedWhileLoading) {
        current = await api("GET", `/v1/jobs/${id}`);
        if (stopped) return;
        render(current);
      }
      // Only the tail: a job that printed 100 MB must not make the page read it all.
      const offsets = { stdout: Math.max(0, current.stdout_bytes - tailBytes), stderr: Math.max(0, current.stderr_bytes - tailBytes) };
      for (const [stream, offset] of [[1, offsets.stdout], [2, offsets.stderr]]) {
        if (offset > 0) panes[stream].note(`… ${bytes(offset)} earlier: see "download full output" …`);
      }
      session = attach(id, {
        readOnly: true, offsets,
        onOutput: output,
        onExit: (ended) => { render(ended); status.textContent = `ended: ${ended.state}`; loadTranscripts(); },
        onError: (message) => flash(message),
        onStatus: (text, bad) => { status.textContent = text; status.className = bad ? "status bad" : "status"; },
      });
      loadTranscripts();
    } catch (error) {
      if (error.status !== 401) show(el("h1", {}, "Job ", el("span", { class: "mono" }, id)), el("p", { class: "status bad" }, error.message));
    }
  })();
  return {
    onJob(changed) {
      if (changed.id !== id) return;
      if (job) render(Object.assign({}, job, changed)); else changedWhileLoading = true;
    },
    async onReconnect() {
      try {
        const current = await api("GET", `/v1/jobs/${id}`);
        if (!stopped && job) render(current);
      } catch (error) { /* shown by the next change */ }
    },
    stop() { stopped = true; if (session) session.stop(); },
  };
}

// ---------------------------------------------------------------------------------------------
// The terminal: xterm.js over the attach WebSocket, or a line mode without it.

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = el("script", { src });
    script.addEventListener("load", resolve);
    script.addEventListener("error", () => reject(new Error(`cannot load ${src}`)));
    document.head.append(script);
  });
}

async function loadXterm() {
  if (app.xterm) return app.xterm;
  if (!app.session.xterm) return null;
  document.head.append(el("link", { rel: "stylesheet", href: "/ui/xterm/xterm.css" }));
  await loadScript("/ui/xterm/xterm.js");
  try { await loadScript("/ui/xterm/xterm-addon-fit.js"); } catch (error) { /* sized by hand below */ }
  app.xterm = { Terminal: window.Terminal, FitAddon: window.FitAddon && window.FitAddon.FitAddon };
  return app.xterm;
}

function terminalView(id, params) {
  const status = el("span", { class: "status", id: "terminal-status" });
  const mode = el("span", { class: "status", id: "terminal-mode" });
  const box = el("div", { id: "terminal" });
  const head = el("div", { class: "actions" }, el("a", { href: `#/jobs/${id}` }, "« job"), status, mode);
  show(el("h1", {}, "Terminal ", el("span", { class: "mono" }, id.slice(0, 12))), head, box);
  let session = null;
  let term = null;
  let stopped = false;
  const cleanups = [];

  (async () => {
    let job;
    try { job = await api("GET", `/v1/jobs/${id}`); } catch (error) { flash(error.message); return; }
    if (stopped) return;
    const ended = terminalStates.includes(job.state);
    const readOnly = !mayControl(job) || ended;
    const lib = params.get("mode") === "line" ? null : await loadXterm().catch((error) => { flash(error.message); return null; });
    if (stopped) return;
    const controls = [];
    if (!readOnly) {
      controls.push(el("button", { id: "detach", onclick: () => { session.control({ type: "detach" }); location.hash = `#/jobs/${id}`; } }, "Detach"));
      controls.push(el("button", { class: "danger", id: "terminate", onclick: () => session.control({ type: "terminate" }) }, "Terminate"));
    }
    head.append(...controls);
    mode.textContent = readOnly ? (ended ? "the job ended: replay, read-only" : "read-only: this token cannot type into the job") : "";
    if (lib) {
      term = new lib.Terminal({ convertEol: !job.tty, scrollback: 5000, disableStdin: readOnly, cursorBlink: !readOnly,
        fontFamily: '"DejaVu Sans Mono", ui-monospace, monospace', fontSize: 14, theme: { background: "#1d1f21" } });
      window.xnTerminal = term; // for the browser tests and the curious: the buffer is readable from the console
      const fit = lib.FitAddon ? new lib.FitAddon() : null;
      if (fit) term.loadAddon(fit);
      term.open(box);
      const resize = () => { if (fit) fit.fit(); };
      resize();
      window.addEventListener("resize", resize);
      cleanups.push(() => window.removeEventListener("resize", resize));
      const encoder = new TextEncoder();
      session = attach(id, {
        readOnly, offsets: {},
        onOutput: (stream, data) => term.write(data),
        onExit: (j) => { term.write(`\r\n\x1b[2m[job ${j.state}${j.exit_code !== undefined && j.exit_code !== null ? `, exit ${j.exit_code}` : ""}${j.signal ? `, signal ${j.signal}` : ""}]\x1b[0m\r\n`); status.textContent = `ended: ${j.state}`; },
        onError: (message) => flash(message),
        onStatus: (text, bad) => { status.textContent = text; status.className = bad ? "status bad" : "status"; },
      });
      const sendSize = () => { if (!readOnly) session.control({ type: "resize", rows: term.rows, cols: term.cols }); };
      session.onOpen = sendSize;
      term.onResize(sendSize);
      if (!readOnly) term.onData((data) => session.send(encoder.encode(data)));
      term.focus();
    } else {
      mode.textContent += (mode.textContent ? "; " : "") + (app.session.xterm ? "line mode" : "line mode: this hub serves no xterm.js (scripts/fetch-xterm.sh installs it)");
      const pre = el("pre", { class: "output", id: "line-output" });
      const lines = new AnsiLines(pre, tailLines);
      const decoder = new TextDecoder();
      const input = el("input", { id: "line-input", autocomplete: "off", disabled: readOnly, placeholder: readOnly ? "read-only" : "type a line, Enter sends it" });
      const encoder = new TextEncoder();
      const form = el("form", { class: "actions line-mode" }, input, el("button", { type: "submit", disabled: readOnly }, "Send"),
        el("button", { type: "button", disabled: readOnly, onclick: () => session.send(encoder.encode("\x03")) }, "Ctrl-C"),
        el("button", { type: "button", disabled: readOnly, onclick: () => (job.tty ? session.send(encoder.encode("\x04")) : session.control({ type: "close_stdin" })) }, "Ctrl-D"));
      form.addEventListener("submit", (event) => { event.preventDefault(); session.send(encoder.encode(input.value + (job.tty ? "\r" : "\n"))); input.value = ""; });
      box.replaceWith(el("div", {}, pre, form));
      session = attach(id, {
        readOnly, offsets: {},
        onOutput: (stream, data) => { lines.write(decoder.decode(data, { stream: true })); pre.scrollTop = pre.scrollHeight; },
        onExit: (j) => { lines.note(`[job ${j.state}]`); status.textContent = `ended: ${j.state}`; },
        onError: (message) => flash(message),
        onStatus: (text, bad) => { status.textContent = text; status.className = bad ? "status bad" : "status"; },
      });
      if (!readOnly) input.focus();
    }
  })();
  return {
    stop() {
      stopped = true;
      if (session) session.stop();
      for (const cleanup of cleanups) cleanup();
      if (term) term.dispose();
      window.xnTerminal = undefined;
    },
  };
}

async function newTerminal() {
  const rows = 30, cols = 100;
  try {
    const job = await api("POST", "/v1/jobs", { command: "bash", args: ["-l"], tty: { rows, cols } });
    location.hash = `#/jobs/${job.id}/terminal`;
  } catch (error) {
    flash(error.message);
  }
}

// ---------------------------------------------------------------------------------------------
// An attach session's transcript (asciicast v2), replayed at its recorded pace.

function transcriptView(id, sessionNumber) {
  const box = el("div", { id: "terminal" });
  const status = el("span", { class: "status", id: "replay-status" });
  const skip = el("button", { id: "replay-skip" }, "Skip to the end");
  show(el("h1", {}, `Transcript of session ${sessionNumber}`), el("div", { class: "actions" }, el("a", { href: `#/jobs/${id}` }, "« job"), status, skip), box);
  let timer = null;
  let term = null;
  let stopped = false;
  (async () => {
    let text;
    try {
      const response = await fetch(`/v1/jobs/${id}/transcripts/${sessionNumber}`, { credentials: "same-origin" });
      if (!response.ok) throw new Error((await response.json().catch(() => ({}))).error?.message || `HTTP ${response.status}`);
      text = await response.text();
    } catch (error) { flash(error.message); return; }
    const lib = await loadXterm().catch(() => null);
    if (stopped) return;
    const [headerLine, ...eventLines] = text.split("\n").filter(Boolean);
    const header = JSON.parse(headerLine);
    const events = eventLines.map((line) => JSON.parse(line));
    let write;
    if (lib) {
      term = new lib.Terminal({ cols: header.width || 80, rows: header.height || 24, disableStdin: true, convertEol: false, scrollback: 5000 });
      term.open(box);
      window.xnTerminal = term;
      write = (data) => term.write(data);
    } else {
      const pre = el("pre", { class: "output" });
      box.replaceWith(pre);
      const lines = new AnsiLines(pre, tailLines);
      write = (data) => lines.write(data);
    }
    let index = 0;
    const started = performance.now();
    const step = (all) => {
      while (index < events.length && (all || events[index][0] * 1000 <= performance.now() - started)) {
        const [, kind, data] = events[index++];
        if (kind === "o") write(data);
        else if (kind === "r" && term) { const [c, r] = String(data).split("x").map(Number); if (c && r) term.resize(c, r); }
      }
      status.textContent = index < events.length ? `playing: ${index} of ${events.length} events` : `done: ${events.length} events`;
      if (index < events.length && !stopped) timer = setTimeout(() => step(false), Math.max(0, Math.min(1000, events[index][0] * 1000 - (performance.now() - started))));
    };
    skip.addEventListener("click", () => { clearTimeout(timer); step(true); });
    step(false);
  })();
  return { stop() { stopped = true; clearTimeout(timer); if (term) term.dispose(); window.xnTerminal = undefined; } };
}

// ---------------------------------------------------------------------------------------------
// Submitting a job.

function submitView() {
  const field = (name, input, hint) => [el("label", { for: name }, name), el("div", {}, input, hint ? el("div", { class: "muted" }, hint) : null)];
  const command = el("input", { id: "command", name: "command", required: true, size: 40, placeholder: "echo" });
  const args = el("textarea", { id: "args", name: "args", placeholder: "one argument per line" });
  const env = el("textarea", { id: "env", name: "env", placeholder: "KEY=VALUE, one per line" });
  const cwd = el("input", { id: "cwd", name: "cwd", size: 40 });
  const labels = el("textarea", { id: "labels", name: "labels", placeholder: "key=value, one per line: runs on a worker with them" });
  const timeout = el("input", { id: "timeout", name: "timeout", type: "number", min: "0", step: "any", placeholder: "seconds" });
  const tty = el("input", { id: "tty", name: "tty", type: "checkbox" });
  const form = el("form", { class: "stack", id: "submit-form" },
    field("command", command), field("args", args), field("env", env), field("cwd", cwd), field("labels", labels),
    field("timeout", timeout), field("tty", el("span", {}, tty, " give it a terminal (then open it in the browser)")),
    el("span", {}), el("div", {}, el("button", { class: "primary", type: "submit", id: "submit-job" }, "Submit")));
  const pairs = (text, what) => {
    const out = {};
    for (const line of text.split("\n").map((l) => l.trim()).filter(Boolean)) {
      const at = line.indexOf("=");
      if (at < 1) throw new Error(`${what}: '${line}' is not KEY=VALUE`);
      out[line.slice(0, at)] = line.slice(at + 1);
    }
    return out;
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const spec = { command: command.value.trim() };
      const list = args.value.split("\n").filter((line, i, all) => line !== "" || i < all.length - 1);
      if (list.length) spec.args = list;
      const environment = pairs(env.value, "env");
      if (Object.keys(environment).length) spec.env = environment;
      if (cwd.value.trim()) spec.cwd = cwd.value.trim();
      const labelSet = pairs(labels.value, "labels");
      if (Object.keys(labelSet).length) spec.labels = labelSet;
      if (timeout.value) spec.timeout = Number(timeout.value);
      if (tty.checked) spec.tty = { rows: 30, cols: 100 };
      const job = await api("POST", "/v1/jobs", spec);
      location.hash = tty.checked ? `#/jobs/${job.id}/terminal` : `#/jobs/${job.id}`;
    } catch (error) {
      flash(error.message);
    }
  });
  show(el("h1", {}, "Submit a job"), form);
  command.focus();
  return {};
}

// ---------------------------------------------------------------------------------------------
// Workers and tokens.

function workersView() {
  const body = el("tbody", { id: "workers" });
  show(el("h1", {}, "Workers"), el("table", {}, el("thead", {}, el("tr", {}, ["name", "labels", "slots used", "connected", "last heartbeat", "version", ""].map((h) => el("th", {}, h)))), body),
    el("p", { class: "muted" }, "Refreshed every 5 seconds."));
  async function load() {
    try {
      const list = await api("GET", "/v1/workers");
      body.replaceChildren(...list.workers.map((w) => el("tr", { "data-worker": w.name },
        el("td", {}, w.name), el("td", { class: "mono" }, Object.entries(w.labels || {}).map(([k, v]) => `${k}=${v}`).join(", ")),
        el("td", {}, `${w.running} / ${w.slots}`), el("td", {}, when(w.connected_at)), el("td", {}, when(w.last_heartbeat)),
        el("td", {}, w.version), el("td", {}, w.draining ? "draining" : ""))));
      if (!list.workers.length) body.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No workers connected.")));
    } catch (error) { if (error.status !== 401) flash(error.message); }
  }
  load();
  const timer = setInterval(load, 5000);
  return { stop() { clearInterval(timer); } };
}

function tokensView() {
  const body = el("tbody", { id: "tokens" });
  const created = el("div", { id: "created-token" });
  const name = el("input", { id: "token-name", required: true, placeholder: "name", size: 16 });
  const roleSelect = el("select", { id: "token-role" }, ["read", "submit", "admin", "worker"].map((r) => el("option", { value: r, selected: r === "submit" }, r)));
  const form = el("form", { class: "filters", id: "token-form" }, name, roleSelect, el("button", { class: "primary", type: "submit" }, "Create token"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const token = await api("POST", "/v1/tokens", { name: name.value.trim(), role: roleSelect.value });
      created.replaceChildren(el("p", {}, `Token '${token.name}' (${token.role}). Copy it now: it is not shown again.`), el("div", { class: "secret" }, token.token || token.secret || ""));
      name.value = "";
      load();
    } catch (error) { flash(error.message); }
  });
  show(el("h1", {}, "Tokens"), form, created,
    el("table", {}, el("thead", {}, el("tr", {}, ["name", "role", "labels", "allow", "created", "revoked", ""].map((h) => el("th", {}, h)))), body));
  async function load() {
    try {
      const list = await api("GET", "/v1/tokens");
      body.replaceChildren(...list.tokens.map((t) => el("tr", { "data-token": t.name },
        el("td", {}, t.name), el("td", {}, t.role), el("td", { class: "mono" }, Object.entries(t.labels || {}).map(([k, v]) => `${k}=${v}`).join(", ")),
        el("td", { class: "mono" }, (t.allow || []).join(", ")), el("td", {}, when(t.created_at)), el("td", {}, when(t.revoked_at)),
        el("td", {}, t.revoked_at ? "" : el("button", { class: "danger", onclick: async () => {
          if (!confirm(`Revoke token '${t.name}'? Its sessions end at once.`)) return;
          try { await api("DELETE", `/v1/tokens/${encodeURIComponent(t.name)}`); load(); } catch (error) { flash(error.message); }
        } }, "Revoke")))));
    } catch (error) { if (error.status !== 401) flash(error.message); }
  }
  load();
  return {};
}

document.addEventListener("DOMContentLoaded", start);

// The Weir console's script. Pages are rendered on the server; this adds
// what needs a browser: the live stream, charts, and the requests that
// change something (to the /v1 API, with the session's CSRF token).
// Text from the server is only ever set with textContent, never as HTML.
"use strict";

(function () {
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const c of children || []) e.append(c);
    return e;
  }

  async function api(method, url, body) {
    const headers = { "X-CSRF-Token": csrf };
    const init = { method, headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    return { ok: response.ok, status: response.status, data: data || {} };
  }

  function text(v) {
    if (v === null || v === undefined) return "";
    if (Array.isArray(v)) return v.map(text).join(", ");
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }

  function pointer(obj, path) {
    return path.split("/").slice(1).reduce((o, k) => (o == null ? o : o[k]), obj);
  }

  function say(target, message, isError) {
    target.replaceChildren(el("p", { class: isError ? "error" : "ok", text: message }));
  }

  // A gate refusal: the rendered diagnostics and the failing tests.
  function refusal(data) {
    const parts = [el("p", { class: "error", text: data.error || "The compile and test gate refuses it:" })];
    if (data.rendered) parts.push(el("pre", { class: "diag", text: data.rendered }));
    for (const t of data.tests || []) {
      parts.push(el("p", { class: "error", text: `test "${t.test}" (${t.file}:${t.line}) failed: ${(t.failures || []).join("; ")}` }));
    }
    return parts;
  }

  // ---- Overview ----
  const VERDICTS = ["accept", "reject", "tempfail", "discard", "quarantine"];
  const COLOURS = ["#2e7d32", "#c62828", "#ef6c00", "#6d4c41", "#6a1b9a"];
  const charts = {};

  function drawChart(id, series) {
    const node = document.getElementById(id);
    if (!node || typeof uPlot === "undefined") return;
    const data = [series.t].concat(VERDICTS.map((v) => series[v]));
    const width = Math.max(280, node.clientWidth);
    if (charts[id]) {
      charts[id].setData(data);
      charts[id].setSize({ width, height: 220 });
      return;
    }
    const opts = {
      width, height: 220,
      series: [{}].concat(VERDICTS.map((v, i) => ({ label: v, stroke: COLOURS[i], width: 2 }))),
      axes: [{ stroke: "currentColor" }, { stroke: "currentColor", label: "per minute" }],
    };
    charts[id] = new uPlot(opts, data, node);
  }

  async function refreshOverview() {
    const r = await api("GET", "/v1/stats");
    if (!r.ok) return;
    for (const node of document.querySelectorAll("[data-stat]")) {
      let v = pointer(r.data, node.dataset.stat);
      if (node.dataset.unit === "s" && typeof v === "number") v = (v * 1000).toFixed(3) + " ms";
      node.textContent = text(v);
    }
    drawChart("chart-hour", r.data.hour);
    drawChart("chart-day", r.data.day);
    const body = document.querySelector("#top-rules tbody");
    if (body) {
      body.replaceChildren(...(r.data.top_rules || []).map((t) =>
        el("tr", {}, [el("td", { text: t.rule }), el("td", { text: text(t.hits) })])));
    }
  }

  function overview() {
    refreshOverview();
    setInterval(refreshOverview, 5000);
  }

  // ---- Live ----
  function liveRow(entry) {
    const verdict = entry.verdict || entry.act || entry.quarantine || "";
    const row = el("tr", { "data-id": text(entry.id) }, [
      el("td", { text: new Date(entry.time).toLocaleTimeString() }),
      el("td", {}, [el("span", { class: "verdict v-" + verdict, text: verdict })]),
      el("td", { text: text(entry.from) }),
      el("td", { text: text(entry.to || entry.recipient) }),
      el("td", { text: text(entry.matched) }),
      el("td", { text: text(entry.tags) }),
      el("td", {}, [el("a", { href: "/console/message/" + entry.id, text: "open " + entry.id })]),
    ]);
    row.entry = entry;
    return row;
  }

  function liveMatches(entry, form) {
    const f = Object.fromEntries(new FormData(form).entries());
    const has = (value, needle) => text(value).toLowerCase().includes(needle.toLowerCase());
    if (f.verdict && entry.verdict !== f.verdict) return false;
    if (f.rule && !(entry.matched || []).includes(f.rule)) return false;
    if (f.tag && !(entry.tags || []).includes(f.tag)) return false;
    if (f.from && !has(entry.from, f.from)) return false;
    if (f.to && !has([].concat(entry.to || [], entry.recipient || []), f.to)) return false;
    return true;
  }

  function live() {
    const form = document.getElementById("live-filter");
    const rows = document.getElementById("live-rows");
    const status = document.getElementById("live-status");
    const pause = document.getElementById("live-pause");
    let paused = false;
    const waiting = [];
    const show = (entry) => {
      if (rows.querySelector(`tr[data-id="${entry.id}"]`)) return;
      const row = liveRow(entry);
      row.hidden = !liveMatches(entry, form);
      rows.prepend(row);
      while (rows.children.length > 500) rows.lastChild.remove();
    };
    form.addEventListener("input", () => {
      for (const row of rows.children) row.hidden = !liveMatches(row.entry, form);
    });
    form.addEventListener("submit", (e) => e.preventDefault());
    pause.addEventListener("click", () => {
      paused = !paused;
      pause.setAttribute("aria-pressed", String(paused));
      pause.textContent = paused ? "Resume" : "Pause";
      if (!paused) while (waiting.length) show(waiting.shift());
      status.textContent = paused ? "Paused: new decisions wait." : "Live.";
    });
    api("GET", "/v1/actions?limit=50").then((r) => {
      if (r.ok && Array.isArray(r.data)) r.data.forEach(show);
    });
    const source = new EventSource("/v1/events");
    source.addEventListener("open", () => { status.textContent = paused ? "Paused: new decisions wait." : "Live."; });
    source.addEventListener("error", () => { status.textContent = "Disconnected; reconnecting…"; });
    source.addEventListener("decision", (e) => {
      const entry = JSON.parse(e.data);
      if (paused) waiting.push(entry);
      else show(entry);
    });
    source.addEventListener("lagged", (e) => {
      status.textContent = `Missed ${JSON.parse(e.data).missed} decisions (too slow).`;
    });
  }

  // ---- Quarantine ----
  async function quarantineAct(act, id) {
    return act === "release"
      ? api("POST", `/v1/quarantine/${encodeURIComponent(id)}/release`)
      : api("DELETE", `/v1/quarantine/${encodeURIComponent(id)}`);
  }

  function quarantine() {
    const main = document.getElementById("main");
    const status = el("div", { role: "status", "aria-live": "polite", id: "quarantine-status" });
    main.append(status);
    const done = (results) => {
      const failed = results.filter((r) => !r.ok);
      if (failed.length) {
        say(status, failed.map((r) => r.data.error || `HTTP ${r.status}`).join("; "), true);
      } else if (location.pathname !== "/console/quarantine") {
        location.assign("/console/quarantine");
      } else {
        location.reload();
      }
    };
    for (const button of document.querySelectorAll("button[data-act]")) {
      button.addEventListener("click", async () => {
        const { act, id } = button.dataset;
        if (!window.confirm(`${act === "release" ? "Release" : "Delete"} ${id}?`)) return;
        done([await quarantineAct(act, id)]);
      });
    }
    for (const button of document.querySelectorAll("button[data-bulk]")) {
      button.addEventListener("click", async () => {
        const act = button.dataset.bulk;
        const ids = [...document.querySelectorAll("input.select:checked")].map((c) => c.value);
        if (!ids.length) { say(status, "Select messages first.", true); return; }
        if (!window.confirm(`${act === "release" ? "Release" : "Delete"} ${ids.length} message(s)?`)) return;
        const results = [];
        for (const id of ids) results.push(await quarantineAct(act, id));
        done(results);
      });
    }
  }

  // ---- Rules ----
  function rules() {
    const button = document.getElementById("reload");
    const out = document.getElementById("reload-result");
    if (!button) return;
    button.addEventListener("click", async () => {
      button.disabled = true;
      const r = await api("POST", "/v1/reload");
      button.disabled = false;
      if (r.ok) say(out, `Reloaded: version ${r.data.version} runs.`, false);
      else out.replaceChildren(...refusal(r.data), el("p", { text: `Version ${text(r.data.version)} keeps running.` }));
    });
  }

  // ---- Playground ----
  function playground() {
    const source = document.getElementById("pg-source");
    const diagnostics = document.getElementById("pg-diagnostics");
    const result = document.getElementById("pg-result");
    const message = document.getElementById("pg-message");
    let timer = null;
    let asked = 0;
    const check = async () => {
      const mine = ++asked;
      const r = await api("POST", "/v1/playground/check", { source: source.value });
      if (mine !== asked) return;
      if (r.ok && r.data.ok) say(diagnostics, `No problems: ${r.data.rules} rules compile and every test passes.`, false);
      else diagnostics.replaceChildren(...refusal(r.data));
    };
    source.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(check, 400); });
    document.getElementById("pg-file").addEventListener("change", async (e) => {
      const file = e.target.files[0];
      if (file) message.value = await file.text();
    });
    document.getElementById("pg-run").addEventListener("click", async () => {
      const to = document.getElementById("pg-to").value.trim();
      const r = await api("POST", "/v1/playground/run", {
        source: source.value, message: message.value,
        from: document.getElementById("pg-from").value, to: to ? [to] : [],
      });
      if (!r.ok) { result.replaceChildren(...refusal(r.data)); return; }
      result.replaceChildren(runView(r.data));
    });
    document.getElementById("pg-backtest").addEventListener("click", async () => {
      const limit = Number(document.getElementById("pg-limit").value) || 100;
      const r = await api("POST", "/v1/playground/backtest", { source: source.value, limit });
      if (!r.ok) { result.replaceChildren(...refusal(r.data)); return; }
      result.replaceChildren(backtestView(r.data));
    });
    const deploy = document.getElementById("pg-deploy");
    if (deploy) {
      deploy.addEventListener("click", async () => {
        if (!window.confirm("Deploy this ruleset? It replaces the rules file and is reloaded.")) return;
        const r = await api("POST", "/v1/playground/deploy", { source: source.value });
        if (r.ok) say(result, `Deployed: version ${r.data.version} runs.`, false);
        else result.replaceChildren(...refusal(r.data), el("p", { id: "pg-running", text: `Version ${text(r.data.version)} keeps running.` }));
      });
    }
    check();
  }

  function marked(sourceText, highlights) {
    const pre = el("pre", { class: "source" });
    const marks = [...(highlights || [])].sort((a, b) => a.start - b.start);
    // Offsets are UTF-8 bytes; walk the text by bytes.
    const bytes = new TextEncoder().encode(sourceText);
    const decode = (a, b) => new TextDecoder().decode(bytes.slice(a, b));
    let at = 0;
    for (const m of marks) {
      if (m.start < at) continue;
      pre.append(decode(at, m.start), el("mark", { title: "matched by rule " + m.rule, text: decode(m.start, m.end) }));
      at = m.end;
    }
    pre.append(decode(at, bytes.length));
    return pre;
  }

  function runView(d) {
    const trace = el("table", { class: "trace" }, [
      el("thead", {}, [el("tr", {}, ["Rule", "Held", "Test", "Value"].map((h) => el("th", { scope: "col", text: h })))]),
      el("tbody", {}, (d.trace || []).map((t) => el("tr", { class: t.held ? "held" : "" }, [
        el("td", { text: t.rule }), el("td", { text: t.held ? "yes" : "no" }),
        el("td", { text: t.evidence ? t.evidence.expr : "" }), el("td", { text: t.evidence ? t.evidence.value : "" }),
      ]))),
    ]);
    return el("div", {}, [
      el("p", {}, ["Verdict: ", el("span", { class: "verdict v-" + d.verdict, text: d.verdict }),
        ` — matched ${text(d.matched) || "no rule"}; tags ${text(d.tags) || "none"}`]),
      trace, marked(d.source || "", d.highlights),
    ]);
  }

  function backtestView(d) {
    const rows = (d.changed || []).map((c) => el("tr", {}, [
      el("td", {}, [el("a", { href: "/console/message/" + c.id, text: String(c.id) })]),
      el("td", { text: text(c.message_id) }),
      el("td", {}, Object.entries(c.changes).map(([k, v]) =>
        el("div", { text: `${k}: ${JSON.stringify(v.old)} -> ${JSON.stringify(v.new)}` }))),
    ]));
    const summary = el("p", { id: "pg-backtest-summary", text: `${d.changed.length} of ${d.compared} kept messages would be decided differently (running version ${d.running_version}).` });
    if (!d.kept) summary.textContent += " No messages are kept: set [http] keep_messages.";
    return el("div", {}, [summary, el("table", { id: "pg-changed" }, [
      el("thead", {}, [el("tr", {}, ["Entry", "Message-ID", "Changes"].map((h) => el("th", { scope: "col", text: h })))]),
      el("tbody", {}, rows),
    ])]);
  }

  // ---- Outbox ----
  function outbox() {
    const out = document.getElementById("outbox-result");
    for (const button of document.querySelectorAll("button[data-retry]")) {
      button.addEventListener("click", async () => {
        const r = await api("POST", `/v1/outbox/${encodeURIComponent(button.dataset.retry)}/retry`);
        if (r.ok) location.reload();
        else say(out, r.data.error || `HTTP ${r.status}`, true);
      });
    }
  }

  // ---- Message ----
  function message() {
    const first = document.querySelector("#message-source mark");
    if (first) first.setAttribute("tabindex", "0");
  }

  const pages = { overview, live, quarantine, rules, playground, outbox, message };
  const start = () => {
    const page = pages[document.body.dataset.page];
    if (page) page();
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

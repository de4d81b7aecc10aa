// The webhook inspector's page: a live table over the JSON API beside it
// (api/events, api/events/{record}, api/stats, api/stream). No library,
// no build step; every value goes into the page as text, never as HTML.

const $ = (sel) => document.querySelector(sel);
const filters = { provider: "", verdict: "", q: "" };
const known = new Map(); // record id -> row, for outcomes that arrive later
let cursor = "";
let statsTimer = 0;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c ?? "");
  return e;
}

async function getJSON(path) {
  const res = await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function query(extra = {}) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...filters, ...extra })) if (v) p.set(k, v);
  const s = p.toString();
  return s ? "?" + s : "";
}

function matches(row) {
  if (filters.provider && row.provider !== filters.provider) return false;
  if (filters.verdict && row.state !== filters.verdict) return false;
  if (filters.q && !(row.event_id || "").toLowerCase().includes(filters.q.toLowerCase()) && row.id !== filters.q) return false;
  return true;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
const dateFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });

function when(iso) {
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  return (today ? "" : dateFmt.format(d) + " ") + timeFmt.format(d);
}

function verdictText(row) {
  if (row.state === "rejected") return row.reason || "rejected";
  if (row.state === "unverified") return "unverified: " + (row.reason || "");
  if (row.verdict === "store_error") return "store error";
  if (row.state === "failed") return "failed";
  return row.state.replace("_", " ");
}

function upstreamText(row) {
  if (row.status) return String(row.status);
  if (row.error) return "error";
  if (row.duration_ms === undefined && (row.state === "verified" || row.state === "unverified")) return "…";
  return "";
}

function latencyText(row) {
  return row.duration_ms === undefined ? "" : (row.duration_ms < 10 ? row.duration_ms.toFixed(1) : Math.round(row.duration_ms)) + " ms";
}

function rowElement(row) {
  const tr = el("tr", { "data-id": row.id, "data-state": row.state, tabindex: "0" },
    el("td", { class: "mono" }, when(row.time)),
    el("td", {}, row.provider),
    el("td", {}, row.event_type || ""),
    el("td", { class: "mono id", title: row.event_id || "" }, row.event_id || ""),
    el("td", { class: "state state-" + row.state }, verdictText(row)),
    el("td", { class: "mono status" }, upstreamText(row)),
    el("td", { class: "mono" }, latencyText(row)));
  tr.title = row.error || "";
  tr.addEventListener("click", () => showDetail(row.id));
  tr.addEventListener("keydown", (e) => { if (e.key === "Enter") showDetail(row.id); });
  return tr;
}

function tbody() { return $("#events tbody"); }

function updateEmpty() {
  $("#empty").hidden = tbody().children.length > 0;
}

// place puts a row's element where it belongs, newest first.
function place(row, fresh) {
  const body = tbody();
  const old = body.querySelector(`tr[data-id="${CSS.escape(row.id)}"]`);
  const tr = rowElement(row);
  if (old && old.classList.contains("selected")) tr.classList.add("selected");
  if (old) { old.replaceWith(tr); return; }
  if (fresh) tr.classList.add("fresh");
  for (const other of body.children) {
    const o = known.get(other.dataset.id);
    if (o && (o.time < row.time || (o.time === row.time && o.id < row.id))) { body.insertBefore(tr, other); updateEmpty(); return; }
  }
  if (!$("#more").hidden) return; // older than the page shown: it is on a later page
  body.append(tr);
  updateEmpty();
}

function unplace(id) {
  tbody().querySelector(`tr[data-id="${CSS.escape(id)}"]`)?.remove();
  updateEmpty();
}

async function load(more = false) {
  try {
    const page = await getJSON("api/events" + query({ limit: "100", cursor: more ? cursor : "" }));
    if (!more) tbody().replaceChildren();
    cursor = page.cursor || "";
    $("#more").hidden = !cursor;
    for (const row of page.events) {
      known.set(row.id, row);
      tbody().append(rowElement(row));
    }
    updateEmpty();
  } catch (err) {
    $("#empty").textContent = "Could not read the archive: " + err.message;
    $("#empty").hidden = false;
  }
}

const states = ["verified", "rejected", "duplicate", "failed"];

async function loadStats() {
  clearTimeout(statsTimer);
  statsTimer = 0;
  let st;
  try { st = await getJSON("api/stats" + query({ verdict: "", q: "" })); } catch { return; }
  for (const s of states) $("#count-" + s).textContent = String(st.total[s]);
  drawChart(st.minutes);
  const sel = $("#provider");
  const have = new Set([...sel.options].map((o) => o.value));
  for (const p of st.providers || []) if (!have.has(p)) sel.append(el("option", { value: p }, p));
}

function scheduleStats() {
  if (!statsTimer) statsTimer = setTimeout(loadStats, 1000);
}

// drawChart draws one stacked bar a minute, in SVG.
function drawChart(minutes) {
  const svg = $("#chart");
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  const peak = Math.max(1, ...minutes.map((m) => states.reduce((n, s) => n + m[s], 0)));
  const w = 600 / minutes.length;
  minutes.forEach((m, i) => {
    let y = 80;
    for (const s of states) {
      if (!m[s]) continue;
      const h = (m[s] / peak) * 76;
      y -= h;
      const r = document.createElementNS(ns, "rect");
      r.setAttribute("x", String(i * w + 1));
      r.setAttribute("y", String(y));
      r.setAttribute("width", String(Math.max(1, w - 2)));
      r.setAttribute("height", String(h));
      r.setAttribute("class", "bar-" + s);
      const t = document.createElementNS(ns, "title");
      t.textContent = `${timeFmt.format(new Date(m.time))}: ${m[s]} ${s}`;
      r.append(t);
      svg.append(r);
    }
  });
}

function dl(target, pairs) {
  target.replaceChildren();
  for (const [k, v] of pairs) {
    if (v === undefined || v === null || v === "") continue;
    target.append(el("dt", {}, k), el("dd", {}, v));
  }
}

function seconds(s) {
  const a = Math.abs(s);
  const txt = a < 120 ? a.toFixed(a < 10 ? 1 : 0) + " s" : a < 7200 ? (a / 60).toFixed(1) + " min" : (a / 3600).toFixed(1) + " h";
  return s >= 0 ? txt + " behind the gateway's clock" : txt + " ahead of the gateway's clock";
}

function duration(s) {
  return s >= 3600 ? (s / 3600).toFixed(s % 3600 ? 1 : 0) + " h" : s >= 60 ? (s / 60).toFixed(0) + " min" : s + " s";
}

async function showDetail(id) {
  let d;
  try { d = await getJSON("api/events/" + encodeURIComponent(id)); } catch (err) { alert(err.message); return; }
  for (const tr of tbody().querySelectorAll("tr.selected")) tr.classList.remove("selected");
  tbody().querySelector(`tr[data-id="${CSS.escape(id)}"]`)?.classList.add("selected");
  const aside = $("#detail");
  aside.dataset.id = d.id;
  $("#detail-title").textContent = `${d.provider} ${d.event_type || ""} ${d.event_id || d.id}`;
  const g = d.diagnosis;
  dl($("#diagnosis"), [
    ["Verdict", d.verdict === d.state ? d.state : `${d.state} (${d.verdict.replace("_", " ")})`],
    ["Reason", g.reason],
    ["Why", g.explanation],
    ["Secret", g.secret],
    ["Timestamp", g.timestamp ? `${g.timestamp} (${seconds(g.skew_seconds)})` : "not recorded"],
    ["Window", g.window_seconds ? duration(g.window_seconds) : ""],
    ["Body", g.body_archived || g.body_size ? `${g.body_size} bytes${g.body_truncated ? " (cut in the archive)" : ""}` : "not archived"],
    ["SHA-256", g.body_sha256],
    ["Signature", g.signature_header ? `${g.signature_header}: ${g.signature}` : ""],
    ["Signature form", g.form || ""],
    ["Received", `${d.time} from ${d.remote || "?"}: ${d.method || ""} ${d.path || ""}`],
    ["Record", d.id],
  ]);
  const o = d.outcome;
  dl($("#outcome"), o ? [
    ["Status", o.status ? String(o.status) : "none"],
    ["Error", o.error],
    ["Latency", latencyText(o)],
    ["Claim", o.settled],
  ] : [["Status", d.state === "verified" ? "not answered yet" : "not forwarded"]]);
  const hb = $("#headers tbody");
  hb.replaceChildren();
  for (const name of Object.keys(d.headers || {}).sort()) {
    for (const v of d.headers[name]) hb.append(el("tr", {}, el("td", {}, name), el("td", {}, v)));
  }
  $("#payload").textContent = d.payload || "(no body archived)";
  $("#masked").textContent = d.payload_masked ? "(masked: set show_payloads on to see it as received)" : "";
  const cmds = $("#commands");
  cmds.replaceChildren();
  for (const c of d.commands || []) {
    const b = el("button", { type: "button" }, "Copy");
    b.addEventListener("click", async () => {
      try { await navigator.clipboard.writeText(c); b.textContent = "Copied"; } catch { b.textContent = "Select it"; }
    });
    cmds.append(el("div", { class: "command" }, el("code", {}, c), b));
  }
  aside.hidden = false;
  document.body.classList.add("detail-open");
}

function connect() {
  const es = new EventSource("api/stream" + query({ verdict: "", q: "" }));
  const live = $("#live");
  es.onopen = () => { live.textContent = "live"; live.classList.add("on"); };
  es.onerror = () => { live.textContent = "reconnecting…"; live.classList.remove("on"); };
  es.addEventListener("request", (e) => {
    const row = JSON.parse(e.data);
    known.set(row.id, row);
    if (matches(row)) place(row, true);
    scheduleStats();
  });
  es.addEventListener("outcome", (e) => {
    const o = JSON.parse(e.data);
    const row = known.get(o.ref);
    if (!row || o.replay) return;
    Object.assign(row, { status: o.status, error: o.error, duration_ms: o.duration_ms, settled: o.settled });
    const ok = o.status >= 200 && o.status < 300;
    if (o.verdict) Object.assign(row, { verdict: o.verdict, state: o.state }); // the claim kept it from the upstream
    else if (row.verdict === "verified" || row.verdict === "unverified") row.state = ok ? (row.verdict === "verified" ? "verified" : "unverified") : "failed";
    if (matches(row)) place(row, false); else unplace(row.id);
    scheduleStats();
  });
  return es;
}

let stream = null;

function refilter() {
  filters.provider = $("#provider").value;
  filters.verdict = $("#verdict").value;
  filters.q = $("#q").value.trim();
  load();
  loadStats();
  stream?.close();
  stream = connect();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#filters").addEventListener("submit", (e) => e.preventDefault());
  $("#provider").addEventListener("change", refilter);
  $("#verdict").addEventListener("change", refilter);
  let typing = 0;
  $("#q").addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(refilter, 250); });
  $("#more").addEventListener("click", () => load(true));
  const close = () => { $("#detail").hidden = true; document.body.classList.remove("detail-open"); };
  $("#close").addEventListener("click", close);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") close(); });
  refilter();
  setInterval(loadStats, 30000);
});

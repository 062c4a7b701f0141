// The status page: polls the daemon's JSON API and redraws; no other source, no framework.
// Every value is written with textContent, never parsed as HTML.
"use strict";

const STATE_ORDER = ["failed", "quarantined", "drifted", "applying", "pending", "compliant"];
const EVENTS_SHOWN = 5;
const params = new URLSearchParams(location.search);
const INTERVAL = Math.max(250, Number(params.get("interval")) || 2000);  // milliseconds

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  }
  return node;
}

async function getJSON(path) {
  const answer = await fetch(path, {cache: "no-store", headers: {accept: "application/json"}});
  const body = await answer.json().catch(() => null);
  return {status: answer.status, body};
}

function ordered(states) {
  const known = STATE_ORDER.filter((s) => s in states);
  return known.concat(Object.keys(states).filter((s) => !STATE_ORDER.includes(s)).sort());
}

function shortTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function drawHealth(summary) {
  const h = summary.health || {};
  $("server").textContent = `${summary.name || ""} · site ${summary.site || ""}`;
  $("mode").textContent = summary.mode || "?";
  const dir = $("directory");
  dir.textContent = h.directory || "?";
  dir.className = "badge " + (h.ok ? "b-ok" : "b-bad");
  $("directory-reason").textContent = h.reason || "";
  $("queue").textContent = `${h.queue ?? "?"} hosts queued`;
  const vcs = $("vcenters");
  const names = new Set([...(h.vcenters || []), ...Object.keys(summary.vcenters || {})]);
  vcs.replaceChildren(...[...names].sort().map((name) => {
    const v = (summary.vcenters || {})[name];
    const state = v ? v.state : "not watched";
    const cls = !v ? "" : (state === "watching" ? "b-ok" : "b-bad");
    return el("li", {"data-vcenter": name}, `${name} `, el("span", {class: "badge " + cls}, state),
              v && v.reason ? ` ${v.reason}` : "");
  }));
  if (names.size === 0) vcs.replaceChildren(el("li", {class: "quiet"}, "none registered"));
  const r = summary.replicas;
  $("replicas").textContent = r == null ? "not checked by this server (stateless directory check)"
    : (r.diverged === 0 ? `converged (${r.replicas} replicas)` : `${r.diverged} entries diverged`);
}

function drawCounts(summary) {
  $("total").textContent = `(${summary.hosts} hosts)`;
  const states = summary.states || {};
  $("states").replaceChildren(...ordered(states).map((s) =>
    el("div", {class: `card s-${s}`, "data-state": s},
       el("span", {class: "n", "data-count": s}, states[s]), s)));
  if (!summary.hosts) $("states").replaceChildren(el("p", {class: "quiet"}, "no hosts yet"));
}

function drawGroups(head, rows, groups, label, blank) {
  const states = {};
  for (const counts of Object.values(groups)) for (const s of Object.keys(counts)) states[s] = 1;
  const columns = ordered(states);
  $(head).replaceChildren(el("tr", {}, el("th", {}, label),
    ...columns.map((s) => el("th", {class: "num"}, s))));
  $(rows).replaceChildren(...Object.entries(groups).map(([name, counts]) =>
    el("tr", {"data-group": name}, el("td", {}, name || blank),
       ...columns.map((s) => el("td", {class: "num", "data-state": s}, counts[s] || 0)))));
}

const events = new Map();  // uuid -> [event], fetched for the hosts that need attention

async function fetchEvents(uuids) {
  await Promise.all(uuids.map(async (uuid) => {
    try {
      const {status, body} = await getJSON(`/v1/hosts/${uuid}/events`);
      events.set(uuid, status === 200 && body && Array.isArray(body.events) ? body.events : []);
    } catch (e) {
      events.set(uuid, []);
    }
  }));
}

function drawEvents(uuid) {
  const list = (events.get(uuid) || []).slice(-EVENTS_SHOWN);
  if (list.length === 0) return el("span", {class: "quiet"}, "no events");
  return el("ol", {class: "events"}, ...list.map((e) =>
    el("li", {}, el("time", {}, shortTime(e.time)), `${e.event}${e.message ? ": " + e.message : ""}`)));
}

function drawAttention(summary) {
  const rows = summary.attention || [];
  const more = summary.attention_total > rows.length ? ` (showing ${rows.length})` : "";
  $("attention-total").textContent = `(${summary.attention_total || 0}${more})`;
  $("attention-none").hidden = rows.length > 0;
  $("attention-rows").replaceChildren(...rows.map((h) =>
    el("tr", {"data-host": h.host, "data-state": h.state},
       el("td", {}, el("code", {}, h.host)),
       el("td", {}, el("span", {class: `badge s-${h.state}`}, h.state)),
       el("td", {class: "reason"}, h.reason || ""),
       el("td", {}, h.location || ""), el("td", {}, h.site || ""),
       el("td", {}, shortTime(h.since)), el("td", {}, drawEvents(h.host)))));
}

function drawProblems(doc) {
  const problems = (doc && doc.problems) || [];
  $("problems-total").textContent = `(${problems.length})`;
  $("problems-none").hidden = problems.length > 0;
  $("problem-rows").replaceChildren(...problems.map((p) =>
    el("tr", {}, el("td", {}, el("code", {}, p.dn)), el("td", {}, p.attribute),
       el("td", {}, el("code", {}, p.value)), el("td", {}, p.reason))));
}

async function refresh() {
  const live = $("live");
  try {
    const [summary, problems] = await Promise.all([getJSON("/v1/summary"), getJSON("/v1/problems")]);
    if (summary.status !== 200 || !summary.body) throw new Error(`summary: HTTP ${summary.status}`);
    const s = summary.body;
    await fetchEvents((s.attention || []).slice(0, 50).map((h) => h.host));
    drawHealth(s);
    drawCounts(s);
    drawGroups("site-head", "site-rows", s.sites || {}, "site", "(no site)");
    drawGroups("cluster-head", "cluster-rows", s.clusters || {}, "location", "(not placed)");
    drawAttention(s);
    drawProblems(problems.body);
    $("updated").textContent = shortTime(s.time);
    $("updated").setAttribute("datetime", s.time || "");
    live.textContent = "live";
    live.className = "badge b-ok";
    live.dataset.live = "ok";
  } catch (e) {
    live.textContent = `cannot reach the daemon: ${e.message}`;
    live.className = "badge b-bad";
    live.dataset.live = "lost";
  }
  document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  setTimeout(refresh, INTERVAL);
}

refresh();

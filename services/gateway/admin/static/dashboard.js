// The operator page: polls the gateway's admin endpoints every few seconds and redraws.
// Plain DOM and SVG, no library and no build step. Every value from the server is put in
// with textContent or an attribute, never parsed as HTML: hotkeys, URLs and error texts
// come from miners and instances.
"use strict";

const REFRESH_MS = 5000;
const API = "/api/v1/admin/";
const SVG_NS = "http://www.w3.org/2000/svg";
const ENDPOINTS = ["queues", "miners", "instances", "timeline", "overview"];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svgEl(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function seconds(value) {
  if (value === null || value === undefined) return "–";
  if (value < 1) return `${Math.round(value * 1000)} ms`;
  if (value < 60) return `${value.toFixed(1)} s`;
  if (value < 3600) return `${Math.floor(value / 60)}m ${String(Math.round(value % 60)).padStart(2, "0")}s`;
  if (value < 86400) return `${Math.floor(value / 3600)}h ${String(Math.floor((value % 3600) / 60)).padStart(2, "0")}m`;
  return `${(value / 86400).toFixed(1)} d`;
}

function clock(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleTimeString("en-GB");
}

function number(value, digits = 0) {
  if (value === null || value === undefined) return "–";
  return Number(value).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function badge(text, kind) {
  return el("span", { class: `badge ${kind}` }, text);
}

// Cells: a string/number, or [content, "num"] for a right-aligned cell.
function fill(tbody, rows, emptyText, columns) {
  if (!rows.length) {
    tbody.replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: String(columns) }, emptyText)));
    return;
  }
  tbody.replaceChildren(...rows.map((cells) => el("tr", {}, ...cells.map((cell) => {
    const [content, cls] = Array.isArray(cell) ? cell : [cell, ""];
    return el("td", cls ? { class: cls } : {}, content);
  }))));
}

function card(id, big, small) {
  const node = document.getElementById(id);
  node.querySelector(".big").textContent = big;
  node.querySelector(".small").textContent = small;
}

function renderQueues(data) {
  const rows = data.queues.map((q) => [
    q.priority,
    [number(q.waiting), "num"],
    [number(q.in_flight), "num"],
    [seconds(q.oldest_waiting_seconds), "num"],
    [seconds(q.oldest_in_flight_seconds), "num"],
  ]);
  fill(document.querySelector("#queues tbody"), rows, "no queues", 5);
  const t = data.tasks;
  card("card-tasks", `${number(t.pending + t.processing)} open`,
    `${number(t.pending)} pending · ${number(t.processing)} processing · ` +
    `${number(t.completed)} completed · ${number(t.failed)} failed · ` +
    `${number(t.cancelled)} cancelled`);
}

function renderMiners(data) {
  document.getElementById("miners-note").textContent = data.registry_published
    ? "" : "No validator has published its miner list (is one running?): hotkeys with a score only.";
  const rows = data.miners.map((m) => [
    [m.uid === null ? "–" : String(m.uid), "num"],
    el("code", {}, m.hotkey),
    [m.score === null ? "–" : number(m.score, 3), "num"],
    [number(m.answers), "num"],
    [number(m.failures), "num"],
    [seconds(m.latency_p50), "num"],
    [number(m.in_flight), "num"],
  ]);
  fill(document.querySelector("#miners tbody"), rows, "no miners known yet", 7);
}

function renderInstances(data) {
  const note = document.getElementById("instances-note");
  const tbody = document.querySelector("#instances tbody");
  const lb = data.lb;
  if (!lb) {
    note.textContent = "No validator has published the lb's health yet.";
    fill(tbody, [], "no data", 6);
    return;
  }
  if (!lb.reachable) {
    note.textContent = `${lb.url} unreachable ${seconds(lb.age_seconds)} ago: ${lb.error}`;
    fill(tbody, [], "lb unreachable", 6);
    return;
  }
  const health = lb.health;
  note.textContent = `${lb.url}: ${health.healthy_instances} of ${health.total_instances} healthy, ` +
    `${health.total_active_jobs} active jobs (seen ${seconds(lb.age_seconds)} ago)`;
  const rows = (health.instances || []).map((i) => [
    el("code", {}, i.url),
    i.is_healthy ? badge("healthy", "ok") : badge("unhealthy", "bad"),
    [number(i.active_jobs), "num"],
    [number(i.consecutive_failures), "num"],
    i.last_check || "–",
    i.error_message || "",
  ]);
  fill(tbody, rows, "no instances", 6);
}

function renderOverview(data) {
  const w = data.webhooks;
  card("card-webhooks", `${number(w.due)} due`,
    `${number(w.scheduled)} scheduled · oldest due ${seconds(w.oldest_due_seconds)}`);
  const d = data.dead_letters;
  card("card-dead", number(d.count), d.recent.length ? `latest ${seconds(d.recent[0].age_seconds)} ago` : "none");
  const g = data.weights;
  const round = g.last_round_outcome ? `last round: ${g.last_round_outcome}`
    : g.since === null ? "no validator has started" : `first round due ${clock(g.since + (g.interval_seconds || 0))}`;
  card("card-weights", g.set_age_seconds === null ? "not yet" : `${seconds(g.set_age_seconds)} ago`,
    g.set_at === null ? round : `${g.mode}, ${number(g.uids)} uids · ${round}`);
  const v = data.validators;
  const busy = v.reduce((sum, r) => sum + (r.tasks_in_flight || 0), 0);
  const slots = v.reduce((sum, r) => sum + (r.slots || 0), 0);
  card("card-validators", `${v.length} running`, `${busy} of ${slots} task slots busy`);
  const n = data.network;
  const synced = Date.parse(n.last_sync);
  card("card-network", `${n.available_miners} of ${n.total_miners}`,
    `connectivity ${n.connectivity} · synced ${Number.isNaN(synced) ? n.last_sync : clock(synced / 1000)}`);
  fill(document.querySelector("#validators tbody"), v.map((r) => [
    el("code", {}, r.consumer), r.mode, [number(r.tasks_in_flight), "num"], [number(r.slots), "num"],
    [number(r.miners), "num"], [`${seconds(r.age_seconds)} ago`, "num"],
  ]), "no validator replica has reported", 6);
  fill(document.querySelector("#dead-letters tbody"), d.recent.map((e) => [
    el("code", {}, e.task_id || "–"), e.priority || "–", [number(e.deliveries), "num"],
    [seconds(e.age_seconds), "num"],
  ]), "none", 4);
}

// A line chart of `series` ({cls, values}) over the timeline's buckets.
function drawChart(svg, points, series, unit) {
  const W = 640, H = 220, left = 46, right = 12, top = 12, bottom = 26;
  const values = series.flatMap((s) => s.values.filter((v) => v !== null));
  const max = Math.max(1e-9, ...values);
  const step = niceStep(max / 4);
  const yMax = Math.max(step * 4, step * Math.ceil(max / step));
  const x = (i) => left + (i * (W - left - right)) / Math.max(1, points.length - 1);
  const y = (v) => top + (H - top - bottom) * (1 - v / yMax);
  const nodes = [];
  for (let v = 0; v <= yMax + step / 2; v += step) {
    nodes.push(svgEl("line", { class: "grid", x1: left, x2: W - right, y1: y(v), y2: y(v) }));
    nodes.push(svgEl("text", { class: "axis", x: left - 6, y: y(v) + 4, "text-anchor": "end" },
      `${number(v, step < 1 ? 1 : 0)}${unit}`));
  }
  const span = points.length ? points[points.length - 1].at - points[0].at : 0;
  for (const minutesAgo of [15, 10, 5, 0]) {
    const i = span ? Math.max(0, ((span - minutesAgo * 60) / span) * (points.length - 1)) : 0;
    nodes.push(svgEl("text", { class: "axis", x: x(i), y: H - 8, "text-anchor": "middle" },
      minutesAgo ? `−${minutesAgo} min` : "now"));
  }
  for (const s of series) {
    let d = "";
    s.values.forEach((v, i) => {
      if (v === null) return;
      const joined = i > 0 && s.values[i - 1] !== null;
      d += `${joined ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      if (!joined && (i === s.values.length - 1 || s.values[i + 1] === null)) {
        nodes.push(svgEl("circle", { class: `dot series ${s.cls}`, cx: x(i), cy: y(v), r: 2.5 }));
      }
    });
    const present = s.values.filter((v) => v !== null);
    nodes.push(svgEl("path", { class: `series ${s.cls}`, d, "data-series": s.cls,
      "data-points": String(present.length), "data-max": String(Math.max(0, ...present)) }));
  }
  svg.replaceChildren(...nodes);
  svg.setAttribute("data-buckets", String(points.length));
}

function niceStep(raw) {
  const power = 10 ** Math.floor(Math.log10(raw));
  const scaled = raw / power;
  return (scaled <= 1 ? 1 : scaled <= 2 ? 2 : scaled <= 5 ? 5 : 10) * power;
}

function renderTimeline(data) {
  const perMinute = 60 / data.bucket_seconds;
  const points = data.points;
  drawChart(document.getElementById("throughput-chart"), points, [
    { cls: "completed", values: points.map((p) => p.completed * perMinute) },
    { cls: "failed", values: points.map((p) => p.failed * perMinute) },
  ], "");
  drawChart(document.getElementById("latency-chart"), points, [
    { cls: "p50", values: points.map((p) => p.latency_p50) },
    { cls: "p95", values: points.map((p) => p.latency_p95) },
  ], " s");
}

const RENDER = {
  queues: renderQueues, miners: renderMiners, instances: renderInstances,
  timeline: renderTimeline, overview: renderOverview,
};

async function getJSON(name) {
  const response = await fetch(API + name, { credentials: "same-origin", cache: "no-store" });
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).error.message; } catch (_) { /* not our JSON */ }
    throw new Error(`${name}: ${response.status} ${message}`);
  }
  return response.json();
}

async function refresh() {
  const status = document.getElementById("status");
  const results = await Promise.allSettled(ENDPOINTS.map(getJSON));
  const errors = [];
  results.forEach((result, i) => {
    if (result.status === "fulfilled") {
      try { RENDER[ENDPOINTS[i]](result.value); } catch (error) { errors.push(`${ENDPOINTS[i]}: ${error}`); }
    } else {
      errors.push(String(result.reason.message || result.reason));
    }
  });
  const time = new Date().toLocaleTimeString("en-GB");
  status.textContent = errors.length ? `${time}: ${errors.join("; ")}` : `updated ${time}`;
  status.classList.toggle("error", errors.length > 0);
  document.body.setAttribute("data-refreshed", String(Date.now()));
  setTimeout(refresh, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", refresh);

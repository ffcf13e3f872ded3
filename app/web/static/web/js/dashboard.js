// The dashboard: recent deploys, live over /ws/dashboard/, filtered by the query string.

import { ResilientSocket, showConnection } from "./socket.js";
import { elapsedOf, FINISHED, formatElapsed, setBadge } from "./status.js";

const page = JSON.parse(document.getElementById("dashboard-data").textContent);
const filters = page.filters;
const deploys = new Map(page.deploys.map((d) => [d.id, d]));
const seenNotices = new Set();
const tbody = document.getElementById("deploy-rows");
const feed = document.getElementById("feed");
const MAX_ROWS = 50;
const MAX_NOTICES = 30;

const matches = (d) =>
  (!filters.service || d.service === filters.service) &&
  (!filters.environment || d.environment === filters.environment) &&
  (!filters.status || d.status === filters.status);

function cell(row, className, ...children) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.append(...children);
  row.appendChild(td);
  return td;
}

function text(tag, className, value) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  el.textContent = value;
  return el;
}

function buildRow(d) {
  const tr = document.createElement("tr");
  tr.dataset.id = String(d.id);
  tr.dataset.status = d.status;
  const badge = document.createElement("span");
  setBadge(badge, d.status);
  cell(tr, "c-status", badge);
  const link = text("a", "deploy-link", d.service_name || d.service);
  link.href = d.url;
  cell(tr, "c-service", link, text("span", "sub", ` #${d.id}`));
  cell(tr, "c-env", d.environment);
  cell(tr, "c-version", text("code", "", d.version));
  cell(tr, "c-step", d.current_step || "—");
  const bar = document.createElement("div");
  bar.className = "bar";
  bar.dataset.status = d.status;
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "100");
  bar.setAttribute("aria-valuenow", String(d.progress));
  bar.setAttribute("aria-label", `Progress of deploy ${d.id}`);
  const fill = document.createElement("span");
  fill.className = "bar-fill";
  fill.style.width = `${d.progress}%`;
  bar.append(fill, text("span", "bar-text", `${d.progress}%`));
  cell(tr, "c-progress", bar);
  cell(tr, "c-by", d.started_by || "—");
  cell(tr, "c-elapsed", formatElapsed(elapsedOf(d)));
  return tr;
}

let frame = 0;
function render() {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    const rows = [...deploys.values()].filter(matches).sort((a, b) => b.id - a.id).slice(0, MAX_ROWS);
    tbody.replaceChildren(...rows.map(buildRow));
    document.getElementById("deploys-empty").hidden = rows.length > 0;
    const running = [...deploys.values()].filter((d) => d.status === "running").length;
    document.title = running ? `▶ ${running} running · Herald` : "Dashboard · Herald";
    const icon = document.getElementById("favicon");
    if (icon) icon.href = `${page.icon_base}favicon-${running ? "running" : "idle"}.svg`;
  });
}

/** Keeps the newest picture of each deploy: the summary with the highest last_seq wins. */
function upsert(d) {
  const known = deploys.get(d.id);
  if (known && known.last_seq > d.last_seq) return;
  deploys.set(d.id, d);
  render();
}

function notice(frame) {
  if (seenNotices.has(frame.id)) return;
  seenNotices.add(frame.id);
  const li = document.createElement("li");
  li.className = `notice notice-${frame.event}`;
  li.dataset.id = frame.id;
  const badge = document.createElement("span");
  setBadge(badge, frame.deploy.status);
  const link = text("a", "", frame.text);
  link.href = frame.deploy.url;
  const when = document.createElement("time");
  const now = new Date();
  when.dateTime = now.toISOString();
  when.textContent = now.toLocaleTimeString();
  li.append(badge, " ", link, " ", when);
  feed.prepend(li);
  while (feed.children.length > MAX_NOTICES) feed.lastElementChild.remove();
  document.getElementById("feed-empty").hidden = true;
}

const conn = document.getElementById("conn");
const socket = new ResilientSocket(() => "/ws/dashboard/", {
  onState: (state, detail) => showConnection(conn, state, detail),
  onFrame(msg) {
    if (msg.type === "hello") {
      msg.deploys.forEach(upsert);
      showConnection(conn, "live", "");
    } else if (msg.type === "summary") {
      upsert(msg.deploy);
    } else if (msg.type === "notice") {
      upsert(msg.deploy);
      notice(msg);
    }
  },
});

setInterval(() => {
  for (const tr of tbody.querySelectorAll("tr")) {
    const d = deploys.get(Number(tr.dataset.id));
    if (d && !FINISHED.has(d.status)) tr.querySelector(".c-elapsed").textContent = formatElapsed(elapsedOf(d));
  }
}, 1000);

// Filter selects submit on change; the filters live in the URL so a view can be bookmarked or shared.
document.querySelectorAll("#filters select").forEach((select) =>
  select.addEventListener("change", () => select.form.requestSubmit()),
);

render();
socket.connect();
window.herald = { deploys, socket };

// The deploy-progress page: header, steps, progress, live log, comments, cancel, watchers.
//
// The socket protocol (docs/protocol.md) does the hard part: the client says the last seq it has
// (`after=`) and gets exactly the missing events, then live ones. This page still drops any event
// whose seq it already has, and treats a jump in seq as a broken stream: it reconnects from the last
// seq it holds, so a line is never shown twice and never skipped.

import { formatDuration, LogView } from "./logview.js";
import { ResilientSocket, showConnection } from "./socket.js";
import { elapsedOf, FINISHED, formatElapsed, reflectInTab, setBadge, setTime } from "./status.js";

const page = JSON.parse(document.getElementById("deploy-data").textContent);
const $ = (id) => document.getElementById(id);

let summary = page.deploy;
let lastSeq = 0;
// Counters the browser tests read (window.herald.stats); cheap, and handy in the console too.
const stats = { frames: 0, events: 0, duplicates: 0, gaps: 0, connects: 0 };

// ------------------------------------------------------------------ log

const logRoot = $("log-panel");
const searchBox = $("log-search");
const filterOnly = $("log-filter-only");
const matchInfo = $("log-matches");
const jump = $("log-jump");

const log = new LogView($("log"), {
  stepCollapsedByDefault: (step) => step.state === "succeeded" || step.state === "skipped",
  onFollow(following, unseen) {
    jump.hidden = following;
    jump.textContent = unseen ? `Jump to latest (${unseen} new)` : "Jump to latest";
    logRoot.dataset.follow = following ? "on" : "off";
  },
  onSelect(sel) {
    const hash = !sel ? "" : sel[0] === sel[1] ? `#L${sel[0]}` : `#L${sel[0]}-L${sel[1]}`;
    history.replaceState(null, "", hash || location.pathname + location.search);
  },
  onChange() {
    if (!log) return;
    const q = searchBox.value.trim();
    matchInfo.textContent = q ? `${log.matches.length} matching line${log.matches.length === 1 ? "" : "s"}` : "";
    $("log-count").textContent = `${log.lines.length} lines`;
  },
  onQueryCleared() {
    searchBox.value = "";
  },
});

let searchTimer;
searchBox.addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => log.setQuery(searchBox.value.trim(), filterOnly.checked), 120);
});
searchBox.addEventListener("keydown", (e) => {
  if (e.key === "Enter") {
    e.preventDefault();
    log.stepMatch(e.shiftKey ? -1 : 1);
  } else if (e.key === "Escape") {
    searchBox.value = "";
    log.setQuery("");
  }
});
filterOnly.addEventListener("change", () => log.setQuery(searchBox.value.trim(), filterOnly.checked));
$("log-prev").addEventListener("click", () => log.stepMatch(-1));
$("log-next").addEventListener("click", () => log.stepMatch(1));
jump.addEventListener("click", () => log.setFollow(true));
$("log-expand").addEventListener("click", () => log.setAllCollapsed(false));
$("log-collapse").addEventListener("click", () => log.setAllCollapsed(true));
document.addEventListener("keydown", (e) => {
  if (e.key === "/" && !e.target.closest("input, textarea, select, button")) {
    e.preventDefault();
    searchBox.focus();
  }
});

const tsToggle = $("log-ts");
tsToggle.checked = localStorage.getItem("herald.timestamps") === "1";
const applyTs = () => {
  logRoot.classList.toggle("show-ts", tsToggle.checked);
  localStorage.setItem("herald.timestamps", tsToggle.checked ? "1" : "0");
};
tsToggle.addEventListener("change", applyTs);
applyTs();

// #L120 or #L120-L140: select and scroll there once those lines have arrived.
let pendingHash = null;
function readHash() {
  const m = /^#L(\d+)(?:-L(\d+))?$/.exec(location.hash);
  pendingHash = m ? [Number(m[1]), Number(m[2] || m[1])] : null;
  applyHash();
}
function applyHash() {
  if (!pendingHash) return;
  const [a, b] = pendingHash;
  if (log.lines.length < Math.max(a, b)) return;
  log.select(a, b);
  log.scrollToLine(a, "center");
  pendingHash = null;
}
window.addEventListener("hashchange", readHash);

// ------------------------------------------------------------------ header, steps, progress

const statusLabel = () => `${summary.service} ${summary.version} → ${summary.environment}`;

function renderSteps() {
  const list = $("steps");
  const items = summary.steps.map((step) => {
    const li = document.createElement("li");
    li.className = `step step-${step.state}`;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "step-link";
    button.addEventListener("click", () => log.scrollToStep(step.index));
    const name = document.createElement("span");
    name.className = "step-name";
    name.textContent = step.name;
    const badge = document.createElement("span");
    setBadge(badge, step.state);
    const dur = document.createElement("span");
    dur.className = "step-dur";
    dur.textContent = step.state === "running" && step.started_at
      ? formatElapsed(Date.now() - Date.parse(step.started_at))
      : formatDuration(step.duration_ms);
    button.append(name, badge, dur);
    li.appendChild(button);
    if (step.state === "running") li.setAttribute("aria-current", "step");
    return li;
  });
  list.replaceChildren(...items);
  $("steps-empty").hidden = items.length > 0;
  // A pipeline that reports no steps gets the width back for its log.
  document.querySelector(".deploy-body").classList.toggle("no-steps", items.length === 0);
}

function renderHeader() {
  setBadge($("d-status"), summary.status);
  $("d-started-by").textContent = summary.started_by || "—";
  setTime($("d-started"), summary.started_at || summary.created_at);
  $("d-elapsed").textContent = formatElapsed(elapsedOf(summary));
  $("d-elapsed-label").textContent = FINISHED.has(summary.status) ? "Duration" : "Elapsed";
  $("d-current").textContent = summary.current_step || "—";
  const bar = $("d-progress");
  bar.setAttribute("aria-valuenow", String(summary.progress));
  bar.querySelector(".bar-fill").style.width = `${summary.progress}%`;
  bar.querySelector(".bar-text").textContent = `${summary.progress}%`;
  bar.dataset.status = summary.status;
  reflectInTab(summary.status, statusLabel(), page.icon_base);

  const done = FINISHED.has(summary.status);
  const outcome = $("d-outcome");
  outcome.hidden = !done;
  if (done) {
    const by = summary.status_by ? ` by ${summary.status_by}` : "";
    const reason = summary.reason ? ` — ${summary.reason}` : "";
    outcome.dataset.status = summary.status;
    outcome.textContent = `Deploy ${summary.status}${by} after ${formatElapsed(elapsedOf(summary))}${reason}.`;
  }
  const cancel = $("cancel-btn");
  if (cancel) {
    cancel.hidden = done;
    cancel.disabled = Boolean(summary.cancel_requested_by);
    $("cancel-state").textContent = summary.cancel_requested_by && !done
      ? `Cancel requested by ${summary.cancel_requested_by}; the runner is stopping the step.` : "";
  }
}

function applySummary(next) {
  if (next.last_seq < summary.last_seq) return; // an older picture than the one we have
  summary = { ...summary, ...next };
  for (const step of summary.steps) log.updateStep(step);
  renderHeader();
  renderSteps();
}

setInterval(() => {
  if (FINISHED.has(summary.status)) return;
  $("d-elapsed").textContent = formatElapsed(elapsedOf(summary));
  if (summary.steps.some((s) => s.state === "running")) renderSteps();
}, 1000);

// ------------------------------------------------------------------ comments

const comments = $("comments");
function addComment(ev) {
  const li = document.createElement("li");
  li.className = "comment";
  li.dataset.seq = String(ev.seq);
  const who = document.createElement("strong");
  who.textContent = ev.data.user ?? "someone";
  const when = document.createElement("time");
  setTime(when, ev.ts);
  const text = document.createElement("p");
  text.textContent = ev.data.text ?? "";
  li.append(who, " ", when, text);
  comments.appendChild(li);
  $("comments-empty").hidden = true;
}

const commentForm = $("comment-form");
const commentStatus = $("comment-status");
let pendingComment = null;
commentForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("comment-text").value.trim();
  if (!text) return;
  pendingComment = socket.send({ action: "comment", text });
  commentStatus.textContent = pendingComment === null ? "Not connected; try again in a moment." : "Sending…";
});
$("comment-text").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) commentForm.requestSubmit();
});

// ------------------------------------------------------------------ cancel

const cancelBtn = $("cancel-btn");
const dialog = $("cancel-dialog");
if (cancelBtn) {
  cancelBtn.addEventListener("click", () => dialog.showModal());
  dialog.addEventListener("close", () => {
    if (dialog.returnValue !== "confirm") return;
    const id = socket.send({ action: "cancel" });
    $("cancel-state").textContent = id === null ? "Not connected; try again in a moment." : "Cancel requested…";
  });
}

// ------------------------------------------------------------------ events

function applyEvents(events) {
  let logBatch = [];
  const flushLog = () => {
    if (logBatch.length) log.append(logBatch);
    logBatch = [];
  };
  for (const ev of events) {
    if (ev.seq <= lastSeq) {
      stats.duplicates += 1;
      continue;
    }
    if (ev.seq !== lastSeq + 1) {
      // Something was lost between server and us: never paper over it, fetch from where we are.
      stats.gaps += 1;
      flushLog();
      socket.reopen();
      return;
    }
    lastSeq = ev.seq;
    stats.events += 1;
    const d = ev.data;
    if (ev.kind === "log") {
      logBatch.push(ev);
      continue;
    }
    flushLog();
    if (ev.kind === "step") {
      const steps = summary.steps.filter((s) => s.index !== d.index);
      const known = summary.steps.find((s) => s.index === d.index) ?? {};
      const step = { ...known, ...d };
      if (d.state === "running" && !step.started_at) step.started_at = ev.ts;
      steps.push(step);
      steps.sort((a, b) => a.index - b.index);
      summary = { ...summary, steps, current_step: d.state === "running" ? d.name : summary.current_step };
      log.updateStep(step, d.state === "running");
    } else if (ev.kind === "status") {
      summary = { ...summary, status: d.status, status_by: d.by, reason: d.reason };
      if (d.status === "running" && !summary.started_at) summary.started_at = ev.ts;
      if (FINISHED.has(d.status)) summary.finished_at = summary.finished_at || ev.ts;
    } else if (ev.kind === "progress") {
      summary = { ...summary, progress: d.progress };
    } else if (ev.kind === "comment") {
      addComment(ev);
    }
    summary.last_seq = Math.max(summary.last_seq, ev.seq);
  }
  flushLog();
  renderHeader();
  renderSteps();
  applyHash();
}

function renderWatchers(frame) {
  const el = $("watchers");
  el.hidden = false;
  const users = (frame.users ?? []).join(", ");
  el.textContent = `${frame.count} watching${users ? `: ${users}` : ""}`;
}

const conn = $("conn");
let caughtUp = false;
const socket = new ResilientSocket(() => `/ws/deploys/${summary.id}/?after=${lastSeq}`, {
  onOpen() {
    stats.connects += 1;
    caughtUp = false;
    showConnection(conn, "catching_up", "");
  },
  onState(state, detail) {
    if (state === "connecting" && caughtUp) return;
    showConnection(conn, state, detail);
  },
  onFrame(frame) {
    stats.frames += 1;
    switch (frame.type) {
      case "hello":
        applySummary({ ...frame.deploy, last_seq: Math.max(frame.deploy.last_seq, summary.last_seq) });
        break;
      case "events":
        applyEvents(frame.events);
        break;
      case "live":
        caughtUp = true;
        showConnection(conn, "live", "");
        if (pendingHash && log.lines.length < pendingHash[0]) pendingHash = null; // no such line
        break;
      case "summary":
        applySummary(frame.deploy);
        break;
      case "watchers":
        renderWatchers(frame);
        break;
      case "ack":
        if (frame.id === pendingComment) {
          $("comment-text").value = "";
          commentStatus.textContent = "";
          pendingComment = null;
        }
        break;
      case "error": {
        const where = frame.id != null && frame.id === pendingComment ? commentStatus : $("page-error");
        where.textContent = frame.message;
        if (where === commentStatus) pendingComment = null;
        break;
      }
      default:
        break;
    }
  },
});

renderHeader();
renderSteps();
readHash();
socket.connect();
window.herald = { log, stats, socket, get lastSeq() { return lastSeq; }, get summary() { return summary; } };

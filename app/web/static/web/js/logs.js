// The log-follow page: pick a whitelisted file on a host, follow it live over /ws/logs/.
// The server-side task stops when we send `stop` or the socket closes (leaving the page closes it).

import { LogView } from "./logview.js";
import { ResilientSocket, showConnection } from "./socket.js";

const $ = (id) => document.getElementById(id);
const hostSelect = $("lf-host");
const fileSelect = $("lf-file");
const startBtn = $("lf-start");
const stopBtn = $("lf-stop");
const state = $("lf-state");
let files = {};
let following = null; // {host, name} we asked for; re-sent after a reconnect
let seq = 0;

const view = new LogView($("log"), {
  onFollow(on) {
    $("log-jump").hidden = on;
  },
  onChange() {
    $("log-count").textContent = `${view.lines.length} lines`;
  },
});
$("log-jump").addEventListener("click", () => view.setFollow(true));
$("log-clear").addEventListener("click", () => {
  view.lines.length = 0;
  view.plain.length = 0;
  view.linePos.length = 0;
  view.entries.length = 0;
  view.segCache.clear();
  view.rebuildView();
});

function option(value) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = value;
  return o;
}

function fillFiles() {
  const names = files[hostSelect.value] ?? [];
  fileSelect.replaceChildren(...names.map(option));
  startBtn.disabled = names.length === 0;
}

hostSelect.addEventListener("change", fillFiles);

function setRunning(on) {
  startBtn.hidden = on;
  stopBtn.hidden = !on;
  hostSelect.disabled = on;
  fileSelect.disabled = on;
}

$("lf-form").addEventListener("submit", (e) => {
  e.preventDefault();
  following = { host: hostSelect.value, name: fileSelect.value };
  if (socket.send({ action: "follow", ...following }) === null) state.textContent = "Not connected yet.";
  else state.textContent = `Starting ${following.name} on ${following.host}…`;
});

stopBtn.addEventListener("click", () => {
  following = null;
  socket.send({ action: "stop" });
});

const socket = new ResilientSocket(() => "/ws/logs/", {
  onState: (s, detail) => showConnection($("conn"), s, detail),
  onFrame(frame) {
    switch (frame.type) {
      case "hello": {
        showConnection($("conn"), "live", "");
        files = frame.files ?? {};
        const hosts = Object.keys(files).sort();
        const keep = hostSelect.value;
        hostSelect.replaceChildren(...hosts.map(option));
        if (hosts.includes(keep)) hostSelect.value = keep;
        fillFiles();
        $("lf-none").hidden = hosts.length > 0;
        if (following) {
          // A reconnect: the old task ended with the old socket; follow again from now.
          socket.send({ action: "follow", ...following });
          state.textContent = "Reconnected; following again (lines written meanwhile are not replayed).";
        }
        break;
      }
      case "following":
        setRunning(true);
        state.textContent = `Following ${frame.name} on ${frame.host}.`;
        break;
      case "lines": {
        const ts = new Date().toISOString();
        view.append(frame.lines.map((line) => ({ seq: ++seq, ts, data: { line } })));
        break;
      }
      case "stopped":
        setRunning(false);
        state.textContent = `Stopped (${frame.reason ?? "server"}).`;
        if (frame.reason === "client") following = null;
        break;
      case "error":
        state.textContent = frame.message;
        break;
      default:
        break;
    }
  },
});

window.addEventListener("pagehide", () => socket.stop());
socket.connect();
window.herald = { log: view, socket };

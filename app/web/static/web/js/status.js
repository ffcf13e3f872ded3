// Deploy status shown as colour *and* text everywhere, plus the page title and favicon.

export const FINISHED = new Set(["succeeded", "failed", "cancelled", "interrupted"]);

const SYMBOLS = { queued: "◷", running: "▶", succeeded: "✔", failed: "✖", cancelled: "■", interrupted: "⚠" };

/** Sets a badge element's class and text for a status or step state. */
export function setBadge(el, status) {
  el.className = `badge status-${status}`;
  el.textContent = `${SYMBOLS[status] ?? ""} ${status}`.trim();
}

/** Page title and favicon follow the deploy's status, so a background tab still tells the story. */
export function reflectInTab(status, label, iconBase) {
  document.title = `${SYMBOLS[status] ?? ""} ${status} · ${label} · Herald`.trim();
  const link = document.getElementById("favicon");
  if (link && iconBase) link.href = `${iconBase}favicon-${status in SYMBOLS ? status : "queued"}.svg`;
}

export function formatElapsed(ms) {
  if (ms == null || Number.isNaN(ms) || ms < 0) return "—";
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h) return `${h} h ${m} min`;
  if (m) return `${m} min ${sec} s`;
  return `${sec} s`;
}

/** Elapsed time of a deploy summary: started → finished, or → now while it runs. */
export function elapsedOf(summary, now = Date.now()) {
  const start = summary.started_at || summary.created_at;
  if (!start) return null;
  const end = summary.finished_at ? Date.parse(summary.finished_at) : now;
  return end - Date.parse(start);
}

/** "07:01:02" in the viewer's time zone, with the full ISO time as a tooltip. */
export function setTime(el, iso) {
  el.textContent = iso ? new Date(iso).toLocaleString() : "—";
  if (iso) el.setAttribute("datetime", iso);
}

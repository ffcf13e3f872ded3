// The live log: a virtualized list that renders only the rows in view, so a 100,000-line deploy opens
// and scrolls like a 100-line one. Every row has the same height; a sizer element as tall as all rows
// gives the scrollbar its real length, and a window of row elements is moved to where the user looks.
//
// Model
//   lines    every log line in seq order: {seq, ts, raw, stream, group}; line number = index + 1
//   entries  what the log would show with nothing hidden: step header rows and lines, in arrival order
//            (a number ≥ 0 is a line index, a number < 0 is the header of step −n−1)
//   view     positions in `entries` shown right now (collapsed steps and the search filter hide some);
//            always ascending, so "the row nearest to what I was reading" is a binary search.

import { findAll, parse, plainText, render } from "./ansi.js";

const OVERSCAN = 20;
const SEGMENT_CACHE = 4000;

function formatDuration(ms) {
  if (ms == null) return "";
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - m * 60)} s`;
}

export { formatDuration };

export class LogView {
  /**
   * @param {HTMLElement} scroller  the scrolling element (contains .log-sizer > .log-rows)
   * @param {object} options  lineHref(n) → URL of a line, onChange() after data/view changes,
   *                          onFollow(following, unseen), onSelect(a, b), stepCollapsedByDefault(step)
   */
  constructor(scroller, options = {}) {
    this.scroller = scroller;
    this.sizer = scroller.querySelector(".log-sizer");
    this.rows = scroller.querySelector(".log-rows");
    this.options = options;
    this.lines = [];
    this.plain = [];
    this.linePos = [];
    this.entries = [];
    this.view = [];
    this.steps = new Map();
    this.userCollapsed = new Map();
    this.lastHeaderGroup = -1;
    this.currentGroup = -1;
    this.query = "";
    this.filterOnly = true;
    this.matches = [];
    this.matchCursor = -1;
    this.selection = null;
    this.follow = true;
    this.unseen = 0;
    this.segCache = new Map();
    this.rendered = { first: -1, last: -1, dirty: true };
    this.rowHeight = this.measureRowHeight();
    this.autoTop = 0;
    this.frame = 0;

    scroller.addEventListener("scroll", () => this.onScroll(), { passive: true });
    scroller.addEventListener("wheel", (e) => { if (e.deltaY < 0) this.setFollow(false); }, { passive: true });
    scroller.addEventListener("keydown", (e) => {
      if (["ArrowUp", "PageUp", "Home"].includes(e.key)) this.setFollow(false);
    });
    this.rows.addEventListener("click", (e) => this.onClick(e));
    new ResizeObserver(() => this.schedule(true)).observe(scroller);
  }

  measureRowHeight() {
    const probe = document.createElement("div");
    probe.className = "log-row";
    probe.textContent = "0";
    this.rows.appendChild(probe);
    const h = probe.getBoundingClientRect().height || 18;
    probe.remove();
    return h;
  }

  // ------------------------------------------------------------------ data in

  /** The step a line belongs to: its own `step`, else the step that started last. */
  groupOf(data) {
    return Number.isInteger(data.step) ? data.step : this.currentGroup;
  }

  /** What we know about a step (name, state, duration) changed; `started` marks its step event
   * `running`, which opens its header row at this point of the log. */
  updateStep(step, started = false) {
    const before = this.collapsedSignature();
    this.steps.set(step.index, { ...this.steps.get(step.index), ...step });
    if (started && step.index !== this.currentGroup) {
      this.currentGroup = step.index;
      if (this.lastHeaderGroup !== step.index) this.pushEntry(-(step.index + 1));
    }
    if (this.collapsedSignature() !== before) this.rebuildView();
    this.schedule(true);
  }

  /** Which steps are folded right now, as a string (steps are few; cheap to compare). */
  collapsedSignature() {
    let sig = "";
    for (const group of this.steps.keys()) sig += this.isCollapsed(group) ? `${group}+` : `${group}-`;
    return sig;
  }

  /** Appends log events ({seq, ts, data}) in seq order. */
  append(events) {
    for (const ev of events) {
      const group = this.groupOf(ev.data);
      if (group >= 0 && group !== this.lastHeaderGroup) {
        if (!this.steps.has(group)) this.steps.set(group, { index: group, name: `step ${group + 1}`, state: "running" });
        this.pushEntry(-(group + 1));
      }
      const index = this.lines.length;
      this.lines.push({ seq: ev.seq, ts: ev.ts, raw: String(ev.data.line ?? ""), stream: ev.data.stream, group });
      this.linePos.push(this.entries.length);
      this.pushEntry(index);
    }
    if (!this.follow) this.unseen += events.length;
    this.options.onFollow?.(this.follow, this.unseen);
    this.schedule(true);
  }

  pushEntry(code) {
    const pos = this.entries.length;
    this.entries.push(code);
    if (code < 0) this.lastHeaderGroup = -code - 1;
    if (this.shows(code)) this.view.push(pos);
    if (code >= 0 && this.query && this.matchesQuery(code)) this.matches.push(code);
  }

  // ------------------------------------------------------------------ what is visible

  isCollapsed(group, step = this.steps.get(group)) {
    if (group < 0) return false;
    if (this.userCollapsed.has(group)) return this.userCollapsed.get(group);
    // The current step (running, or the last one that ran) is always open by default.
    if (group === this.currentGroup) return false;
    return step ? Boolean(this.options.stepCollapsedByDefault?.(step)) : false;
  }

  shows(code) {
    if (this.query && this.filterOnly) return code >= 0 && this.matchesQuery(code);
    if (code < 0) return true;
    return !this.isCollapsed(this.lines[code].group);
  }

  plainOf(i) {
    let p = this.plain[i];
    if (p === undefined) {
      p = plainText(this.lines[i].raw);
      this.plain[i] = p;
    }
    return p;
  }

  matchesQuery(i) {
    return this.plainOf(i).toLowerCase().includes(this.query);
  }

  /** Recomputes `view`, keeping the row the user was looking at in the same place. */
  rebuildView() {
    const top = Math.floor(this.scroller.scrollTop / this.rowHeight);
    const anchorPos = this.view[Math.min(top, this.view.length - 1)];
    const offset = this.scroller.scrollTop - top * this.rowHeight;
    const view = [];
    for (let pos = 0; pos < this.entries.length; pos++) if (this.shows(this.entries[pos])) view.push(pos);
    this.view = view;
    this.sizer.style.height = `${this.view.length * this.rowHeight}px`;
    if (this.follow) this.scrollToBottom();
    else if (anchorPos !== undefined) this.scroller.scrollTop = this.nearestRow(anchorPos) * this.rowHeight + offset;
    this.schedule(true);
  }

  /** Index in `view` of the first shown entry at or after entry position pos. */
  nearestRow(pos) {
    let lo = 0;
    let hi = this.view.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.view[mid] < pos) lo = mid + 1;
      else hi = mid;
    }
    return Math.min(lo, Math.max(0, this.view.length - 1));
  }

  toggleStep(group, collapsed = !this.isCollapsed(group)) {
    this.userCollapsed.set(group, collapsed);
    this.rebuildView();
  }

  setAllCollapsed(collapsed) {
    for (const group of this.steps.keys()) this.userCollapsed.set(group, collapsed);
    this.rebuildView();
  }

  // ------------------------------------------------------------------ search

  /** Sets the search text (matched case-insensitively against the text without colour codes). */
  setQuery(query, filterOnly = this.filterOnly) {
    this.query = query.toLowerCase();
    this.filterOnly = filterOnly;
    this.matches = [];
    this.matchCursor = -1;
    if (this.query) {
      for (let i = 0; i < this.lines.length; i++) if (this.matchesQuery(i)) this.matches.push(i);
    }
    this.rebuildView();
    this.options.onChange?.();
  }

  /** Scrolls to the next (dir=1) or previous (dir=-1) match; returns [position, count]. */
  stepMatch(dir) {
    if (!this.matches.length) return [0, 0];
    this.matchCursor = (this.matchCursor + dir + this.matches.length) % this.matches.length;
    this.scrollToLine(this.matches[this.matchCursor] + 1);
    return [this.matchCursor + 1, this.matches.length];
  }

  // ------------------------------------------------------------------ scrolling, follow, selection

  setFollow(follow) {
    if (follow === this.follow) return;
    this.follow = follow;
    if (follow) {
      this.unseen = 0;
      this.scrollToBottom();
    }
    this.options.onFollow?.(this.follow, this.unseen);
  }

  scrollToBottom() {
    this.sizer.style.height = `${this.view.length * this.rowHeight}px`;
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.autoTop = this.scroller.scrollTop;
  }

  onScroll() {
    const s = this.scroller;
    const atBottom = s.scrollTop + s.clientHeight >= s.scrollHeight - this.rowHeight;
    if (atBottom) this.setFollow(true);
    else if (s.scrollTop < this.autoTop - 1) this.setFollow(false);
    this.schedule(false);
  }

  /** Brings line n (1-based) into view, opening its step if it was collapsed. Returns false if absent. */
  scrollToLine(n, align = "center") {
    const i = n - 1;
    if (i < 0 || i >= this.lines.length) return false;
    if (this.isCollapsed(this.lines[i].group)) this.toggleStep(this.lines[i].group, false);
    let row = this.view.indexOf(this.linePos[i]);
    if (row === -1) {
      // Hidden by the filter: clear the filter rather than pretend the line is not there.
      this.setQuery("", this.filterOnly);
      this.options.onQueryCleared?.();
      row = this.view.indexOf(this.linePos[i]);
    }
    this.setFollow(false);
    this.sizer.style.height = `${this.view.length * this.rowHeight}px`;
    const s = this.scroller;
    const y = row * this.rowHeight;
    s.scrollTop = align === "center" ? y - s.clientHeight / 2 + this.rowHeight : y;
    this.autoTop = Infinity; // any later position above the bottom is the user's choice
    this.schedule(true);
    return true;
  }

  scrollToStep(group) {
    if (this.isCollapsed(group)) this.toggleStep(group, false);
    const pos = this.entries.indexOf(-(group + 1));
    if (pos === -1) return;
    this.setFollow(false);
    this.scroller.scrollTop = this.nearestRow(pos) * this.rowHeight;
    this.schedule(true);
  }

  select(a, b = a) {
    this.selection = a ? [Math.min(a, b), Math.max(a, b)] : null;
    this.schedule(true);
  }

  onClick(e) {
    const toggle = e.target.closest(".step-toggle");
    if (toggle) {
      this.toggleStep(Number(toggle.dataset.group));
      return;
    }
    const link = e.target.closest("a.ln");
    if (!link || e.ctrlKey || e.metaKey || e.button !== 0) return;
    e.preventDefault();
    const n = Number(link.dataset.n);
    if (e.shiftKey && this.selection) this.select(this.selection[0], n);
    else this.select(n);
    this.options.onSelect?.(this.selection);
  }

  // ------------------------------------------------------------------ rendering

  schedule(dirty) {
    if (dirty) this.rendered.dirty = true;
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.paint();
    });
  }

  segmentsOf(i) {
    let segs = this.segCache.get(i);
    if (!segs) {
      segs = parse(this.lines[i].raw);
      if (this.segCache.size >= SEGMENT_CACHE) this.segCache.clear();
      this.segCache.set(i, segs);
    }
    return segs;
  }

  paint() {
    const h = this.rowHeight;
    this.sizer.style.height = `${this.view.length * h}px`;
    if (this.follow) {
      this.scroller.scrollTop = this.scroller.scrollHeight;
      this.autoTop = this.scroller.scrollTop;
    }
    const top = this.scroller.scrollTop;
    const first = Math.max(0, Math.floor(top / h) - OVERSCAN);
    const last = Math.min(this.view.length, Math.ceil((top + this.scroller.clientHeight) / h) + OVERSCAN);
    const r = this.rendered;
    if (!r.dirty && r.first === first && r.last === last) return;
    // Rows are rebuilt, so remember which control had keyboard focus and give it back afterwards.
    const focused = this.rows.contains(document.activeElement) ? document.activeElement : null;
    const refocus = focused?.dataset.group != null ? `.step-toggle[data-group="${focused.dataset.group}"]`
      : focused?.dataset.n != null ? `a.ln[data-n="${focused.dataset.n}"]` : null;
    const frag = document.createDocumentFragment();
    for (let row = first; row < last; row++) frag.appendChild(this.buildRow(this.entries[this.view[row]]));
    this.rows.style.transform = `translateY(${first * h}px)`;
    this.rows.replaceChildren(frag);
    if (refocus) (this.rows.querySelector(refocus) ?? this.scroller).focus({ preventScroll: true });
    Object.assign(r, { first, last, dirty: false });
    this.options.onChange?.();
  }

  buildRow(code) {
    const row = document.createElement("div");
    if (code < 0) {
      const group = -code - 1;
      const step = this.steps.get(group) ?? { name: `step ${group + 1}`, state: "running" };
      const collapsed = this.isCollapsed(group);
      row.className = "log-row step-row";
      const button = document.createElement("button");
      button.type = "button";
      button.className = "step-toggle";
      button.dataset.group = String(group);
      button.setAttribute("aria-expanded", String(!collapsed));
      const chevron = document.createElement("span");
      chevron.className = "chev";
      chevron.setAttribute("aria-hidden", "true");
      chevron.textContent = collapsed ? "▸" : "▾";
      const name = document.createElement("span");
      name.className = "step-name";
      name.textContent = step.name;
      const state = document.createElement("span");
      state.className = `badge status-${step.state}`;
      state.textContent = step.state;
      const dur = document.createElement("span");
      dur.className = "step-dur";
      dur.textContent = formatDuration(step.duration_ms);
      button.append(chevron, name, state, dur);
      row.appendChild(button);
      return row;
    }
    const line = this.lines[code];
    const n = code + 1;
    const sel = this.selection && n >= this.selection[0] && n <= this.selection[1];
    row.className = `log-row${line.stream === "stderr" ? " stderr" : ""}${sel ? " selected" : ""}`;
    row.dataset.n = String(n);
    const a = document.createElement("a");
    a.className = "ln";
    a.href = `#L${n}`;
    a.dataset.n = String(n);
    a.textContent = String(n);
    const ts = document.createElement("span");
    ts.className = "ts";
    ts.textContent = line.ts ? `${line.ts.slice(11, 23)} ` : "";
    ts.title = line.ts ?? "";
    const text = document.createElement("span");
    text.className = "tx";
    const ranges = this.query ? findAll(this.plainOf(code), this.query) : [];
    render(text, this.segmentsOf(code), ranges);
    row.append(a, ts, text);
    return row;
  }

  /** Text of the lines currently shown (what a user would copy), without timestamps. */
  shownText() {
    return this.view.filter((p) => this.entries[p] >= 0).map((p) => this.plainOf(this.entries[p]));
  }
}

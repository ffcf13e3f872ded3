// ANSI SGR → styled segments, and segments → DOM nodes.
//
// Only SGR ("ESC [ … m") changes how text looks; every other escape or control character is dropped.
// A carriage return moves the cursor back to column 0 and later text overwrites earlier text, the way a
// terminal shows a progress line. Colour state is reset at the start of every line, so a line renders
// the same wherever it is scrolled into view (the virtualized log renders rows out of order).
//
// Nothing here builds HTML from strings: segments become text nodes and <span>s whose classes and
// colours come from numbers we computed, never from the log text itself.

// CSI sequences (ESC [ params final), other two-byte escapes, OSC strings, and C0 controls except \t, \r.
const TOKEN_RE = /\x1b\[([0-9;:?]*)([\x20-\x2f]*)([\x40-\x7e])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[\x20-\x7e]?|[\x00-\x08\x0a-\x0c\x0e-\x1f\x7f]|\r/g;
const STRIP_RE = /\x1b\[[0-9;:?]*[\x20-\x2f]*[\x40-\x7e]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[\x20-\x7e]?|[\x00-\x08\x0a-\x0c\x0e-\x1f\x7f]/g;

const CUBE = [0, 95, 135, 175, 215, 255];

/** rgb() for xterm-256 colours 16–255; 0–15 are palette classes themed by CSS. */
function xterm256(n) {
  if (n < 232) {
    const i = n - 16;
    return `rgb(${CUBE[Math.floor(i / 36)]},${CUBE[Math.floor(i / 6) % 6]},${CUBE[i % 6]})`;
  }
  const level = 8 + (n - 232) * 10;
  return `rgb(${level},${level},${level})`;
}

const clamp = (v) => Math.max(0, Math.min(255, v | 0));

/** Reads an extended colour (38/48 ;5;n or ;2;r;g;b) from params at i; returns [colour, next index]. */
function extendedColour(params, i) {
  const mode = params[i + 1];
  if (mode === 5 && params.length > i + 2) {
    const n = clamp(params[i + 2]);
    return [n < 16 ? n : xterm256(n), i + 3];
  }
  if (mode === 2 && params.length > i + 4) {
    return [`rgb(${clamp(params[i + 2])},${clamp(params[i + 3])},${clamp(params[i + 4])})`, i + 5];
  }
  return [undefined, params.length];
}

const EMPTY = Object.freeze({});

/** Applies one SGR parameter list to a style and returns the new (frozen, shareable) style. */
function applySgr(style, paramText) {
  const params = paramText === "" ? [0] : paramText.split(/[;:]/).map((p) => (p === "" ? 0 : Number(p)));
  const s = { ...style };
  for (let i = 0; i < params.length; ) {
    const p = params[i];
    if (p === 0) {
      for (const k of Object.keys(s)) delete s[k];
    } else if (p === 1) s.bold = true;
    else if (p === 2) s.dim = true;
    else if (p === 3) s.italic = true;
    else if (p === 4) s.underline = true;
    else if (p === 7) s.inverse = true;
    else if (p === 9) s.strike = true;
    else if (p === 22) { delete s.bold; delete s.dim; }
    else if (p === 23) delete s.italic;
    else if (p === 24) delete s.underline;
    else if (p === 27) delete s.inverse;
    else if (p === 29) delete s.strike;
    else if (p >= 30 && p <= 37) s.fg = p - 30;
    else if (p >= 90 && p <= 97) s.fg = p - 90 + 8;
    else if (p === 39) delete s.fg;
    else if (p >= 40 && p <= 47) s.bg = p - 40;
    else if (p >= 100 && p <= 107) s.bg = p - 100 + 8;
    else if (p === 49) delete s.bg;
    else if (p === 38 || p === 48) {
      const [colour, next] = extendedColour(params, i);
      if (colour !== undefined) s[p === 38 ? "fg" : "bg"] = colour;
      i = next;
      continue;
    }
    i += 1;
  }
  return Object.keys(s).length ? Object.freeze(s) : EMPTY;
}

/** The text of a raw line with every escape and control code removed (what search matches against). */
export function plainText(raw) {
  if (raw.indexOf("\r") === -1) return raw.replace(STRIP_RE, "");
  return parse(raw).map((seg) => seg.text).join("");
}

/**
 * Parses a raw line into [{text, style}], merging neighbours of equal style.
 * A trailing "\r" (or "\r\n") is ignored; any other "\r" returns the cursor to column 0.
 */
export function parse(raw) {
  const line = raw.replace(/\r+\n?$|\n$/, "");
  let style = EMPTY;
  if (line.indexOf("\r") === -1) {
    const segs = [];
    let last = 0;
    const push = (text) => {
      if (!text) return;
      const prev = segs[segs.length - 1];
      if (prev && prev.style === style) prev.text += text;
      else segs.push({ text, style });
    };
    TOKEN_RE.lastIndex = 0;
    for (let m; (m = TOKEN_RE.exec(line)); ) {
      push(line.slice(last, m.index));
      last = TOKEN_RE.lastIndex;
      if (m[3] === "m" && m[2] === "" && !m[1].startsWith("?")) style = applySgr(style, m[1]);
    }
    push(line.slice(last));
    return segs;
  }
  // Slow path for progress lines: a cell per character, so later text overwrites earlier text.
  const cells = [];
  let cursor = 0;
  let last = 0;
  const write = (text) => {
    for (const ch of text) cells[cursor++] = { ch, style };
  };
  TOKEN_RE.lastIndex = 0;
  for (let m; (m = TOKEN_RE.exec(line)); ) {
    write(line.slice(last, m.index));
    last = TOKEN_RE.lastIndex;
    if (m[0] === "\r") cursor = 0;
    else if (m[3] === "m" && m[2] === "" && !m[1].startsWith("?")) style = applySgr(style, m[1]);
  }
  write(line.slice(last));
  const segs = [];
  for (const cell of cells) {
    const prev = segs[segs.length - 1];
    if (prev && prev.style === cell.style) prev.text += cell.ch;
    else segs.push({ text: cell.ch, style: cell.style });
  }
  return segs;
}

/** A <span> (or a bare text node for unstyled text) for one piece of a segment. */
function styledNode(text, style, marked) {
  let node;
  if (style === EMPTY) {
    node = document.createTextNode(text);
  } else {
    node = document.createElement("span");
    node.textContent = text;
    let fg = style.fg;
    let bg = style.bg;
    if (style.inverse) {
      [fg, bg] = [bg === undefined ? "inv-fg" : bg, fg === undefined ? "inv-bg" : fg];
    }
    const classes = [];
    if (typeof fg === "number") classes.push(`a-fg${fg}`);
    else if (fg === "inv-fg") classes.push("a-fg-inv");
    else if (fg) node.style.color = fg;
    if (typeof bg === "number") classes.push(`a-bg${bg}`);
    else if (bg === "inv-bg") classes.push("a-bg-inv");
    else if (bg) node.style.backgroundColor = bg;
    if (style.bold) classes.push("a-b");
    if (style.dim) classes.push("a-dim");
    if (style.italic) classes.push("a-i");
    if (style.underline) classes.push("a-u");
    if (style.strike) classes.push("a-s");
    node.className = classes.join(" ");
  }
  if (!marked) return node;
  const mark = document.createElement("mark");
  mark.appendChild(node);
  return mark;
}

/**
 * Appends the segments to parent as DOM nodes. ranges: sorted, non-overlapping [start, end) offsets into
 * the plain text to wrap in <mark> (search hits).
 */
export function render(parent, segs, ranges = []) {
  let offset = 0;
  let r = 0;
  for (const seg of segs) {
    const end = offset + seg.text.length;
    let pos = offset;
    while (pos < end) {
      while (r < ranges.length && ranges[r][1] <= pos) r += 1;
      const range = ranges[r];
      if (!range || range[0] >= end) {
        parent.appendChild(styledNode(seg.text.slice(pos - offset), seg.style, false));
        pos = end;
      } else if (range[0] > pos) {
        parent.appendChild(styledNode(seg.text.slice(pos - offset, range[0] - offset), seg.style, false));
        pos = range[0];
      } else {
        const stop = Math.min(range[1], end);
        parent.appendChild(styledNode(seg.text.slice(pos - offset, stop - offset), seg.style, true));
        pos = stop;
      }
    }
    offset = end;
  }
}

/** Every [start, end) where needle (already lower-case) occurs in haystack, case-insensitively. */
export function findAll(haystack, needle) {
  const out = [];
  if (!needle) return out;
  const lower = haystack.toLowerCase();
  for (let i = lower.indexOf(needle); i !== -1; i = lower.indexOf(needle, i + needle.length)) {
    out.push([i, i + needle.length]);
  }
  return out;
}

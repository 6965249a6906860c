// The contour plot: heat map and level lines from the server, paths, start, minima and edge markers.

import { COLORS, SVGNS, $, catalog, state, view, el, svgEl, fmt } from "./util.js";
import { saveUrl } from "./url.js";
import { runRace } from "./main.js";
import { markStale } from "./checks.js";

// ------------------------------------------------------------------ contour plot

export const PLOT = { w: 560, pad: { l: 44, r: 10, t: 10, b: 30 } };

export function plotGeometry() {
  const land = catalog.byLandscape[state.landscape];
  const [xmin, xmax, ymin, ymax] = land.box;
  const iw = PLOT.w - PLOT.pad.l - PLOT.pad.r;
  const ih = Math.round(iw * Math.min(1.1, Math.max(0.55, (ymax - ymin) / (xmax - xmin))));
  const h = ih + PLOT.pad.t + PLOT.pad.b;
  const sx = (x) => PLOT.pad.l + ((x - xmin) / (xmax - xmin)) * iw;
  const sy = (y) => PLOT.pad.t + (1 - (y - ymin) / (ymax - ymin)) * ih;
  const ix = (px) => xmin + ((px - PLOT.pad.l) / iw) * (xmax - xmin);
  const iy = (py) => ymin + (1 - (py - PLOT.pad.t) / ih) * (ymax - ymin);
  return { xmin, xmax, ymin, ymax, iw, ih, w: PLOT.w, h, sx, sy, ix, iy };
}

// viridis-like ramp for the level bands (low values dark, high values light)
export const RAMP = [[68, 1, 84], [72, 40, 120], [62, 73, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37]];

export function rampColor(t) {
  const x = Math.min(1, Math.max(0, t)) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(x));
  const f = x - i;
  return RAMP[i].map((c, k) => Math.round(c + f * (RAMP[i + 1][k] - c)));
}

export function heatmapUrl(grid) {
  const n = grid.n;
  const canvas = document.createElement("canvas");
  canvas.width = n; canvas.height = n;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(n, n);
  const levels = grid.levels;
  for (let j = 0; j < n; j++) {
    const row = grid.z[j];
    for (let i = 0; i < n; i++) {
      const v = row[i];
      // position among the contour levels: k levels below v, plus the fraction of the way to the next
      let pos = levels.length;
      if (v !== null) {
        let k = 0;
        while (k < levels.length && levels[k] <= v) k++;
        if (k === 0) pos = 0;
        else if (k < levels.length) pos = k - 1 + (v - levels[k - 1]) / (levels[k] - levels[k - 1]) + 0.5;
      }
      const [r, g, b] = rampColor(pos / levels.length);
      const p = ((n - 1 - j) * n + i) * 4;   // row 0 is y = ymin: bottom of the image
      img.data[p] = r; img.data[p + 1] = g; img.data[p + 2] = b; img.data[p + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  return canvas.toDataURL();
}

export function niceTicks(lo, hi, count = 6) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

export function drawContour() {
  const svg = $("#contour");
  const g = plotGeometry();
  svg.setAttribute("viewBox", `0 0 ${g.w} ${g.h}`);
  svg.replaceChildren();
  const defs = svgEl("defs", {}, svg);
  const clip = svgEl("clipPath", { id: "plot-clip" }, defs);
  svgEl("rect", { x: PLOT.pad.l, y: PLOT.pad.t, width: g.iw, height: g.ih }, clip);
  const land = catalog.byLandscape[state.landscape];
  $("#plot-title").textContent = land.title;
  const grid = view.grid;
  const body = svgEl("g", { "clip-path": "url(#plot-clip)" }, svg);
  if (grid && grid.name === state.landscape) {
    svgEl("image", { href: grid._heat || (grid._heat = heatmapUrl(grid)), x: PLOT.pad.l, y: PLOT.pad.t,
      width: g.iw, height: g.ih, preserveAspectRatio: "none" }, body);
    const lines = svgEl("g", { class: "contours" }, body);
    for (const c of grid.contours) {
      let d = "";
      for (const path of c.paths) {
        d += path.map(([x, y], k) => `${k ? "L" : "M"}${g.sx(x).toFixed(1)},${g.sy(y).toFixed(1)}`).join("");
      }
      if (d) svgEl("path", { d, class: "contour-line" }, lines).append(titleNode(`f = ${fmt(c.level)}`));
    }
  } else {
    svgEl("rect", { x: PLOT.pad.l, y: PLOT.pad.t, width: g.iw, height: g.ih, fill: "#eee" }, body);
  }
  // axes
  const axis = svgEl("g", { class: "axis" }, svg);
  svgEl("rect", { x: PLOT.pad.l, y: PLOT.pad.t, width: g.iw, height: g.ih, fill: "none", stroke: "#888" }, axis);
  for (const x of niceTicks(g.xmin, g.xmax, 6)) {
    svgEl("line", { x1: g.sx(x), x2: g.sx(x), y1: PLOT.pad.t + g.ih, y2: PLOT.pad.t + g.ih + 4 }, axis);
    svgEl("text", { x: g.sx(x), y: PLOT.pad.t + g.ih + 16, "text-anchor": "middle" }, axis).textContent = fmt(x);
  }
  for (const y of niceTicks(g.ymin, g.ymax, 6)) {
    svgEl("line", { x1: PLOT.pad.l - 4, x2: PLOT.pad.l, y1: g.sy(y), y2: g.sy(y) }, axis);
    svgEl("text", { x: PLOT.pad.l - 7, y: g.sy(y) + 4, "text-anchor": "end" }, axis).textContent = fmt(y);
  }
  svgEl("text", { x: PLOT.pad.l + g.iw / 2, y: g.h - 2, "text-anchor": "middle", class: "chart-label" }, axis).textContent = "x";
  svgEl("text", { x: 10, y: PLOT.pad.t + g.ih / 2, "text-anchor": "middle", class: "chart-label" }, axis).textContent = "y";
  // minima, saddles
  const marks = svgEl("g", { id: "minima", "clip-path": "url(#plot-clip)" }, svg);
  for (const m of land.minima) {
    const global = m.kind === "global";
    const star = svgEl("path", { d: starPath(g.sx(m.x), g.sy(m.y), global ? 8 : 6, global ? 3.5 : 2.6),
      class: global ? "minimum-marker" : "minimum-marker local" }, marks);
    star.append(titleNode(`${m.kind} minimum (${fmt(m.x)}, ${fmt(m.y)})`));
  }
  for (const [x, y] of land.saddles) {
    const px = g.sx(x), py = g.sy(y);
    const s = svgEl("path", { d: `M${px - 5},${py - 5}L${px + 5},${py + 5}M${px - 5},${py + 5}L${px + 5},${py - 5}`, class: "saddle-marker" }, marks);
    s.append(titleNode(`saddle point (${fmt(x)}, ${fmt(y)})`));
  }
  svgEl("g", { id: "paths", "clip-path": "url(#plot-clip)" }, svg);
  svgEl("g", { id: "edges" }, svg);
  const start = state.start || land.start;
  const at = (v, s) => (Number.isFinite(v) ? s(v) : 0);   // a start box left empty: drawPaths hides the marker
  svgEl("circle", { id: "start-marker", cx: at(start[0], g.sx), cy: at(start[1], g.sy), r: 6.5, class: "start-marker" }, svg)
    .append(titleNode(`start (${fmt(start[0])}, ${fmt(start[1])}): drag or click elsewhere to move it`));
  drawPaths();
}

function outside(g, x, y) {
  return x < g.xmin || x > g.xmax || y < g.ymin || y > g.ymax;
}

// A point outside the view: an arrow on the edge pointing at it, with its coordinates.
export function edgeMarker(parent, g, x, y, color, what, taken = []) {
  const inset = 9;
  const tx = g.sx(x), ty = g.sy(y);
  const px = Math.min(PLOT.pad.l + g.iw - inset, Math.max(PLOT.pad.l + inset, tx));
  const py = Math.min(PLOT.pad.t + g.ih - inset, Math.max(PLOT.pad.t + inset, ty));
  const a = Math.atan2(ty - py, tx - px);
  const tip = (r, da) => `${(px + r * Math.cos(a + da)).toFixed(1)},${(py + r * Math.sin(a + da)).toFixed(1)}`;
  const grp = svgEl("g", { class: `edge-marker ${what === "start" ? "start-edge" : "end-edge"}` }, parent);
  svgEl("path", { d: `M${tip(8, 0)}L${tip(7, 2.4)}L${tip(7, -2.4)}Z`, fill: color, stroke: "#111", "stroke-width": 1 }, grp);
  const text = `${what === "start" ? "start " : ""}(${fmt(x, 3)}, ${fmt(y, 3)})`;
  // the label sits inside the plot, beside the arrow
  const right = px > PLOT.pad.l + g.iw * 0.6, left = px < PLOT.pad.l + g.iw * 0.4;
  const below = py < PLOT.pad.t + g.ih * 0.5;
  // labels of markers at the same corner stack instead of covering each other
  let ly = py + (below ? 20 : -12);
  while (taken.some(([tx2, ty2]) => Math.abs(tx2 - px) < 120 && Math.abs(ty2 - ly) < 17)) ly += below ? 17 : -17;
  taken.push([px, ly]);
  const label = svgEl("text", { x: px + (right ? -12 : left ? 12 : 0), y: ly,
    "text-anchor": right ? "end" : left ? "start" : "middle", class: "edge-label" }, grp);
  svgEl("tspan", { fill: color, class: "edge-swatch" }, label).textContent = "■ ";
  label.append(document.createTextNode(text));
  grp.append(titleNode(`${what === "start" ? "the start" : "this run's last point"} (${x}, ${y}) lies outside the view`));
  return grp;
}

export function titleNode(text) {
  const t = document.createElementNS(SVGNS, "title");
  t.textContent = text;
  return t;
}

export function starPath(cx, cy, R, r) {
  let d = "";
  for (let k = 0; k < 10; k++) {
    const rad = k % 2 ? r : R;
    const a = -Math.PI / 2 + (k * Math.PI) / 5;
    d += `${k ? "L" : "M"}${(cx + rad * Math.cos(a)).toFixed(1)},${(cy + rad * Math.sin(a)).toFixed(1)}`;
  }
  return d + "Z";
}

// index into a run's records shown at animation frame `frame`
export function recordIndex(result, frame) {
  const last = view.maxStep;
  const step = view.maxFrame ? Math.round((frame / view.maxFrame) * last) : last;
  const rs = result.record_steps;
  let lo = 0, hi = rs.length - 1;
  while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (rs[mid] <= step) lo = mid; else hi = mid - 1; }
  return lo;
}

// the pixel box a path is cut to: far beyond the plot, small enough for SVG's numbers
const FAR_PX = 1e4;

// The part of the segment a -> b (pixels) inside the box |x|, |y| <= FAR_PX (Liang-Barsky) as the
// fractions [t0, t1] of the way from a to b, or null.
// Cutting keeps the segment's direction: clamping each end's coordinates to the box drew a run that
// left the view at (-7e11, 4e10) heading for the corner, at 45 degrees instead of nearly level.
export function clipSegment(a, b) {
  const dx = b[0] - a[0], dy = b[1] - a[1];
  let t0 = 0, t1 = 1;
  for (const [p, q] of [[-dx, a[0] + FAR_PX], [dx, FAR_PX - a[0]], [-dy, a[1] + FAR_PX], [dy, FAR_PX - a[1]]]) {
    if (p === 0) { if (q < 0) return null; continue; }
    const t = q / p;
    if (p < 0) { if (t > t1) return null; t0 = Math.max(t0, t); }
    else { if (t < t0) return null; t1 = Math.min(t1, t); }
  }
  return [t0, t1];
}

// A run's path up to record `upto` as pixel polylines cut to the far box (a path that leaves it and
// comes back is two pieces), and the index of its last finite point (-1: none). Points stop at the
// first non-finite one: what came after did not happen on the plot.
export function pathPieces(path, upto, g) {
  const pieces = [];
  let cur = null, prev = null, last = -1;
  for (let k = 0; k <= upto; k++) {
    const p = path[k];
    if (!p || p[0] === null || p[1] === null) break;
    const px = [g.sx(p[0]), g.sy(p[1])];
    if (!px.every(Number.isFinite)) break;
    last = k;
    if (prev === null) {
      if (Math.abs(px[0]) <= FAR_PX && Math.abs(px[1]) <= FAR_PX) pieces.push((cur = [px]));
    } else {
      const seg = clipSegment(prev, px);
      const along = (t) => [prev[0] + t * (px[0] - prev[0]), prev[1] + t * (px[1] - prev[1])];
      if (!seg) cur = null;
      else {
        if (!cur) pieces.push((cur = [along(seg[0])]));   // (re-)entering the box
        cur.push(seg[1] === 1 ? px : along(seg[1]));
        if (seg[1] !== 1) cur = null;   // it leaves the box here
      }
    }
    prev = px;
  }
  return { pieces: pieces.filter((pc) => pc.length > 1), last };
}

export function drawPaths() {
  const layer = $("#paths");
  if (!layer) return;
  layer.replaceChildren();
  const g = plotGeometry();
  const edges = $("#edges");
  edges.replaceChildren();
  const start = state.start;
  const placed = Boolean(start) && start.every(Number.isFinite);
  const startOut = placed && outside(g, start[0], start[1]);
  $("#start-marker").style.visibility = placed && !startOut ? "" : "hidden";
  const taken = [];
  if (startOut) edgeMarker(edges, g, start[0], start[1], "#fff", "start", taken);
  const res = view.results;
  if (!res || res.landscape !== state.landscape) { $("#legend").replaceChildren(); return; }
  res.runs.forEach((run, i) => {
    const r = run.result;
    const color = COLORS[i % COLORS.length];
    const upto = recordIndex(r, view.frame);
    const { pieces, last } = pathPieces(r.path, upto, g);
    const grp = svgEl("g", { class: "trajectory", "data-run": i }, layer);
    for (const piece of pieces) {
      const points = piece.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
      svgEl("polyline", { points, class: "path-halo" }, grp);
      svgEl("polyline", { points, class: "path-line", stroke: color }, grp).append(titleNode(r.label));
    }
    const lastXY = last < 0 ? null : r.path[last];
    const lastPt = lastXY && [g.sx(lastXY[0]), g.sy(lastXY[1])];
    if (lastPt && outside(g, lastXY[0], lastXY[1])) edgeMarker(edges, g, lastXY[0], lastXY[1], color, "end", taken);
    else if (lastPt) {
      const done = upto === r.path.length - 1;
      if (done && r.diverged) {
        const [px, py] = lastPt;
        svgEl("path", { d: `M${px - 6},${py - 6}L${px + 6},${py + 6}M${px - 6},${py + 6}L${px + 6},${py - 6}`,
          stroke: color, "stroke-width": 3 }, grp);
      } else {
        svgEl("circle", { cx: lastPt[0], cy: lastPt[1], r: 4.5, fill: color, stroke: "#fff", "stroke-width": 1.5 }, grp);
      }
    }
  });
  const legend = $("#legend");
  legend.replaceChildren(...res.runs.map((run, i) => el("li", {},
    el("span", { class: "swatch", style: `--color:${COLORS[i % COLORS.length]}` }),
    document.createTextNode(run.result.label + (run.schedule ? ` + ${run.schedule.name.replace(/_/g, " ")}` : "")))));
  // the minima's stars above the paths' end dots, the start marker on top of all
  const svg = $("#contour");
  svg.append($("#minima"), edges);
  const marker = $("#start-marker");
  if (marker) marker.parentNode.append(marker);
}

export function svgPoint(svg, evt) {
  const pt = svg.createSVGPoint();
  pt.x = evt.clientX; pt.y = evt.clientY;
  return pt.matrixTransform(svg.getScreenCTM().inverse());
}

export function setupPlotInput() {
  const svg = $("#contour");
  let dragging = false;
  const place = (evt) => {
    const g = plotGeometry();
    const p = svgPoint(svg, evt);
    const x = Math.min(g.xmax, Math.max(g.xmin, g.ix(p.x)));
    const y = Math.min(g.ymax, Math.max(g.ymin, g.iy(p.y)));
    // three significant digits of the box size keep the URL short
    const q = (v, span) => Number(v.toFixed(Math.max(0, 3 - Math.floor(Math.log10(span)))));
    state.start = [q(x, g.xmax - g.xmin), q(y, g.ymax - g.ymin)];
    const m = $("#start-marker");
    if (m) { m.setAttribute("cx", g.sx(state.start[0])); m.setAttribute("cy", g.sy(state.start[1])); m.style.visibility = ""; }
    document.querySelectorAll("#edges .start-edge").forEach((n) => n.remove());
    $("#start-x").value = String(state.start[0]);
    $("#start-y").value = String(state.start[1]);
    markStale();   // the paths on show start elsewhere
  };
  svg.addEventListener("pointerdown", (evt) => {
    if (evt.button !== 0) return;
    dragging = true;
    svg.setPointerCapture(evt.pointerId);
    place(evt);
  });
  svg.addEventListener("pointermove", (evt) => {
    const g = plotGeometry();
    const p = svgPoint(svg, evt);
    svg.setAttribute("aria-description", `x ${fmt(g.ix(p.x))}, y ${fmt(g.iy(p.y))}`);
    if (dragging) place(evt);
  });
  const finish = () => {
    if (!dragging) return;
    dragging = false;
    saveUrl();
    runRace();
  };
  svg.addEventListener("pointerup", finish);
  svg.addEventListener("pointercancel", finish);
}

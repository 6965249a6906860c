// Line charts: the loss of each run and the schedule preview of each optimizer.

import { COLORS, $, catalog, state, view, svgEl, fmt, debounce, api, setStatus } from "./util.js";
import { hyperSpec } from "./url.js";
import { niceTicks, titleNode, recordIndex } from "./plot.js";

// ------------------------------------------------------------------ charts

// series: [{points: [[x, y], ...], color, label, run, dash, leaves}]; a series with `leaves` (a diverged
// run) does not set the y range while another series does: it leaves the chart at the edge instead of
// squashing the others into a line along the bottom. opts.decades: the most decades a log axis spans.
export function lineChart(svg, series, opts) {
  const W = 460, H = 230, pad = { l: 54, r: 22, t: 10, b: 32 };
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren();
  const iw = W - pad.l - pad.r, ih = H - pad.t - pad.b;
  const finite = (list) => list.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const all = finite(series);
  if (!all.length) {
    svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "chart-label" }, svg).textContent = opts.empty || "no data";
    return;
  }
  const xmax = Math.max(opts.xMax || 1, ...all.map((p) => p[0]));
  const staying = finite(series.filter((s) => !s.leaves));
  const ranged = staying.length ? staying : all;
  let log = opts.logY;
  const ys = ranged.map((p) => p[1]);
  if (log && ys.some((y) => y <= 0)) log = ys.some((y) => y > 0);
  const usable = log ? ys.filter((y) => y > 0) : ys;
  let ylo = Math.min(...usable), yhi = Math.max(...usable);
  // a log axis in exponents (lo, hi): its ends may lie past the largest double (a loss near 1e308)
  let lo = 0, hi = 1;
  if (log) {
    lo = Math.floor(Math.log10(Math.max(ylo, yhi * 10 ** -(opts.decades || 16))));
    hi = Math.ceil(Math.log10(yhi));
    if (lo === hi) { lo -= 1; hi += 1; }
    // a little room so that lines on a decade do not sit on the frame
    const room = (hi - lo) * 0.04;
    lo -= room; hi += room;
  } else if (ylo === yhi) { ylo -= Math.abs(ylo) * 0.1 || 1; yhi += Math.abs(yhi) * 0.1 || 1; }
  else { const m = (yhi - ylo) * 0.05; ylo -= m; yhi += m; }
  const sx = (x) => pad.l + (x / xmax) * iw;
  // a point far outside keeps its direction (the clip cuts the line at the frame), within a finite pixel
  const at = (t) => pad.t + (1 - Math.min(50, Math.max(-50, t))) * ih;
  const sy = (y) => at(log ? (Math.log10(y) - lo) / (hi - lo) : (y - ylo) / (yhi - ylo));
  const axis = svgEl("g", { class: "axis" }, svg);
  const yt = log ? logTicks(lo, hi).map((e) => [at((e - lo) / (hi - lo)), `1e${e}`])
    : niceTicks(ylo, yhi, 5).map((y) => [sy(y), fmt(y)]);
  for (const [py, text] of yt) {
    svgEl("line", { x1: pad.l, x2: pad.l + iw, y1: py, y2: py, class: "grid-line" }, axis);
    svgEl("text", { x: pad.l - 6, y: py + 4, "text-anchor": "end" }, axis).textContent = text;
  }
  for (const x of niceTicks(0, xmax, 5)) {
    svgEl("line", { x1: sx(x), x2: sx(x), y1: pad.t + ih, y2: pad.t + ih + 4 }, axis);
    svgEl("text", { x: sx(x), y: pad.t + ih + 16, "text-anchor": "middle" }, axis).textContent = fmt(x);
  }
  svgEl("rect", { x: pad.l, y: pad.t, width: iw, height: ih, fill: "none", stroke: "#888" }, axis);
  svgEl("text", { x: pad.l + iw / 2, y: H - 2, "text-anchor": "middle", class: "chart-label" }, svg).textContent = opts.xLabel || "step";
  const clipId = `${svg.id}-clip`;
  const defs = svgEl("defs", {}, svg);
  svgEl("rect", { x: pad.l, y: pad.t - 2, width: iw, height: ih + 4 }, svgEl("clipPath", { id: clipId }, defs));
  const lines = svgEl("g", { "clip-path": `url(#${clipId})` }, svg);
  for (const s of series) {
    let d = "", pen = false;
    for (const [x, y] of s.points) {
      if (!Number.isFinite(y) || (log && y <= 0)) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`;
      pen = true;
    }
    if (d) {
      const p = svgEl("path", { d, fill: "none", stroke: s.color, "stroke-width": 2, "stroke-dasharray": s.dash || null,
        class: "series", "data-run": s.run }, lines);
      p.append(titleNode(s.label));
    }
  }
  if (opts.cursor !== undefined && opts.cursor !== null) {
    svgEl("line", { x1: sx(opts.cursor), x2: sx(opts.cursor), y1: pad.t, y2: pad.t + ih, stroke: "#999", "stroke-dasharray": "3 3" }, svg);
  }
}

// exponents from lo to hi for the ticks of a log axis (exponents themselves): about 6, on round ones
export function logTicks(lo, hi) {
  const span = Math.floor(hi + 1e-9) - Math.ceil(lo - 1e-9);
  const every = [1, 2, 5, 10, 20, 25, 50, 100, 200].find((s) => s >= span / 6) || Math.ceil(span / 6);
  const out = [];
  for (let e = Math.ceil(lo / every - 1e-9) * every; e <= hi + 1e-9; e += every) out.push(e);
  return out;
}

export function drawLossChart() {
  const res = view.results;
  const svg = $("#loss-chart");
  if (!res || res.landscape !== state.landscape) {
    lineChart(svg, [], { empty: "Press Run to see the loss fall." });
    return;
  }
  const land = catalog.byLandscape[res.landscape];
  const fStar = land.f_star;
  $("#loss-title").textContent = fStar === null ? "Loss f(x) vs step" : "Loss gap f(x) − f* vs step (log scale)";
  const series = res.runs.map((run, i) => {
    const r = run.result;
    const upto = recordIndex(r, view.frame);
    const pts = [];
    for (let k = 0; k <= upto; k++) {
      const f = r.losses[k];
      pts.push([r.record_steps[k], f === null ? NaN : fStar === null ? f : f - fStar]);
    }
    return { points: pts, color: COLORS[i % COLORS.length], label: r.label, run: i, leaves: r.diverged };
  });
  lineChart(svg, series, { logY: fStar !== null, xMax: view.maxStep, xLabel: "step" });
}

export async function drawLrPreview() {
  const svg = $("#lr-chart");
  // a setup the server must refuse is shown next to its control; the preview waits for a good one
  if (!Number.isInteger(state.steps) || state.steps < 1 || state.steps > catalog.limits.max_steps) return;
  if (view.previewAbort) view.previewAbort.abort();
  const ctrl = new AbortController();
  view.previewAbort = ctrl;
  const requests = state.runs.map((run) => {
    const spec = hyperSpec(run.optimizer, "lr");
    const lr = typeof run.hyper.lr === "number" ? run.hyper.lr : spec ? spec.default : 0.01;
    if (!(lr >= 0)) return null;
    const body = run.schedule ? { name: run.schedule.name, lr, steps: state.steps, options: run.schedule.options }
      : { name: "constant", lr, steps: state.steps };
    return api("/api/schedule", body, ctrl.signal).catch((err) => (err.name === "AbortError" ? null : { error: err }));
  });
  const out = await Promise.all(requests);
  if (ctrl.signal.aborted) return;
  const series = [];
  out.forEach((r, i) => {
    if (!r || r.error) return;
    const n = r.lr.length;
    const stride = Math.max(1, Math.floor(n / 400));
    const pts = [];
    for (let k = 0; k < n; k += stride) pts.push([k, r.lr[k]]);
    pts.push([n - 1, r.lr[n - 1]]);
    series.push({ points: pts, color: COLORS[i % COLORS.length], label: r.repr, run: i, dash: i % 2 ? "6 3" : null });
  });
  const values = series.flatMap((s) => s.points.map((p) => p[1])).filter((v) => v > 0);
  const spread = values.length ? Math.max(...values) / Math.min(...values) : 1;
  const bad = out.find((r) => r && r.error);
  const empty = bad ? "The schedule has an error: see its card." : "Add an optimizer to see its lr.";
  // every lr a learner set is shown, however far apart (1e-5 next to 1e300)
  lineChart(svg, series, { logY: spread > 3, xMax: state.steps, xLabel: "step", empty, decades: 400 });
  if (bad) setStatus(`schedule: ${bad.error.message}`, true);
}

export const schedulePreviewSoon = debounce(drawLrPreview, 250);

// Shared state and small helpers of the lab page. This page only draws: landscapes, contour
// lines, runs and schedules all come from the JSON API (descend on the server).

// no green among the runs' colours: green on the page means "reached the minimum" (the table's td.good)
export const COLORS = ["#e8590c", "#1c7ed6", "#7c4a1e", "#ae3ec9", "#f08c00", "#0c8599", "#c2255c", "#495057"];
export const SVGNS = "http://www.w3.org/2000/svg";
export const MAX_FRAMES = 120;          // animation frames for one race
export const ANIMATION_MS = 2200;
// auto re-run: a committed change (a value typed, a choice made, a slider let go) races at once; the
// ticks of a slider drag wait until the drag pauses this long
export const LIVE_COMMIT_MS = 0;
export const LIVE_DRAG_MS = 450;

export const $ = (sel, root = document) => root.querySelector(sel);

export const catalog = { landscapes: [], byLandscape: {}, optimizers: {}, schedules: {}, limits: {}, costs: null };
export const state = { landscape: "rosenbrock", start: null, steps: 2000, tol: 1e-6, runs: [] };
export const view = { grid: null, results: null, frame: 0, maxFrame: 0, anim: null, runCount: 0,
  runAbort: null, previewAbort: null, liveTimer: null, previewTimer: null, hasRun: false, openEntry: false,
  resultsKey: null, failed: false };   // resultsKey: the request (as JSON) the results on show answer

// one id per page load: the server runs one request of this page at a time, the newest
export const SESSION = (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2)).replace(/[^\w-]/g, "");

// ------------------------------------------------------------------ helpers

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

export function svgEl(tag, attrs = {}, parent = null) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, v);
  if (parent) parent.append(node);
  return node;
}

export function fmt(v, digits = 3) {
  if (v === null || v === undefined) return "—";
  if (typeof v !== "number") return String(v);
  if (!Number.isFinite(v)) return "—";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(digits - 1).replace("e+", "e");
  return String(Number(v.toPrecision(digits)));
}

// a number as typed by a person: 1e-6 rather than 0.000001
export function numText(v) {
  return v !== 0 && Math.abs(v) < 1e-3 ? v.toExponential().replace("e+", "e") : String(v);
}

export function debounce(fn, ms) {
  let t = null;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}

export async function api(path, body, signal) {
  const headers = { "x-descend-session": SESSION };
  const opts = body === undefined ? { signal, headers } :
    { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: JSON.stringify(body), signal };
  let res;
  try {
    res = await fetch(path, opts);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    // the browser says only "Failed to fetch"
    throw new Error("could not reach the server: is descend serve still running?");
  }
  let data = null;
  try { data = await res.json(); } catch { data = null; }
  if (!res.ok) {
    const err = new Error((data && (data.message || data.detail)) || `${res.status} ${res.statusText}`);
    err.status = res.status;
    err.detail = data && Array.isArray(data.detail) ? data.detail : [];
    throw err;
  }
  return data;
}

export function setStatus(text, isError = false) {
  const s = $("#status");
  s.textContent = text;
  s.classList.toggle("error", isError);
}

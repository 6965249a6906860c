// descend lab page. This file only draws: landscapes, contour lines, runs and
// schedules all come from the JSON API (descend on the server). No optimizer
// math happens here.
"use strict";

const COLORS = ["#e8590c", "#1c7ed6", "#2f9e44", "#ae3ec9", "#f08c00", "#0c8599", "#c2255c", "#495057"];
const SVGNS = "http://www.w3.org/2000/svg";
const MAX_FRAMES = 120;          // animation frames for one race
const ANIMATION_MS = 2200;

const $ = (sel, root = document) => root.querySelector(sel);

const catalog = { landscapes: [], byLandscape: {}, optimizers: {}, schedules: {}, limits: {} };
const state = { landscape: "rosenbrock", start: null, steps: 2000, tol: 1e-6, runs: [] };
const view = { grid: null, results: null, frame: 0, maxFrame: 0, anim: null, runCount: 0,
  runAbort: null, previewAbort: null, liveTimer: null, previewTimer: null, hasRun: false };

// ------------------------------------------------------------------ helpers

function el(tag, attrs = {}, ...children) {
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

function svgEl(tag, attrs = {}, parent = null) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, v);
  if (parent) parent.append(node);
  return node;
}

function fmt(v, digits = 3) {
  if (v === null || v === undefined) return "—";
  if (typeof v !== "number") return String(v);
  if (!Number.isFinite(v)) return "—";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(digits - 1).replace("e+", "e");
  return String(Number(v.toPrecision(digits)));
}

// a number as typed by a person: 1e-6 rather than 0.000001
function numText(v) {
  return v !== 0 && Math.abs(v) < 1e-3 ? v.toExponential().replace("e+", "e") : String(v);
}

function debounce(fn, ms) {
  let t = null;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}

async function api(path, body, signal) {
  const opts = body === undefined ? { signal } :
    { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal };
  const res = await fetch(path, opts);
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

function setStatus(text, isError = false) {
  const s = $("#status");
  s.textContent = text;
  s.classList.toggle("error", isError);
}

// ------------------------------------------------------------------ URL state
// ?landscape=rosenbrock&x=-1.2&y=1&steps=500&tol=1e-8
//  &r1=adam&r1.lr=0.02&r1.schedule=cosine&r1.schedule.final_lr=0.001&r2=gd&r2.lr=0.001

function hyperSpec(optimizer, name) {
  const opt = catalog.optimizers[resolveName(optimizer)];
  return opt ? opt.hyper.find((h) => h.name === name) : undefined;
}

function resolveName(name) {
  return name === "gd" ? "sgd" : name;
}

function parseValue(text, kind) {
  if (kind === "bool") return text === "true" || text === "1";
  if (kind === "integer") { const n = Number(text); return Number.isInteger(n) ? n : text; }
  if (kind === "number") { const n = Number(text); return Number.isFinite(n) ? n : text; }
  return text;
}

function stateToQuery() {
  const q = new URLSearchParams();
  q.set("landscape", state.landscape);
  if (state.start) { q.set("x", String(state.start[0])); q.set("y", String(state.start[1])); }
  q.set("steps", String(state.steps));
  q.set("tol", numText(state.tol));
  state.runs.forEach((r, i) => {
    const p = `r${i + 1}`;
    q.set(p, r.optimizer);
    for (const [k, v] of Object.entries(r.hyper)) q.set(`${p}.${k}`, typeof v === "number" ? numText(v) : String(v));
    if (r.schedule) {
      q.set(`${p}.schedule`, r.schedule.name);
      for (const [k, v] of Object.entries(r.schedule.options)) q.set(`${p}.schedule.${k}`, String(v));
    }
  });
  return q;
}

function saveUrlNow() {
  const url = `${location.pathname}?${stateToQuery().toString()}`;
  history.replaceState(null, "", url);
}

// sliders fire many events a second; browsers throttle history updates, so batch them
let urlTimer = null;
function saveUrl() {
  clearTimeout(urlTimer);
  urlTimer = setTimeout(saveUrlNow, 120);
}

function loadUrl() {
  const q = new URLSearchParams(location.search);
  if (![...q.keys()].length) return false;
  const names = catalog.landscapes.map((l) => l.name);
  if (q.has("landscape") && names.includes(q.get("landscape"))) state.landscape = q.get("landscape");
  const land = catalog.byLandscape[state.landscape];
  const x = Number(q.get("x")), y = Number(q.get("y"));
  state.start = q.has("x") && q.has("y") && Number.isFinite(x) && Number.isFinite(y) ? [x, y] : [...land.start];
  if (q.has("steps")) { const s = Number(q.get("steps")); if (Number.isInteger(s) && s > 0) state.steps = s; }
  if (q.has("tol")) { const t = Number(q.get("tol")); if (Number.isFinite(t) && t >= 0) state.tol = t; }
  const runs = [];
  for (let i = 1; i <= 64; i++) {
    const p = `r${i}`;
    if (!q.has(p)) continue;
    const optimizer = q.get(p);
    if (!catalog.optimizers[resolveName(optimizer)]) continue;
    const run = { optimizer, hyper: {}, schedule: null };
    for (const [k, v] of q.entries()) {
      if (!k.startsWith(`${p}.`)) continue;
      const key = k.slice(p.length + 1);
      if (key === "schedule") continue;
      if (key.startsWith("schedule.")) continue;
      const spec = hyperSpec(optimizer, key);
      run.hyper[key] = parseValue(v, spec ? spec.kind : "number");
    }
    if (q.has(`${p}.schedule`) && catalog.schedules[q.get(`${p}.schedule`)]) {
      const sched = catalog.schedules[q.get(`${p}.schedule`)];
      run.schedule = { name: sched.name, options: {} };
      for (const [k, v] of q.entries()) {
        if (!k.startsWith(`${p}.schedule.`)) continue;
        const key = k.slice(`${p}.schedule.`.length);
        const spec = sched.options.find((o) => o.name === key);
        run.schedule.options[key] = parseValue(v, spec ? spec.kind : "number");
      }
    }
    runs.push(run);
  }
  if (runs.length) state.runs = runs.slice(0, catalog.limits.max_runs || 8);
  return true;
}

// ------------------------------------------------------------------ controls

function optionText(opt) {
  return opt.name === "sgd" ? "SGD (plain gradient descent)" : opt.class;
}

function newRun(optimizer) {
  const preset = (catalog.optimizers[resolveName(optimizer)] || {}).preset || {};
  return { optimizer, hyper: { ...preset }, schedule: null };
}

function renderControls() {
  $("#landscape").value = state.landscape;
  const land = catalog.byLandscape[state.landscape];
  $("#landscape-note").textContent = land ? land.note : "";
  // the lab stops at f - f* < tol, or at a small gradient where f* is unknown
  const criterion = land && land.f_star === null ? "‖∇f‖ < tol: f* unknown" : "f − f* < tol";
  $("#tol-hint").textContent = `(${criterion})`;
  $("#tol-head").title = `first step with ${criterion.split(":")[0]}`;
  $("#start-x").value = state.start ? fmt(state.start[0], 4) : "";
  $("#start-y").value = state.start ? fmt(state.start[1], 4) : "";
  $("#steps").value = state.steps;
  $("#tol").value = numText(state.tol);
  const box = $("#runs");
  box.replaceChildren(...state.runs.map((r, i) => renderRunCard(r, i)));
  const full = state.runs.length >= (catalog.limits.max_runs || 8);
  $("#add-run").disabled = full;
  $("#add-run").title = full ? `at most ${catalog.limits.max_runs} optimizers per race` : "";
}

// a name that may break after its underscores (long names wrap instead of being cut)
function breakable(name) {
  const out = [];
  name.split("_").forEach((part, k, all) => {
    out.push(document.createTextNode(part + (k < all.length - 1 ? "_" : "")));
    if (k < all.length - 1) out.push(document.createElement("wbr"));
  });
  return out;
}

function hyperControl(run, spec, i) {
  const id = `r${i}-${spec.name}`;
  const has = Object.prototype.hasOwnProperty.call(run.hyper, spec.name);
  const value = has ? run.hyper[spec.name] : spec.default;
  const label = el("label", { for: id, title: spec.name }, ...breakable(spec.name));
  const set = (v) => {
    if (v === undefined) delete run.hyper[spec.name];
    else run.hyper[spec.name] = v;
    changed({ preview: spec.name === "lr" });
  };
  if (spec.kind === "bool" && !spec.nullable) {
    const box = el("input", { id, type: "checkbox", "data-hyper": spec.name });
    box.checked = Boolean(value);
    box.addEventListener("change", () => set(box.checked === spec.default ? undefined : box.checked));
    return el("div", { class: "hyper check" }, label, box);
  }
  if (spec.kind === "choice" || spec.kind === "bool") {
    const choices = spec.kind === "bool" ? ["true", "false"] : spec.choices;
    const sel = el("select", { id, "data-hyper": spec.name });
    if (spec.nullable) sel.append(el("option", { value: "", text: "auto (default)" }));
    for (const c of choices) sel.append(el("option", { value: String(c), text: String(c) }));
    sel.value = value === null || value === undefined ? "" : String(value);
    sel.addEventListener("change", () => {
      if (sel.value === "") return set(undefined);
      set(spec.kind === "bool" ? sel.value === "true" : sel.value);
    });
    return el("div", { class: "hyper wide" }, label, sel);
  }
  // numbers: a slider over the sensible range plus an exact box
  const num = el("input", {
    id, type: "number", step: spec.kind === "integer" ? "1" : "any", "data-hyper": spec.name,
    min: spec.min ?? undefined, max: spec.max ?? undefined, inputmode: "decimal",
    placeholder: spec.nullable ? "auto" : undefined,
  });
  num.value = value === null || value === undefined ? "" : String(value);
  const ui = spec.ui;
  if (!ui || spec.nullable) {
    num.addEventListener("change", () => {
      if (num.value.trim() === "") return set(undefined);
      const v = Number(num.value);
      set(spec.kind === "integer" && Number.isInteger(v) ? v : v);
    });
    return el("div", { class: "hyper wide" }, label, num);
  }
  const slider = el("input", { type: "range", min: "0", max: "1000", step: "1", "aria-label": `${spec.name} slider`, tabindex: "-1" });
  const toSlider = (v) => {
    if (!Number.isFinite(v)) return 0;
    let t;
    if (ui.log) {
      const lo = Math.log10(Math.max(ui.min, 1e-300)), hi = Math.log10(ui.max);
      t = (Math.log10(Math.max(v, ui.min)) - lo) / (hi - lo);
    } else {
      t = (v - ui.min) / (ui.max - ui.min);
    }
    return Math.round(1000 * Math.min(1, Math.max(0, t)));
  };
  const fromSlider = (pos) => {
    const t = pos / 1000;
    let v = ui.log ? 10 ** (Math.log10(ui.min) + t * (Math.log10(ui.max) - Math.log10(ui.min)))
      : ui.min + t * (ui.max - ui.min);
    if (spec.kind === "integer") return Math.round(v);
    v = Number(v.toPrecision(2));
    return v;
  };
  slider.value = String(toSlider(Number(value)));
  slider.addEventListener("input", () => {
    const v = fromSlider(Number(slider.value));
    num.value = String(v);
    set(v);
  });
  num.addEventListener("change", () => {
    if (num.value.trim() === "") { set(undefined); num.value = String(spec.default); slider.value = String(toSlider(spec.default)); return; }
    const v = Number(num.value);
    slider.value = String(toSlider(v));
    set(v);
  });
  return el("div", { class: "hyper" }, label, slider, num);
}

function scheduleOptionControl(run, spec, i) {
  const id = `r${i}-sched-${spec.name}`;
  const opts = run.schedule.options;
  const has = Object.prototype.hasOwnProperty.call(opts, spec.name);
  const label = el("label", { for: id, title: spec.help }, ...breakable(spec.name + (spec.required ? " *" : "")));
  const set = (v) => {
    if (v === undefined) delete opts[spec.name];
    else opts[spec.name] = v;
    changed({ preview: true });
  };
  if (spec.kind === "bool") {
    const box = el("input", { id, type: "checkbox", "data-sched": spec.name, title: spec.help });
    box.checked = has && Boolean(opts[spec.name]);
    box.addEventListener("change", () => set(box.checked ? true : undefined));
    return el("div", { class: "hyper check" }, label, box);
  }
  if (spec.kind === "choice") {
    const sel = el("select", { id, "data-sched": spec.name, title: spec.help });
    sel.append(el("option", { value: "", text: "default" }));
    for (const c of spec.choices) sel.append(el("option", { value: c, text: c }));
    sel.value = has ? String(opts[spec.name]) : "";
    sel.addEventListener("change", () => set(sel.value === "" ? undefined : sel.value));
    return el("div", { class: "hyper wide" }, label, sel);
  }
  const isText = spec.kind === "list" || spec.kind === "string";
  const input = el("input", {
    id, type: isText ? "text" : "number", step: spec.kind === "integer" ? "1" : "any",
    "data-sched": spec.name, title: spec.help, placeholder: isText ? "e.g. 100,200" : "default",
  });
  input.value = has ? String(opts[spec.name]) : "";
  input.addEventListener("change", () => {
    const t = input.value.trim();
    if (t === "") return set(undefined);
    set(isText ? t : parseValue(t, spec.kind));
  });
  return el("div", { class: "hyper wide" }, label, input);
}

function renderRunCard(run, i) {
  const card = $("#run-card").content.firstElementChild.cloneNode(true);
  card.style.setProperty("--color", COLORS[i % COLORS.length]);
  card.dataset.index = String(i);
  const sel = $(".opt-select", card);
  for (const [name, opt] of Object.entries(catalog.optimizers)) {
    sel.append(el("option", { value: name, text: optionText(opt) }));
  }
  sel.value = resolveName(run.optimizer);
  sel.addEventListener("change", () => {
    state.runs[i] = { ...newRun(sel.value), schedule: run.schedule };
    renderControls();
    changed({ preview: true });
  });
  $(".remove", card).addEventListener("click", () => {
    state.runs.splice(i, 1);
    renderControls();
    changed({ preview: true });
  });
  const opt = catalog.optimizers[resolveName(run.optimizer)];
  $(".summary", card).textContent = opt.summary.replace(/``/g, "").replace(/::$/, "");
  const primary = opt.hyper.filter((h) => h.primary);
  const rest = opt.hyper.filter((h) => !h.primary);
  $(".hypers", card).replaceChildren(...primary.map((h) => hyperControl(run, h, i)));
  $(".hypers-more", card).replaceChildren(...rest.map((h) => hyperControl(run, h, i)));
  $(".more", card).hidden = rest.length === 0;
  if (rest.some((h) => Object.prototype.hasOwnProperty.call(run.hyper, h.name))) $(".more", card).open = true;

  const ssel = $(".sched-select", card);
  ssel.id = `r${i}-schedule`;
  $(".schedule label", card).setAttribute("for", ssel.id);
  ssel.append(el("option", { value: "", text: "none (constant lr)" }));
  for (const name of Object.keys(catalog.schedules)) {
    if (name === "constant") continue;
    ssel.append(el("option", { value: name, text: name.replace(/_/g, " ") }));
  }
  ssel.value = run.schedule ? run.schedule.name : "";
  ssel.addEventListener("change", () => {
    if (!ssel.value) run.schedule = null;
    else {
      const spec = catalog.schedules[ssel.value];
      const options = {};
      for (const o of spec.options) if (o.required && o.default !== undefined) options[o.name] = o.default;
      run.schedule = { name: ssel.value, options };
    }
    renderControls();
    changed({ preview: true });
  });
  if (run.schedule) {
    const spec = catalog.schedules[run.schedule.name];
    const main = spec.options.filter((o) => o.required);
    const more = spec.options.filter((o) => !o.required);
    $(".sched-options", card).replaceChildren(...main.map((o) => scheduleOptionControl(run, o, i)));
    $(".sched-options-more", card).replaceChildren(...more.map((o) => scheduleOptionControl(run, o, i)));
    $(".sched-more", card).hidden = more.length === 0;
    if (more.some((o) => Object.prototype.hasOwnProperty.call(run.schedule.options, o.name))) $(".sched-more", card).open = true;
  }
  return card;
}

function clearErrors() {
  document.querySelectorAll(".invalid").forEach((n) => n.classList.remove("invalid"));
  document.querySelectorAll(".run-card").forEach((c) => c.classList.remove("has-error"));
  document.querySelectorAll(".card-error").forEach((p) => { p.hidden = true; p.textContent = ""; });
}

// "runs.1.hyper.lr" as a learner reads it: "Optimizer 2 (Adam), lr"
function fieldName(loc) {
  const parts = loc.filter((p) => p !== "body");
  if (parts[0] === "runs" && Number.isInteger(parts[1])) {
    const run = state.runs[parts[1]];
    const opt = run && catalog.optimizers[resolveName(run.optimizer)];
    const rest = parts.slice(2).filter((p) => p !== "hyper" && p !== "options");
    return `Optimizer ${parts[1] + 1}${opt ? ` (${opt.class})` : ""}${rest.length ? ", " + rest.join(" ") : ""}`;
  }
  return parts.join(" ") || "request";
}

function showApiError(err) {
  clearErrors();
  const details = err.detail || [];
  setStatus(details.length ? details.map((d) => `${fieldName(d.loc || [])}: ${d.msg}`).join("; ") : err.message, true);
  for (const d of details) {
    const loc = (d.loc || []).filter((p) => p !== "body");
    if (loc[0] === "runs" && Number.isInteger(loc[1])) {
      const card = document.querySelector(`.run-card[data-index="${loc[1]}"]`);
      if (!card) continue;
      card.classList.add("has-error");
      const p = $(".card-error", card);
      p.hidden = false;
      p.textContent = d.msg;
      let target = null;
      if (loc[2] === "hyper" && loc[3]) target = card.querySelector(`[data-hyper="${loc[3]}"]`);
      if (loc[2] === "schedule") target = loc[4] ? card.querySelector(`[data-sched="${loc[4]}"]`) : $(".sched-select", card);
      if (target) {
        target.classList.add("invalid");
        const details = target.closest("details");
        if (details) details.open = true;
      }
    } else if (loc[0] === "steps") $("#steps").classList.add("invalid");
    else if (loc[0] === "tol") $("#tol").classList.add("invalid");
    else if (loc[0] === "start") { $("#start-x").classList.add("invalid"); $("#start-y").classList.add("invalid"); }
  }
}

function changed({ preview = false, live = true } = {}) {
  saveUrl();
  if (preview) schedulePreviewSoon();
  if (live && view.hasRun && $("#live").checked) {
    clearTimeout(view.liveTimer);
    view.liveTimer = setTimeout(runRace, 450);
  }
}

// ------------------------------------------------------------------ contour plot

const PLOT = { w: 560, pad: { l: 44, r: 10, t: 10, b: 30 } };

function plotGeometry() {
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
const RAMP = [[68, 1, 84], [72, 40, 120], [62, 73, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37]];

function rampColor(t) {
  const x = Math.min(1, Math.max(0, t)) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(x));
  const f = x - i;
  return RAMP[i].map((c, k) => Math.round(c + f * (RAMP[i + 1][k] - c)));
}

function heatmapUrl(grid) {
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

function niceTicks(lo, hi, count = 6) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

function drawContour() {
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
  const marks = svgEl("g", { "clip-path": "url(#plot-clip)" }, svg);
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
  const start = state.start || land.start;
  svgEl("circle", { id: "start-marker", cx: g.sx(start[0]), cy: g.sy(start[1]), r: 6.5, class: "start-marker" }, svg)
    .append(titleNode(`start (${fmt(start[0])}, ${fmt(start[1])}): drag or click elsewhere to move it`));
  drawPaths();
}

function titleNode(text) {
  const t = document.createElementNS(SVGNS, "title");
  t.textContent = text;
  return t;
}

function starPath(cx, cy, R, r) {
  let d = "";
  for (let k = 0; k < 10; k++) {
    const rad = k % 2 ? r : R;
    const a = -Math.PI / 2 + (k * Math.PI) / 5;
    d += `${k ? "L" : "M"}${(cx + rad * Math.cos(a)).toFixed(1)},${(cy + rad * Math.sin(a)).toFixed(1)}`;
  }
  return d + "Z";
}

// index into a run's records shown at animation frame `frame`
function recordIndex(result, frame) {
  const last = view.maxStep;
  const step = view.maxFrame ? Math.round((frame / view.maxFrame) * last) : last;
  const rs = result.record_steps;
  let lo = 0, hi = rs.length - 1;
  while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (rs[mid] <= step) lo = mid; else hi = mid - 1; }
  return lo;
}

function drawPaths() {
  const layer = $("#paths");
  if (!layer) return;
  layer.replaceChildren();
  const res = view.results;
  if (!res || res.landscape !== state.landscape) { $("#legend").replaceChildren(); return; }
  const g = plotGeometry();
  const clampPx = (v) => Math.max(-1e4, Math.min(1e4, v));
  res.runs.forEach((run, i) => {
    const r = run.result;
    const color = COLORS[i % COLORS.length];
    const upto = recordIndex(r, view.frame);
    const pts = [];
    for (let k = 0; k <= upto; k++) {
      const p = r.path[k];
      if (!p || p[0] === null || p[1] === null) break;
      pts.push(`${clampPx(g.sx(p[0])).toFixed(1)},${clampPx(g.sy(p[1])).toFixed(1)}`);
    }
    const grp = svgEl("g", { class: "trajectory", "data-run": i }, layer);
    if (pts.length > 1) {
      svgEl("polyline", { points: pts.join(" "), class: "path-halo" }, grp);
      svgEl("polyline", { points: pts.join(" "), class: "path-line", stroke: color }, grp)
        .append(titleNode(r.label));
    }
    const lastPt = pts.length ? pts[pts.length - 1].split(",").map(Number) : null;
    if (lastPt) {
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
  // the start marker stays on top of the paths
  const marker = $("#start-marker");
  if (marker) marker.parentNode.append(marker);
}

function svgPoint(svg, evt) {
  const pt = svg.createSVGPoint();
  pt.x = evt.clientX; pt.y = evt.clientY;
  return pt.matrixTransform(svg.getScreenCTM().inverse());
}

function setupPlotInput() {
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
    if (m) { m.setAttribute("cx", g.sx(state.start[0])); m.setAttribute("cy", g.sy(state.start[1])); }
    $("#start-x").value = String(state.start[0]);
    $("#start-y").value = String(state.start[1]);
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

// ------------------------------------------------------------------ charts

function lineChart(svg, series, opts) {
  const W = 460, H = 230, pad = { l: 54, r: 22, t: 10, b: 32 };
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren();
  const iw = W - pad.l - pad.r, ih = H - pad.t - pad.b;
  const all = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  if (!all.length) {
    svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "chart-label" }, svg).textContent = opts.empty || "no data";
    return;
  }
  const xmax = Math.max(opts.xMax || 1, ...all.map((p) => p[0]));
  let log = opts.logY;
  const ys = all.map((p) => p[1]);
  if (log && ys.some((y) => y <= 0)) log = ys.some((y) => y > 0);
  const usable = log ? ys.filter((y) => y > 0) : ys;
  let ylo = Math.min(...usable), yhi = Math.max(...usable);
  if (log) {
    ylo = Math.max(ylo, yhi * 1e-16);
    ylo = 10 ** Math.floor(Math.log10(ylo)); yhi = 10 ** Math.ceil(Math.log10(yhi));
    if (ylo === yhi) { ylo /= 10; yhi *= 10; }
    // a little room so that lines on a decade do not sit on the frame
    const room = (Math.log10(yhi) - Math.log10(ylo)) * 0.04;
    ylo /= 10 ** room; yhi *= 10 ** room;
  } else if (ylo === yhi) { ylo -= Math.abs(ylo) * 0.1 || 1; yhi += Math.abs(yhi) * 0.1 || 1; }
  else { const m = (yhi - ylo) * 0.05; ylo -= m; yhi += m; }
  const sx = (x) => pad.l + (x / xmax) * iw;
  const ty = (y) => (log ? (Math.log10(y) - Math.log10(ylo)) / (Math.log10(yhi) - Math.log10(ylo)) : (y - ylo) / (yhi - ylo));
  const sy = (y) => pad.t + (1 - Math.min(1.02, Math.max(-0.02, ty(y)))) * ih;
  const axis = svgEl("g", { class: "axis" }, svg);
  const yt = log ? logTicks(ylo, yhi) : niceTicks(ylo, yhi, 5);
  for (const y of yt) {
    svgEl("line", { x1: pad.l, x2: pad.l + iw, y1: sy(y), y2: sy(y), class: "grid-line" }, axis);
    svgEl("text", { x: pad.l - 6, y: sy(y) + 4, "text-anchor": "end" }, axis).textContent = log ? `1e${Math.round(Math.log10(y))}` : fmt(y);
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

function logTicks(lo, hi) {
  const a = Math.ceil(Math.log10(lo) - 1e-9), b = Math.floor(Math.log10(hi) + 1e-9);
  const every = Math.max(1, Math.ceil((b - a) / 6));
  const out = [];
  for (let e = a; e <= b; e += every) out.push(10 ** e);
  return out;
}

function drawLossChart() {
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
    return { points: pts, color: COLORS[i % COLORS.length], label: r.label, run: i };
  });
  lineChart(svg, series, { logY: fStar !== null, xMax: view.maxStep, xLabel: "step" });
}

async function drawLrPreview() {
  const svg = $("#lr-chart");
  if (view.previewAbort) view.previewAbort.abort();
  const ctrl = new AbortController();
  view.previewAbort = ctrl;
  const requests = state.runs.map((run) => {
    const spec = hyperSpec(run.optimizer, "lr");
    const lr = typeof run.hyper.lr === "number" ? run.hyper.lr : spec ? spec.default : 0.01;
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
  lineChart(svg, series, { logY: spread > 3, xMax: state.steps, xLabel: "step", empty: "Add an optimizer to see its lr." });
  const bad = out.find((r) => r && r.error);
  if (bad) setStatus(`schedule: ${bad.error.message}`, true);
}

const schedulePreviewSoon = debounce(drawLrPreview, 250);

// ------------------------------------------------------------------ results

function renderTable() {
  const body = $("#results tbody");
  const res = view.results;
  if (!res) {
    body.replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: "7", text: "Press Run to race the optimizers." })));
    return;
  }
  const land = catalog.byLandscape[res.landscape];
  body.replaceChildren(...res.runs.map((run, i) => {
    const r = run.result;
    const end = r.path[r.path.length - 1];
    const reached = r.steps_to_tol !== null;
    const name = el("td", {}, el("span", { class: "swatch", style: `--color:${COLORS[i % COLORS.length]}` }),
      document.createTextNode(r.label + (run.schedule ? ` + ${run.schedule.name.replace(/_/g, " ")}` : "")));
    return el("tr", { "data-run": i },
      name,
      el("td", { class: reached ? "good" : "", text: reached ? String(r.steps_to_tol) : `not within ${res.steps}` }),
      el("td", { text: fmt(r.final_loss, 4) }),
      el("td", { text: land.f_star === null ? "n/a" : fmt(r.final_gap, 3) }),
      el("td", { text: end && end[0] !== null ? `(${fmt(end[0], 4)}, ${fmt(end[1], 4)})` : "—" }),
      el("td", { class: r.diverged ? "bad" : "", text: r.diverged ? `yes, step ${r.steps}` : "no" }),
      el("td", { text: `${fmt(r.wall_time * 1000, 3)} ms` }));
  }));
}

function setFrame(frame) {
  view.frame = frame;
  $("#frame").value = String(frame);
  const step = view.maxFrame ? Math.round((frame / view.maxFrame) * view.maxStep) : view.maxStep;
  $("#frame-label").textContent = `step ${step} / ${view.maxStep}`;
  drawPaths();
  drawLossChart();
}

function animate() {
  cancelAnimationFrame(view.anim);
  const t0 = performance.now();
  const tick = (now) => {
    const frame = Math.min(view.maxFrame, Math.round(((now - t0) / ANIMATION_MS) * view.maxFrame));
    setFrame(frame);
    if (frame < view.maxFrame) view.anim = requestAnimationFrame(tick);
    else document.body.dataset.animating = "false";
  };
  document.body.dataset.animating = "true";
  view.anim = requestAnimationFrame(tick);
}

function runRequest() {
  return {
    landscape: state.landscape,
    start: state.start,
    steps: state.steps,
    tol: state.tol,
    record_every: Math.max(1, Math.floor(state.steps / 1000)),
    runs: state.runs.map((r) => ({ optimizer: r.optimizer, hyper: r.hyper, schedule: r.schedule })),
  };
}

async function runRace() {
  clearTimeout(view.liveTimer);
  if (!state.runs.length) { setStatus("Add at least one optimizer.", true); return; }
  view.hasRun = true;   // from now on, "auto re-run" follows every change (also after an error)
  if (view.runAbort) view.runAbort.abort();
  const ctrl = new AbortController();
  view.runAbort = ctrl;
  const button = $("#run");
  button.disabled = true;
  setStatus("Running…");
  const t0 = performance.now();
  try {
    const res = await api("/api/run", runRequest(), ctrl.signal);
    if (ctrl.signal.aborted) return;
    clearErrors();
    view.results = res;
    view.maxStep = Math.max(1, ...res.runs.map((r) => r.result.steps));
    view.maxFrame = Math.min(MAX_FRAMES, view.maxStep);
    $("#frame").max = String(view.maxFrame);
    renderTable();
    view.runCount += 1;
    document.body.dataset.runs = String(view.runCount);
    const secs = ((performance.now() - t0) / 1000).toFixed(2);
    const diverged = res.runs.filter((r) => r.result.diverged).length;
    setStatus(`Done in ${secs} s.` + (diverged ? ` ${diverged} diverged: try a smaller lr.` : ""));
    animate();
  } catch (err) {
    if (err.name === "AbortError") return;
    showApiError(err);
  } finally {
    if (view.runAbort === ctrl) { button.disabled = false; view.runAbort = null; }
  }
}

// ------------------------------------------------------------------ landscape

async function loadGrid() {
  const name = state.landscape;
  const n = window.innerWidth < 500 ? 60 : 90;
  try {
    const grid = await api(`/api/landscapes/${name}/grid?n=${n}`);
    if (state.landscape !== name) return;
    view.grid = grid;
    drawContour();
  } catch (err) {
    setStatus(`could not load the landscape: ${err.message}`, true);
  }
}

async function selectLandscape(name) {
  state.landscape = name;
  state.start = [...catalog.byLandscape[name].start];
  view.results = null;
  cancelAnimationFrame(view.anim);
  renderControls();
  renderTable();
  drawContour();
  drawLossChart();
  saveUrl();
  await loadGrid();
  if (view.hasRun && $("#live").checked) runRace();
}

// ------------------------------------------------------------------ start-up

function wireStaticControls() {
  $("#landscape").addEventListener("change", (e) => selectLandscape(e.target.value));
  const startInput = () => {
    const x = Number($("#start-x").value), y = Number($("#start-y").value);
    if ($("#start-x").value.trim() === "" || $("#start-y").value.trim() === "" || !Number.isFinite(x) || !Number.isFinite(y)) return;
    state.start = [x, y];
    drawContour();
    changed();
  };
  $("#start-x").addEventListener("change", startInput);
  $("#start-y").addEventListener("change", startInput);
  $("#steps").addEventListener("change", () => {
    const s = Number($("#steps").value);
    if (!Number.isInteger(s) || s < 1) { $("#steps").classList.add("invalid"); setStatus("steps must be a whole number ≥ 1", true); return; }
    $("#steps").classList.remove("invalid");
    state.steps = s;
    changed({ preview: true });
  });
  $("#tol").addEventListener("change", () => {
    const t = Number($("#tol").value);
    if (!Number.isFinite(t) || t < 0) { $("#tol").classList.add("invalid"); setStatus("tolerance must be a number ≥ 0", true); return; }
    $("#tol").classList.remove("invalid");
    state.tol = t;
    changed();
  });
  $("#add-run").addEventListener("click", () => {
    if (state.runs.length >= (catalog.limits.max_runs || 8)) return;
    state.runs.push(newRun($("#add-optimizer").value));
    renderControls();
    changed({ preview: true });
  });
  $("#run").addEventListener("click", () => {
    runRace();
    // stacked layout: the plot sits above the controls, bring it into view
    if (window.matchMedia("(max-width: 900px)").matches) $(".contour-panel").scrollIntoView({ behavior: "smooth", block: "start" });
  });
  $("#replay").addEventListener("click", () => { if (view.results) animate(); });
  $("#frame").addEventListener("input", (e) => { cancelAnimationFrame(view.anim); setFrame(Number(e.target.value)); });
  $("#share").addEventListener("click", async () => {
    saveUrlNow();
    try { await navigator.clipboard.writeText(location.href); setStatus("Link copied: it restores this setup and runs it."); }
    catch { setStatus(`Share this link: ${location.href}`); }
  });
  setupPlotInput();
}

async function init() {
  try {
    const [lands, opts, scheds, limits] = await Promise.all([
      api("/api/landscapes"), api("/api/optimizers"), api("/api/schedules"), api("/api/limits")]);
    catalog.landscapes = lands;
    for (const l of lands) catalog.byLandscape[l.name] = l;
    for (const o of opts) catalog.optimizers[o.name] = o;
    for (const s of scheds) catalog.schedules[s.name] = s;
    catalog.limits = limits;
  } catch (err) {
    setStatus(`could not reach the server: ${err.message}`, true);
    return;
  }
  $("#landscape").replaceChildren(...catalog.landscapes.map((l) => el("option", { value: l.name, text: l.title })));
  $("#add-optimizer").replaceChildren(...Object.values(catalog.optimizers).map((o) => el("option", { value: o.name, text: optionText(o) })));
  $("#steps").max = String(limits_or(catalog.limits.max_steps, 5000));
  $("#add-optimizer").value = "momentum";
  if (!loadUrl()) {
    state.landscape = "rosenbrock";
    state.start = [...catalog.byLandscape.rosenbrock.start];
    state.runs = [newRun("adam"), newRun("sgd")];
  }
  if (!state.start) state.start = [...catalog.byLandscape[state.landscape].start];
  wireStaticControls();
  renderControls();
  drawContour();
  drawLossChart();
  saveUrlNow();
  drawLrPreview();
  await loadGrid();
  document.body.dataset.ready = "true";
  runRace();
}

function limits_or(v, fallback) { return Number.isFinite(v) ? v : fallback; }

window.addEventListener("DOMContentLoaded", init);

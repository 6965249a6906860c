// The setup in the address bar: every meaningful change is a history entry, so Back undoes it.

import { catalog, state, view, numText } from "./util.js";

// ------------------------------------------------------------------ URL state
// ?landscape=rosenbrock&x=-1.2&y=1&steps=500&tol=1e-8
//  &r1=adam&r1.lr=0.02&r1.schedule=cosine&r1.schedule.final_lr=0.001&r2=gd&r2.lr=0.001

export function hyperSpec(optimizer, name) {
  const opt = catalog.optimizers[resolveName(optimizer)];
  return opt ? opt.hyper.find((h) => h.name === name) : undefined;
}

export function resolveName(name) {
  if (catalog.optimizers[name]) return name;
  const key = Object.keys(catalog.optimizers).find((k) => (catalog.optimizers[k].aliases || []).includes(name));
  return key || name;
}

// a value from the URL or a text box; what does not read as its kind stays text, for the check to name
export function parseValue(text, kind) {
  if (kind === "bool") return text === "true" || text === "1" ? true : text === "false" || text === "0" ? false : text;
  if (kind === "integer") { const n = Number(text); return Number.isInteger(n) ? n : text; }
  if (kind === "number") { const n = Number(text); return Number.isFinite(n) ? n : text; }
  return text;
}

export function stateToQuery() {
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

function currentUrl() {
  return `${location.pathname}?${stateToQuery().toString()}`;
}

// Write the setup to the address bar. A change opens a new history entry (so Back undoes it);
// later changes of the same gesture (slider ticks, a drag) update that entry, and a commit
// (releasing the slider, choosing in a select, typing a value) closes it.
let urlTimer = null;
export function saveUrlNow() {
  clearTimeout(urlTimer);
  if (currentUrl() !== location.pathname + location.search) history.replaceState(null, "", currentUrl());
}

export function saveUrl({ commit = true } = {}) {
  if (!view.openEntry) {
    clearTimeout(urlTimer);
    if (currentUrl() !== location.pathname + location.search) history.pushState(null, "", currentUrl());
  } else {
    // sliders fire many events a second and browsers throttle history updates: batch them
    clearTimeout(urlTimer);
    urlTimer = setTimeout(saveUrlNow, 120);
  }
  view.openEntry = !commit;
  if (commit) saveUrlNow();
}

export function loadUrl() {
  const q = new URLSearchParams(location.search);
  if (![...q.keys()].length) return false;
  const names = catalog.landscapes.map((l) => l.name);
  if (q.has("landscape") && names.includes(q.get("landscape"))) state.landscape = q.get("landscape");
  const land = catalog.byLandscape[state.landscape];
  const x = Number(q.get("x")), y = Number(q.get("y"));
  state.start = q.has("x") && q.has("y") && Number.isFinite(x) && Number.isFinite(y) ? [x, y] : [...land.page_start];
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
      if (key === "schedule" || v === "") continue;   // r1.lr= : the default, as an emptied box
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
        if (v === "") continue;
        const spec = sched.options.find((o) => o.name === key);
        run.schedule.options[key] = parseValue(v, spec ? spec.kind : "number");
      }
    }
    runs.push(run);
  }
  if (runs.length) state.runs = runs.slice(0, catalog.limits.max_runs || 8);
  return true;
}

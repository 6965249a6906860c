// Before a request goes out: what it will cost, and whether the server must refuse it.
// After one fails: the error next to the control that caused it, and the old results marked stale.

import { $, catalog, state, view, fmt, el, setStatus } from "./util.js";
import { resolveName } from "./url.js";

// seconds the race will compute: steps x the measured cost of each optimizer in it (GET /api/costs).
// An optimizer counts once: the server steps all runs of one optimizer together, as one tensor.
export function estimateSeconds(steps = state.steps) {
  const c = catalog.costs;
  if (!c) return null;
  let each = 0;
  for (const key of new Set(state.runs.map((r) => resolveName(r.optimizer)))) each += c.per_step_s[key] ?? 0;
  return c.overhead_s + steps * c.scale * each;
}

// the most steps these optimizers can take within the server's time limit
function affordableSteps() {
  const c = catalog.costs, limit = catalog.limits.time_limit_s;
  const perStep = (estimateSeconds(1) - c.overhead_s) || 1e-9;
  return Math.max(1, Math.floor(((limit * 0.8) - c.overhead_s) / perStep / 10) * 10);
}

export function updateEstimate() {
  const out = $("#estimate");
  const est = estimateSeconds();
  if (!out) return;
  if (est === null) { out.textContent = ""; return; }
  const limit = catalog.limits.time_limit_s;
  out.textContent = `≈ ${est < 0.1 ? "0.1" : fmt(est, 2)} s`;
  out.classList.toggle("warn", est > Math.min(5, limit / 2));
  out.classList.toggle("over", est > limit);
  out.title = `estimated computing time on the server (limit ${limit} s): steps × each optimizer's measured cost`;
}

function rangeProblem(spec, v) {
  if (v === null || v === undefined || v === "") return spec.nullable ? null : "needs a value";
  if (spec.kind === "bool") return typeof v === "boolean" ? null : `must be true or false, got ${JSON.stringify(v)}`;
  if (spec.kind !== "number" && spec.kind !== "integer") return null;
  if (typeof v !== "number" || !Number.isFinite(v)) return "must be a number";
  if (spec.kind === "integer" && !Number.isInteger(v)) return "must be a whole number";
  if (spec.min !== null && (v < spec.min || (spec.min_open && v === spec.min))) return `must be ${spec.min_open ? ">" : "≥"} ${spec.min}, got ${v}`;
  if (spec.max !== null && (v > spec.max || (spec.max_open && v === spec.max))) return `must be ${spec.max_open ? "<" : "≤"} ${spec.max}, got ${v}`;
  return null;
}

// what the server would refuse, found here: [{loc, msg}] as the API reports errors
export function findProblems() {
  const out = [];
  const lim = catalog.limits;
  if (!Number.isInteger(state.steps) || state.steps < 1 || state.steps > lim.max_steps) {
    out.push({ loc: ["steps"], msg: `must be a whole number from 1 to ${lim.max_steps}` });
  }
  if (!state.runs.length) out.push({ loc: ["runs"], msg: "add at least one optimizer" });
  const shown = (v) => (Number.isNaN(v) ? "nothing" : String(v));
  if (!(Number.isFinite(state.tol) && state.tol >= 0)) {
    out.push({ loc: ["tol"], msg: `tolerance must be a number ≥ 0, got ${shown(state.tol)}` });
  }
  if (state.start && state.start.some((v) => !(Math.abs(v) <= 1e4))) {
    out.push({ loc: ["start"], msg: `x and y must be numbers from -10000 to 10000, got x = ${shown(state.start[0])}, ` +
      `y = ${shown(state.start[1])}` });
  }
  state.runs.forEach((run, i) => {
    const opt = catalog.optimizers[resolveName(run.optimizer)];
    if (!opt) return;
    for (const [name, v] of Object.entries(run.hyper)) {
      const spec = opt.hyper.find((h) => h.name === name);
      const msg = spec ? rangeProblem(spec, v) : `is not an option of ${opt.display}`;
      if (msg) out.push({ loc: ["runs", i, "hyper", name], msg: `${name} ${msg}` });
    }
  });
  const est = estimateSeconds();
  if (!out.length && est !== null && est > lim.time_limit_s) {
    out.push({ loc: ["steps"], msg: `this race would compute for about ${fmt(est, 2)} s, over the server's limit of ` +
      `${lim.time_limit_s} s: use at most ${affordableSteps()} steps, or fewer optimizers` });
  }
  return out;
}

// the request the page's setup makes now
export function runRequest() {
  return {
    landscape: state.landscape,
    start: state.start,
    steps: state.steps,
    tol: state.tol,
    record_every: Math.max(1, Math.floor(state.steps / 1000)),
    runs: state.runs.map((r) => ({ optimizer: r.optimizer, hyper: r.hyper, schedule: r.schedule })),
  };
}

const STALE_NOTES = {
  failed: "Stale: the last race could not run (see the error), so these results are from an earlier one.",
  changed: "Outdated: the setup changed since these results were computed; press Run to race this one.",
};

// Results on show that do not answer the setup on the page are dimmed, never passed off as current:
// after a failed request (markStale(true), until a run succeeds), and while the setup differs from
// the request the results answer (a start moved, an optimizer removed, with auto re-run off or
// before the new run comes back).
export function markStale(failed = view.failed) {
  view.failed = Boolean(failed);
  const changed = Boolean(view.results) && view.resultsKey !== JSON.stringify(runRequest());
  const reason = view.failed ? "failed" : changed ? "changed" : null;
  document.body.classList.toggle("stale", reason !== null);
  document.body.dataset.stale = reason || "";
  const note = $("#stale-note");
  if (!note) return;
  note.textContent = reason ? STALE_NOTES[reason] : "";
  // with auto re-run on, a new run is on its way (unless the setup cannot run): dim without a note
  // that would come and go
  const waiting = reason === "changed" && $("#live").checked && !findProblems().length;
  note.hidden = !reason || waiting || !document.querySelector("#results tbody tr[data-run]");
}

export function clearErrors() {
  document.querySelectorAll(".invalid").forEach((n) => n.classList.remove("invalid"));
  document.querySelectorAll(".run-card").forEach((c) => c.classList.remove("has-error"));
  document.querySelectorAll(".field-error").forEach((p) => p.remove());
}

// "runs.1.hyper.lr" as a learner reads it: "Optimizer 2 (Adam), lr"
export function fieldName(loc) {
  const parts = loc.filter((p) => p !== "body");
  if (parts[0] === "runs" && Number.isInteger(parts[1])) {
    const run = state.runs[parts[1]];
    const opt = run && catalog.optimizers[resolveName(run.optimizer)];
    const rest = parts.slice(2).filter((p) => p !== "hyper" && p !== "options");
    return `Optimizer ${parts[1] + 1}${opt ? ` (${opt.display})` : ""}${rest.length ? ", " + rest.join(" ") : ""}`;
  }
  return parts.join(" ") || "request";
}

// the control a location points at, and the row its message goes under
function controlOf(loc) {
  if (loc[0] === "runs" && Number.isInteger(loc[1])) {
    const card = document.querySelector(`.run-card[data-index="${loc[1]}"]`);
    if (!card) return { card: null, targets: [], row: null };
    let target = null;
    if (loc[2] === "hyper" && loc[3]) target = card.querySelector(`[data-hyper="${loc[3]}"]`);
    else if (loc[2] === "schedule") target = loc[4] ? card.querySelector(`[data-sched="${loc[4]}"]`) : $(".sched-select", card);
    const row = target ? target.closest(".hyper, .field") : $(".run-head", card);
    return { card, targets: target ? [target] : [], row };
  }
  const ids = { steps: ["#steps"], tol: ["#tol"], start: ["#start-x", "#start-y"], landscape: ["#landscape"],
    runs: ["#add-optimizer"] }[loc[0]] || [];
  const targets = ids.map((s) => $(s));
  const row = loc[0] === "start" ? $("#start-fields") : targets.length ? targets[0].closest(".field, .add-run") : null;
  return { card: null, targets, row };
}

// errors (the API's, or found before sending) next to their controls, and in the status line
export function showErrors(message, details) {
  clearErrors();
  markStale(true);
  setStatus(details.length ? details.map((d) => `${fieldName(d.loc || [])}: ${d.msg}`).join("; ") : message, true);
  for (const d of details) {
    const { card, targets, row } = controlOf((d.loc || []).filter((p) => p !== "body"));
    if (card) card.classList.add("has-error");
    for (const t of targets) {
      t.classList.add("invalid");
      const details = t.closest("details");
      if (details) details.open = true;
    }
    const note = el("p", { class: "field-error", role: "alert", text: d.msg });
    if (row && row.matches(".hyper, .run-head")) row.after(note);
    else if (row) row.append(note);
  }
}

// The page's entry point: run the race, animate it, fill the table, wire the controls.

import { COLORS, MAX_FRAMES, ANIMATION_MS, $, catalog, state, view, el, fmt, api, setStatus } from "./util.js";
import { saveUrlNow, saveUrl, loadUrl } from "./url.js";
import { optimizerOptions, newRun, renderControls, changed } from "./controls.js";
import { clearErrors, findProblems, markStale, runRequest, showErrors, updateEstimate } from "./checks.js";
import { drawContour, drawPaths, setupPlotInput } from "./plot.js";
import { drawLossChart, drawLrPreview } from "./charts.js";

// ------------------------------------------------------------------ results

export function renderTable() {
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
    // green only for a minimum reached: f - f* < tol with f* known. Where f* is unknown the run
    // stopped at a small gradient: a critical point (on note 003's f = 3x²y, a line of them), no minimum
    const critical = reached && land.f_star === null;
    const name = el("td", {}, el("span", { class: "swatch", style: `--color:${COLORS[i % COLORS.length]}` }),
      document.createTextNode(r.label + (run.schedule ? ` + ${run.schedule.name.replace(/_/g, " ")}` : "")));
    return el("tr", { "data-run": i },
      name,
      el("td", { class: reached && !critical ? "good" : critical ? "critical" : "",
        text: reached ? String(r.steps_to_tol) + (critical ? " (‖∇f‖ < tol)" : "") : `not within ${res.steps}`,
        title: critical ? "the gradient fell below tol: a critical point, which need not be a minimum (f* is unknown)" : null }),
      el("td", { text: fmt(r.final_loss, 4) }),
      el("td", { text: land.f_star === null ? "n/a" : fmt(r.final_gap, 3) }),
      el("td", { text: end && end[0] !== null ? `(${fmt(end[0], 4)}, ${fmt(end[1], 4)})` : "—" }),
      el("td", { class: r.diverged ? "bad" : "", text: r.diverged ? `yes, step ${r.steps}` : "no" }),
      el("td", { text: `${fmt(r.wall_time * 1000, 3)} ms` }));
  }));
}

export function setFrame(frame) {
  view.frame = frame;
  $("#frame").value = String(frame);
  const step = view.maxFrame ? Math.round((frame / view.maxFrame) * view.maxStep) : view.maxStep;
  $("#frame-label").textContent = `step ${step} / ${view.maxStep}`;
  drawPaths();
  drawLossChart();
}

export function animate() {
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

export async function runRace() {
  clearTimeout(view.liveTimer);
  view.hasRun = true;   // from now on, "auto re-run" follows every change (also after an error)
  if (view.runAbort) view.runAbort.abort();   // the server then stops computing it
  const problems = findProblems();
  if (problems.length) { showErrors("", problems); return; }
  const ctrl = new AbortController();
  view.runAbort = ctrl;
  const button = $("#run");
  button.disabled = true;
  setStatus("Running…");
  const t0 = performance.now();
  const body = runRequest();
  const key = JSON.stringify(body);   // now: the controls may change while it computes
  try {
    const res = await api("/api/run", body, ctrl.signal);
    if (ctrl.signal.aborted) return;
    clearErrors();
    view.results = res;
    view.resultsKey = key;
    markStale(false);
    // a value typed while it computed that cannot run: its error stays next to its box
    const problems = findProblems();
    if (problems.length) { showErrors("", problems); markStale(false); }   // the race ran: outdated, not failed
    view.maxStep = Math.max(1, ...res.runs.map((r) => r.result.steps));
    view.maxFrame = Math.min(MAX_FRAMES, view.maxStep);
    $("#frame").max = String(view.maxFrame);
    renderTable();
    view.runCount += 1;
    document.body.dataset.runs = String(view.runCount);
    const secs = ((performance.now() - t0) / 1000).toFixed(2);
    const diverged = res.runs.filter((r) => r.result.diverged).length;
    const unbounded = !catalog.byLandscape[res.landscape].minima.length;
    setStatus(`Done in ${secs} s.` + (!diverged ? "" : unbounded
      ? ` ${diverged} ran off: this landscape is unbounded below.` : ` ${diverged} diverged: try a smaller lr.`));
    animate();
    refreshCosts();
  } catch (err) {
    if (err.name === "AbortError" || err.status === 409) return;   // replaced by a newer request
    showErrors(err.message, err.detail || []);
  } finally {
    if (view.runAbort === ctrl) { button.disabled = false; view.runAbort = null; }
  }
}

// ------------------------------------------------------------------ landscape

export async function loadGrid() {
  const name = state.landscape;
  const land = catalog.byLandscape[name];
  // Rosenbrock's narrow valley needs a finer grid, or its floor breaks into loops
  const n = Math.min(catalog.limits.max_grid || 200, window.innerWidth < 500 ? Math.max(60, Math.round(land.page_grid * 0.75)) : land.page_grid);
  try {
    const grid = await api(`/api/landscapes/${name}/grid?n=${n}`);
    if (state.landscape !== name) return;
    view.grid = grid;
    drawContour();
  } catch (err) {
    setStatus(`could not load the landscape: ${err.message}`, true);
  }
}

export async function selectLandscape(name) {
  // a race on the old landscape still computing is of no use now (auto re-run or not)
  if (view.runAbort) { view.runAbort.abort(); setStatus(""); }
  state.landscape = name;
  state.start = [...catalog.byLandscape[name].page_start];
  view.results = null;
  markStale(false);
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

export function wireStaticControls() {
  $("#landscape").addEventListener("change", (e) => selectLandscape(e.target.value));
  // a box's value as the setup holds it: an emptied box is no number (NaN), for the check to name
  const typed = (id) => ($(id).value.trim() === "" ? NaN : Number($(id).value));
  const startInput = () => {
    state.start = [typed("#start-x"), typed("#start-y")];
    drawContour();
    changed();
  };
  $("#start-x").addEventListener("change", startInput);
  $("#start-y").addEventListener("change", startInput);
  $("#steps").addEventListener("change", () => {
    state.steps = Number($("#steps").value);   // a bad value is shown next to the box before any request
    changed({ preview: true });
  });
  $("#tol").addEventListener("change", () => {
    state.tol = typed("#tol");   // a bad value is shown next to the box before any request
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
  $("#live").addEventListener("change", () => {
    markStale();
    // turned on while the results answer an older setup: race this one
    if ($("#live").checked && view.hasRun && document.body.dataset.stale === "changed") runRace();
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

export async function init() {
  try {
    const [lands, opts, scheds, limits] = await Promise.all([
      api("/api/landscapes"), api("/api/optimizers"), api("/api/schedules"), api("/api/limits")]);
    catalog.landscapes = lands;
    for (const l of lands) catalog.byLandscape[l.name] = l;
    for (const o of opts) catalog.optimizers[o.name] = o;
    for (const s of scheds) catalog.schedules[s.name] = s;
    catalog.limits = limits;
  } catch (err) {
    setStatus(err.message, true);
    return;
  }
  $("#landscape").replaceChildren(...catalog.landscapes.map((l) => el("option", { value: l.name, text: l.title })));
  $("#add-optimizer").replaceChildren(...optimizerOptions());
  $("#steps").max = String(limits_or(catalog.limits.max_steps, 5000));
  $("#add-optimizer").value = "momentum";
  if (!loadUrl()) {
    state.landscape = "rosenbrock";
    state.start = [...catalog.byLandscape.rosenbrock.page_start];
  }
  if (!state.runs.length) state.runs = [newRun("adam"), newRun("gd")];   // the default race
  if (!state.start) state.start = [...catalog.byLandscape[state.landscape].page_start];
  wireStaticControls();
  renderControls();
  drawContour();
  drawLossChart();
  saveUrlNow();
  drawLrPreview();
  await loadGrid();
  window.addEventListener("popstate", restore);
  document.body.dataset.ready = "true";
  runRace();
  refreshCosts();
}

// what each optimizer's step costs on this server, for the estimate next to Run
async function refreshCosts() {
  try { catalog.costs = await api("/api/costs"); updateEstimate(); } catch { /* the estimate stays unknown */ }
}

// Back and Forward: the setup of that history entry, raced again
async function restore() {
  const before = state.landscape;
  view.openEntry = false;
  if (!loadUrl()) return;
  renderControls();
  clearErrors();
  if (state.landscape !== before) {
    view.results = null;
    renderTable();
    drawLossChart();
    drawContour();
    await loadGrid();
  } else drawContour();
  drawLrPreview();
  updateEstimate();
  markStale();
  if (view.hasRun) runRace();
}

export function limits_or(v, fallback) { return Number.isFinite(v) ? v : fallback; }

window.addEventListener("DOMContentLoaded", init);

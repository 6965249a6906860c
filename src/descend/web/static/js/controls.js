// The setup panel: landscape, start, steps, optimizer cards with their hyperparameters and schedules.

import { COLORS, $, catalog, state, view, el, fmt, numText, setStatus } from "./util.js";
import { resolveName, parseValue, saveUrl } from "./url.js";
import { schedulePreviewSoon } from "./charts.js";
import { runRace } from "./main.js";

// ------------------------------------------------------------------ controls

export function optionText(opt) {
  return opt.name === "sgd" ? "SGD (plain gradient descent)" : opt.class;
}

export function newRun(optimizer) {
  const preset = (catalog.optimizers[resolveName(optimizer)] || {}).preset || {};
  return { optimizer, hyper: { ...preset }, schedule: null };
}

export function renderControls() {
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
export function breakable(name) {
  const out = [];
  name.split("_").forEach((part, k, all) => {
    out.push(document.createTextNode(part + (k < all.length - 1 ? "_" : "")));
    if (k < all.length - 1) out.push(document.createElement("wbr"));
  });
  return out;
}

export function hyperControl(run, spec, i) {
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

export function scheduleOptionControl(run, spec, i) {
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

export function renderRunCard(run, i) {
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

export function clearErrors() {
  document.querySelectorAll(".invalid").forEach((n) => n.classList.remove("invalid"));
  document.querySelectorAll(".run-card").forEach((c) => c.classList.remove("has-error"));
  document.querySelectorAll(".card-error").forEach((p) => { p.hidden = true; p.textContent = ""; });
}

// "runs.1.hyper.lr" as a learner reads it: "Optimizer 2 (Adam), lr"
export function fieldName(loc) {
  const parts = loc.filter((p) => p !== "body");
  if (parts[0] === "runs" && Number.isInteger(parts[1])) {
    const run = state.runs[parts[1]];
    const opt = run && catalog.optimizers[resolveName(run.optimizer)];
    const rest = parts.slice(2).filter((p) => p !== "hyper" && p !== "options");
    return `Optimizer ${parts[1] + 1}${opt ? ` (${opt.class})` : ""}${rest.length ? ", " + rest.join(" ") : ""}`;
  }
  return parts.join(" ") || "request";
}

export function showApiError(err) {
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

export function changed({ preview = false, live = true } = {}) {
  saveUrl();
  if (preview) schedulePreviewSoon();
  if (live && view.hasRun && $("#live").checked) {
    clearTimeout(view.liveTimer);
    view.liveTimer = setTimeout(runRace, 450);
  }
}

// The setup panel: landscape, start, steps, optimizer cards with their hyperparameters and schedules.

import { COLORS, LIVE_COMMIT_MS, LIVE_DRAG_MS, $, catalog, state, view, el, fmt, numText } from "./util.js";
import { resolveName, parseValue, saveUrl } from "./url.js";
import { schedulePreviewSoon } from "./charts.js";
import { markStale, updateEstimate } from "./checks.js";
import { runRace } from "./main.js";

// ------------------------------------------------------------------ controls

// the name a learner picks: "GD" for the registry's sgd (on a landscape the gradient is exact)
export function optionValue(name) {
  const opt = catalog.optimizers[resolveName(name)];
  return opt && opt.aliases && opt.aliases.length ? opt.aliases[0] : resolveName(name);
}

export function optimizerOptions() {
  return Object.values(catalog.optimizers).map((o) => {
    const value = optionValue(o.name);
    return el("option", { value, text: value === o.name ? o.display : value.toUpperCase() });
  });
}

// a one-line help under a control: shown on touch screens, a tooltip where a pointer hovers
function help(text) {
  return text ? el("small", { class: "help", text }) : null;
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
  const label = el("label", { for: id, title: spec.help || spec.name }, ...breakable(spec.name));
  const set = (v, commit = true) => {
    if (v === undefined) delete run.hyper[spec.name];
    else run.hyper[spec.name] = v;
    changed({ preview: spec.name === "lr", commit });
  };
  const row = (cls, ...controls) => el("div", { class: `hyper ${cls}`, "data-row": spec.name }, label, ...controls, help(spec.help));
  if (spec.kind === "bool" && !spec.nullable) {
    const box = el("input", { id, type: "checkbox", "data-hyper": spec.name });
    box.checked = value === true;   // "maybe" from a link: unchecked, and named as the error it is
    // the value in words, in the ink of every other value: a checkbox alone reads as "off" or "disabled"
    const word = el("label", { for: id, class: "bool-state", text: String(box.checked) });
    box.addEventListener("change", () => {
      word.textContent = String(box.checked);
      set(box.checked === spec.default ? undefined : box.checked);
    });
    return row("check", el("span", { class: "bool-box" }, box, word));
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
    return row("wide", sel);
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
      set(v);
    });
    return row("wide", num);
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
  // a drag is one change: its ticks update one history entry, the release closes it
  slider.addEventListener("input", () => {
    const v = fromSlider(Number(slider.value));
    num.value = String(v);
    set(v, false);
  });
  slider.addEventListener("change", () => changed({ preview: spec.name === "lr", commit: true }));
  num.addEventListener("change", () => {
    if (num.value.trim() === "") { set(undefined); num.value = String(spec.default); slider.value = String(toSlider(spec.default)); return; }
    const v = Number(num.value);
    slider.value = String(toSlider(v));
    set(v);
  });
  return row("", slider, num);
}

export function scheduleOptionControl(run, spec, i) {
  const id = `r${i}-sched-${spec.name}`;
  const opts = run.schedule.options;
  const has = Object.prototype.hasOwnProperty.call(opts, spec.name);
  const label = el("label", { for: id, title: spec.help }, ...breakable(spec.name + (spec.required ? " *" : "")));
  const row = (cls, control) => el("div", { class: `hyper ${cls}`, "data-row": spec.name }, label, control, help(spec.help));
  const set = (v) => {
    if (v === undefined) delete opts[spec.name];
    else opts[spec.name] = v;
    changed({ preview: true });
  };
  if (spec.kind === "bool") {
    const box = el("input", { id, type: "checkbox", "data-sched": spec.name, title: spec.help });
    box.checked = has && Boolean(opts[spec.name]);
    const word = el("label", { for: id, class: "bool-state", text: String(box.checked) });
    box.addEventListener("change", () => { word.textContent = String(box.checked); set(box.checked ? true : undefined); });
    return row("check", el("span", { class: "bool-box" }, box, word));
  }
  if (spec.kind === "choice") {
    const sel = el("select", { id, "data-sched": spec.name, title: spec.help });
    sel.append(el("option", { value: "", text: "default" }));
    for (const c of spec.choices) sel.append(el("option", { value: c, text: c }));
    sel.value = has ? String(opts[spec.name]) : "";
    sel.addEventListener("change", () => set(sel.value === "" ? undefined : sel.value));
    return row("wide", sel);
  }
  const isText = spec.kind === "list" || spec.kind === "string";
  const input = el("input", {
    id, type: isText ? "text" : "number", step: spec.kind === "integer" ? "1" : "any",
    "data-sched": spec.name, title: spec.help, placeholder: isText ? "e.g. 100/200" : "default",
  });
  input.value = has ? String(opts[spec.name]) : "";
  input.addEventListener("change", () => {
    const t = input.value.trim();
    if (t === "") return set(undefined);
    set(isText ? t : parseValue(t, spec.kind));
  });
  return row("wide", input);
}

export function renderRunCard(run, i) {
  const card = $("#run-card").content.firstElementChild.cloneNode(true);
  card.style.setProperty("--color", COLORS[i % COLORS.length]);
  card.dataset.index = String(i);
  const sel = $(".opt-select", card);
  sel.append(...optimizerOptions());
  sel.value = optionValue(run.optimizer);
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

export function changed({ preview = false, live = true, commit = true } = {}) {
  saveUrl({ commit });
  updateEstimate();
  markStale();   // the results on show answer the setup before this change
  if (preview) schedulePreviewSoon();
  if (live && view.hasRun && $("#live").checked) {
    clearTimeout(view.liveTimer);
    view.liveTimer = setTimeout(runRace, commit ? LIVE_COMMIT_MS : LIVE_DRAG_MS);
  }
}

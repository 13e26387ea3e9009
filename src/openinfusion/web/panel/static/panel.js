// The front panel: draws the pump's state (from the server) and sends widget presses. Widgets come
// from /api/widgets (declared as data in widgets.py); the page holds no pump logic of its own.
"use strict";
let WIDGETS = {};
let last = "";
let state = null;

const $ = (sel) => document.querySelector(sel);
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "onclick") e.addEventListener("click", v);
    else if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined) e.append(c.nodeType ? c : String(c));
  return e;
}

// Presses are sent one after another, in the order made (a key never overtakes the one before it).
let queue = Promise.resolve();
function press(widget, channel = null, arg = null) {
  queue = queue.then(async () => {
    const r = await fetch("/api/press", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ widget, channel, arg }),
    });
    if (r.ok) render(await r.json());
  }).catch(() => { $("#message").textContent = "The pump did not answer: check the connection."; });
  return queue;
}

function button(id, channel, arg = null, label = null, cls = "") {
  const w = WIDGETS[id];
  const key = `${id}:${channel}:${arg ?? ""}`;
  return el("button", {
    type: "button", class: cls, "data-widget": id, "data-key": key, "data-channel": channel ?? "",
    title: w && w.hint ? w.hint : null, onclick: () => press(id, channel, arg),
  }, label ?? (w ? w.label : id));
}

// --- alarm sounds (IEC 60601-1-8 pulse patterns; Annex F "drug delivery" melody) ---------------------
let audio = null;
let nextSound = 0;
const C5 = 523.25, D4 = 293.66, G4 = 392.0;
const PATTERNS = {  // [frequency, start s] per pulse; burst repeat interval s
  high: { pulses: [[C5, 0], [D4, .25], [G4, .5], [C5, 1.0], [D4, 1.25], [C5, 2.2], [D4, 2.45], [G4, 2.7], [C5, 3.2], [D4, 3.45]], every: 7 },
  medium: { pulses: [[C5, 0], [D4, .3], [G4, .6]], every: 7.5 },
  low: { pulses: [[C5, 0]], every: 16 },
};
function pulse(freq, at) {
  const o = audio.createOscillator(), g = audio.createGain();
  // fundamental and four harmonics (Table 4: >= 4 harmonics in 300-4000 Hz, within 15 dB)
  const real = new Float32Array([0, 1, .6, .45, .35, .3]), imag = new Float32Array(6);
  o.setPeriodicWave(audio.createPeriodicWave(real, imag));
  o.frequency.value = freq;
  g.gain.setValueAtTime(0, at); g.gain.linearRampToValueAtTime(.18, at + .02);
  g.gain.setValueAtTime(.18, at + .13); g.gain.linearRampToValueAtTime(0, at + .16);
  o.connect(g).connect(audio.destination); o.start(at); o.stop(at + .2);
}
function sound(ann) {
  if (!audio || !ann.audible || !ann.priority || ann.priority === "info") return;
  const p = PATTERNS[ann.priority];
  if (!p || audio.currentTime < nextSound) return;
  const t0 = audio.currentTime + .05;
  for (const [f, dt] of p.pulses) pulse(f, t0 + dt);
  nextSound = audio.currentTime + p.every;
}
// Browsers start sound only after a user gesture: the first click anywhere turns the alarm sound on.
function enableSound() {
  if (!audio) audio = new AudioContext();
  $("#sound").textContent = "Alarm sound on";
  $("#sound").setAttribute("aria-pressed", "true");
}
document.addEventListener("click", enableSound, { once: true });
$("#sound").addEventListener("click", enableSound);

// --- drawing -------------------------------------------------------------------------------------
function row(label, value) { return value ? [el("dt", {}, label), el("dd", {}, value)] : []; }

function screenFor(ch, scr) {
  const box = el("section", { class: "screen", "aria-label": `Channel ${ch.label} programming screen` });
  if (scr.kind === "titration") {
    box.append(el("h3", {}, scr.title), el("p", {}, `New value: ${scr.new}. The old rate runs until you confirm.`),
      el("div", { class: "buttons" }, button("confirm_titration", ch.index, null, null, "primary"), button("cancel_titration", ch.index)));
    return box;
  }
  if (scr.alert) {
    const a = scr.alert;
    const hard = a.kind === "hard";
    box.append(el("div", { class: hard ? "alert-hard" : "alert-soft", role: "alert" },
      el("h3", {}, hard ? "HARD LIMIT: cannot be given" : "Soft limit: check the order"), el("p", {}, a.why)));
    if (scr.lines && scr.lines.length) box.append(el("dl", {}, scr.lines.map(([k, v]) => row(k, v))));
    if (!hard) {
      box.append(el("p", {}, "To proceed, choose the reason for the override:"),
        el("div", { class: "options" }, a.reasons.map((r) => button("override", ch.index, r, `Override: ${r}`))));
    }
    box.append(el("div", { class: "buttons" }, button("change", ch.index, null, null, "primary"), button("cancel", ch.index)));
    return box;
  }
  box.append(el("h3", {}, `${scr.title}`));
  if (scr.advisory) box.append(el("p", { class: "ha" }, `Advisory: ${scr.advisory}`));
  if (scr.lines && scr.lines.length) {
    box.append(el("dl", {}, scr.lines.map(([k, v]) => row(k, v))));
  }
  if (scr.kind === "choose") {
    box.append(el("div", { class: "options", role: "list" }, scr.options.map((o) =>
      el("div", { role: "listitem" }, button("choose", ch.index, o.id,
        `${o.label}${o.high_alert ? "  (HIGH-ALERT)" : ""}${o.hint ? "  - " + o.hint : ""}`)))));
  } else if (scr.kind === "number") {
    const id = `display-${ch.index}`;
    box.append(
      el("label", { for: id }, `${scr.title}; allowed ${scr.range}${scr.current ? "; now " + scr.current : ""}`),
      el("output", { id, class: "display", "aria-live": "polite", "data-display": ch.index }, scr.display || " "),
      el("div", { class: "keypad" },
        ["1", "2", "3", "4", "5", "6", "7", "8", "9", ".", "0", "back"].map((k) => button(`key_${k}`, ch.index)),
        button("key_clear", ch.index, null, null, "wide"), button("key_enter", ch.index, null, null, "wide primary")));
  } else if (scr.kind === "review") {
    box.append(el("div", { class: "buttons" }, button("confirm", ch.index, null, null, "primary")));
  }
  if (scr.message) box.append(el("p", { role: "alert" }, scr.message));
  box.append(el("div", { class: "buttons" }, button("back", ch.index), button("cancel", ch.index)));
  return box;
}

const CONTROLS = {
  idle: ["program", "pca"], complete: ["program", "pca", "clear"], programming: [], ready: ["start", "clear"],
  infusing: ["pause", "titrate", "bolus", "secondary"], paused: ["resume", "titrate", "clear"],
  alarm: ["resume", "clear"], kvo: ["pause", "clear"], failsafe: [],
};

function channelCard(ch, s) {
  const top = s.alarms.find((a) => a.channel_index === ch.index || a.channel_index === null);
  const card = el("article", { class: `channel ${top ? "alarm-" + top.priority : ""}`, "aria-labelledby": `ch-${ch.index}`, "data-channel": ch.index });
  const entering = (s.screens[String(ch.index)] || {}).lines || [];
  const chosen = entering.filter(([k]) => k === "Drug" || k === "Concentration").map(([, v]) => v).join(" ");
  const drug = ch.drug_name ? `${ch.drug_name}${ch.concentration ? " " + ch.concentration : ""}`
    : (ch.basic ? "Basic infusion (no library)" : (chosen ? `${chosen} (being programmed)` : "No drug"));
  card.append(el("h2", { id: `ch-${ch.index}` }, `Channel ${ch.label}: ${drug}`));
  card.append(el("p", { class: "status", "data-status": ch.state }, ch.status));
  const running = ch.state === "infusing" || ch.state === "kvo";
  card.append(el("p", { class: "big" }, running && ch.dose ? `${ch.dose} = ${ch.rate}` : ch.rate));
  card.append(el("dl", {},
    row("Programmed", ch.programmed_rate ? (ch.dose ? `${ch.dose} = ${ch.programmed_rate}` : ch.programmed_rate) : null),
    row("VTBI", ch.vtbi), row("VTBI left", ch.vtbi_left),
    row("Infused (primary)", ch.infused_primary), row("Infused (secondary)", ch.infused_secondary !== "0 mL" ? ch.infused_secondary : null),
    row("KVO", ch.infused_kvo !== "0 mL" ? ch.infused_kvo : null), row("Time left", ch.time_left),
    row("Pending change", ch.pending_titration),
    ch.pca ? row("PCA", `demand ${ch.pca.demand_dose}, lockout ${ch.pca.lockout}; ${ch.pca.given} given / ${ch.pca.denied} denied of ${ch.pca.demands}; ${ch.pca.total_demands} by demand`) : []));
  const ctl = [...(CONTROLS[ch.state] || [])];
  if (ch.pca) ctl.push("pca_demand");
  if (top) ctl.push("reset_alarm");
  card.append(el("div", { class: "buttons" }, ctl.map((id) => button(id, ch.index, null, null, id === "start" || id === "resume" ? "primary" : ""))));
  const scr = s.screens[String(ch.index)];
  if (scr) card.append(screenFor(ch, scr));
  return card;
}

function render(s) {
  state = s;
  sound(s.annunciation);
  const text = JSON.stringify(s);
  if (text === last) return;
  last = text;
  const focused = document.activeElement && document.activeElement.getAttribute("data-key");
  $("#clock").textContent = s.time;
  $("#area").textContent = `Care area: ${s.care_area || "none"}`;
  $("#library").textContent = s.library ? `Library ${s.library.name} v${s.library.version}` : "No library";
  const b = s.battery;
  $("#battery").textContent = b.on_mains ? `Mains, battery ${b.percent} %` : `ON BATTERY ${b.percent} % (${b.minutes} min)`;
  $("#keys").textContent = `Keystrokes: ${s.keystrokes}`;
  $("#server").textContent = s.server ? (s.server.connected ? "Server: connected" : "Server: OFFLINE") : "";
  const orders = $("#orders");
  orders.hidden = !s.orders.length;
  orders.replaceChildren(el("h2", {}, "Orders from the central station (confirm at the pump)"),
    el("ul", {}, s.orders.map((o) => el("li", { "data-order": o.id },
      `Channel ${o.channel}: ${o.text}; expires ${o.expires} `,
      button("order_confirm", null, o.id, null, "primary"), button("order_decline", null, o.id)))));
  const pw = $("#pumpwidgets"); pw.replaceChildren(button("audio_pause", null));
  const bar = $("#alarmbar");
  const top = s.alarms[0];
  bar.className = `alarmbar ${top ? top.priority : "none"}`;
  bar.replaceChildren(top ? el("div", {},
    el("span", {}, `${top.priority.toUpperCase()}: ${top.text}${top.channel ? " (channel " + top.channel + ")" : ""}${top.escalated ? " - escalated" : ""}`),
    s.annunciation.paused_for ? el("span", {}, `  Audio paused ${s.annunciation.paused_for}`) : null,
    el("ul", {}, s.alarms.map((a) => el("li", {}, `${a.priority}: ${a.text}${a.channel ? " (" + a.channel + ")" : ""}, ${a.state}, ${a.since}${a.detail ? " - " + a.detail : ""}`))))
    : el("span", {}, "No alarms"));
  $("#message").textContent = s.message || "";
  $("#channels").replaceChildren(...s.channels.map((ch) => channelCard(ch, s)));
  if (focused) { const f = document.querySelector(`[data-key="${CSS.escape(focused)}"]`); if (f) f.focus(); }
}

// keyboard: digits, ".", Backspace, Delete, Enter go to the open number field
const KEYMAP = { Backspace: "key_back", Delete: "key_clear", Enter: "key_enter", ".": "key_." };
document.addEventListener("keydown", (ev) => {
  if (!state) return;
  const open = Object.entries(state.screens).find(([, scr]) => scr.kind === "number" && !scr.alert);
  if (!open) return;
  const id = /^[0-9]$/.test(ev.key) ? `key_${ev.key}` : KEYMAP[ev.key];
  if (!id) return;
  if (ev.key === "Enter" && document.activeElement && document.activeElement.tagName === "BUTTON") return;
  ev.preventDefault();
  press(id, Number(open[0]));
});

async function boot() {
  for (const w of await (await fetch("/api/widgets")).json()) WIDGETS[w.id] = w;
  render(await (await fetch("/api/state")).json());
  const src = new EventSource("/api/stream");
  src.onmessage = (m) => render(JSON.parse(m.data));
  const brief = await fetch("/api/exercise");
  if (brief.ok) {
    const ex = await brief.json();
    const b = $("#briefing");
    b.hidden = false;
    b.replaceChildren(el("strong", {}, `Exercise: ${ex.title}. `), ex.briefing, " ",
      el("a", { href: "/debrief" }, "Finish and see the debrief"));
  }
}
boot();

/* Alarms: the sound policy of board.yaml, its tones and what the last sound announced. */
import { $, S, alarms, tickets } from "./state.js";
import { isOpen } from "./stream.js";
import { shortTime, signedIn } from "./silences.js";
import { ESC_RANK, seenEntry, w } from "./wall.js";

// ---- alarms: the policy of board.yaml (GET /api/district's board.alarms). A new red, a red still not
// 已知悉 after repeat_after, 督办, 通报 and a raised response level sound, each in its own tone; at most one
// sound per interval, which announces everything that came since in words ("3 条新红色告警 · 1 条督办").
// Merges, accepts, 催办 and every other step sound nothing.
export const sound = { enabled: false, muted: false };
try { sound.muted = localStorage.getItem("soc.board.muted") === "1"; } catch (_e) { /* private mode */ }
// The most urgent first: a coalesced sound is the tone of the most urgent kind it announces.
const ALARM_KINDS = ["new_red", "reported", "response_raised", "escalated", "unacknowledged_red"];
const ALARM_WORDS = {
  zh: { new_red: "{n} 条新红色告警", reported: "{n} 条通报", escalated: "{n} 条督办",
    unacknowledged_red: "{n} 条红色告警未知悉", response_raised: "应急响应提升至{level}" },
  en: { new_red: "{n} new red alerts", reported: "{n} reported to the leadership (通报)",
    escalated: "{n} escalated (督办)", unacknowledged_red: "{n} red alerts not yet seen",
    response_raised: "Response raised to {level}" },
};
let policy = null;              // board.alarms of GET /api/district
const pendingAlarms = [];       // raised, waiting for the next sound
const lastRung = new Map();     // ticket_id -> when its red was last announced (or first seen here)
let lastRingAt = -Infinity;
let ringTimer = null;
let lastSummary = null;         // {at, parts}: what the last sound announced

// Tones made with Web Audio: no sound file to serve and nothing a media-src policy refuses. Browsers keep an
// AudioContext suspended until the person has clicked on the page: "enable sound" resumes it once.
let audioContext = null;
sound.played = Object.fromEntries(ALARM_KINDS.map((k) => [k, 0]));
/** Every sound the policy let through (the e2e tests count them): {at, kind, count, sounded}. */
sound.rings = [];
window.SOC_BOARD.sound = sound;

function context() {
  if (!audioContext) {
    const Context = window.AudioContext || window.webkitAudioContext;
    audioContext = Context ? new Context() : null;
  }
  return audioContext;
}

/** `beeps` tones of `freq` Hz, 0.18 s each with 0.09 s between. */
function tone(freq, beeps, volume) {
  const ctx = context();
  const start = ctx.currentTime + 0.02;
  for (let i = 0; i < beeps; i += 1) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = "square";
    osc.frequency.value = freq;
    const at = start + i * 0.27;
    gain.gain.setValueAtTime(0, at);
    gain.gain.linearRampToValueAtTime(volume, at + 0.01);
    gain.gain.setValueAtTime(volume, at + 0.17);
    gain.gain.linearRampToValueAtTime(0, at + 0.18);
    osc.connect(gain).connect(ctx.destination);
    osc.start(at);
    osc.stop(at + 0.19);
  }
}

export function renderSound() {
  const enable = $("#sound-enable");
  const mute = $("#mute");
  enable.textContent = w("enableSound");
  enable.hidden = sound.enabled || !signedIn();
  enable.title = sound.error || "";
  mute.hidden = !signedIn();
  mute.textContent = sound.muted ? w("muted") : w("sound");
  mute.title = w("muteHint");
  mute.setAttribute("aria-pressed", String(sound.muted));
  mute.dataset.muted = sound.muted ? "1" : "0";
  document.body.dataset.sound = sound.enabled ? (sound.muted ? "muted" : "on") : "blocked";
}

export async function enableSound() {
  // Called from a click: the browser lets a page start its sound once the person has interacted with it.
  const ctx = context();
  try {
    if (!ctx) throw new Error("this browser has no Web Audio");
    await ctx.resume();
    sound.enabled = ctx.state === "running";
    if (sound.enabled) tone(880, 1, 0.05);   // a short, quiet confirmation
    else sound.error = `audio ${ctx.state}`;
  } catch (error) {
    sound.enabled = false;
    sound.error = `${error.name}: ${error.message}`;   // shown in the enable button's title
  }
  renderSound();
}

export function setPolicy(alarms) {
  policy = alarms;
  lastRung.clear();
  pendingAlarms.length = 0;
  clearTimeout(ringTimer);
  ringTimer = null;
  lastRingAt = -Infinity;
}

/** The alarms a live change raises: `before` is the board's copy, `t` the new one. */
export function alarmFor(before, t) {
  if (!t || !isOpen(t)) return;
  if (seenEntry(t)) {   // 已知悉: this ticket's repeats stop, including one waiting for its sound
    lastRung.delete(t.ticket_id);
    for (let i = pendingAlarms.length - 1; i >= 0; i -= 1) {
      const a = pendingAlarms[i];
      if (a.ticket_id === t.ticket_id && a.kind === "unacknowledged_red") pendingAlarms.splice(i, 1);
    }
  }
  if (t.severity === "red" && (!before || before.severity !== "red")) raiseAlarm("new_red", t);
  const step = t.escalation;
  if (before && (ESC_RANK[step] || 0) > (ESC_RANK[before.escalation] || 0)
    && (step === "escalated" || step === "reported")) raiseAlarm(step, t);
}

export function raiseAlarm(kind, t, level) {
  const now = Date.now();
  const entry = { kind, ticket_id: t ? t.ticket_id : null, severity: t ? t.severity : null,
    step: t ? t.escalation : null, level: level || null, at: now, announced: false, sounded: false };
  alarms.push(entry);
  if (alarms.length > 1000) alarms.splice(0, alarms.length - 1000);
  if (t && (kind === "new_red" || kind === "unacknowledged_red")) lastRung.set(t.ticket_id, now);
  pendingAlarms.push(entry);
  scheduleRing(now);
}

function scheduleRing(now) {
  if (!policy || ringTimer) return;
  const wait = lastRingAt + policy.interval_s * 1000 - now;
  if (wait <= 0) ring();
  else ringTimer = setTimeout(ring, wait);
}

/** Open red tickets nobody has marked 已知悉 (the count in the header). */
function unseenReds() {
  const out = [];
  for (const { t } of tickets.values()) if (isOpen(t) && t.severity === "red" && !seenEntry(t)) out.push(t);
  return out;
}

/** Each second: a red not 已知悉 for repeat_after since it was last announced is raised again. */
export function checkRepeats(now) {
  if (!policy) return;
  const waiting = new Set(pendingAlarms.filter((a) => a.kind === "unacknowledged_red").map((a) => a.ticket_id));
  for (const t of unseenReds()) {
    const last = lastRung.get(t.ticket_id);
    if (last === undefined) lastRung.set(t.ticket_id, now);   // on the board already when it opened
    else if (now - last >= policy.repeat_after_s * 1000 && !waiting.has(t.ticket_id)) raiseAlarm("unacknowledged_red", t);
  }
}

/** One sound for everything pending, in the tone of its most urgent kind, and the words for all of it. */
function ring() {
  ringTimer = null;
  if (!pendingAlarms.length) return;
  const now = Date.now();
  const batch = pendingAlarms.splice(0);
  lastRingAt = now;
  const kinds = ALARM_KINDS.filter((k) => batch.some((a) => a.kind === k));
  const kind = kinds.find((k) => policy.tones[k]) || null;
  const sounded = Boolean(kind) && play(policy.tones[kind]);
  if (sounded) sound.played[kind] += 1;
  for (const a of batch) { a.announced = true; a.sounded = sounded; a.rungAt = now; }
  sound.rings.push({ at: now, kind, count: batch.length, sounded });
  if (sound.rings.length > 1000) sound.rings.splice(0, sound.rings.length - 1000);
  lastSummary = { at: now, parts: kinds.map((k) => {
    const mine = batch.filter((a) => a.kind === k);
    return { kind: k, n: mine.length, level: mine[mine.length - 1].level };
  }) };
  renderAlarmSummary();
}

/** Plays a tone if the person enabled sound and has not muted it; says whether it did. */
function play(toneOf) {
  if (!sound.enabled || sound.muted) return false;
  if (context().state !== "running") {   // suspended again (the tab was in the background): offer the control
    sound.enabled = false;
    renderSound();
    return false;
  }
  tone(toneOf.frequency_hz, toneOf.beeps, 0.3);
  return true;
}

/** Nothing raised, nothing announced: a new sign-in starts with a quiet board. */
export function resetAlarms() {
  lastSummary = null;
  pendingAlarms.length = 0;
  renderAlarmSummary();
}

export function renderAlarmSummary() {
  const banner = $("#alarm-summary");
  banner.hidden = !signedIn() || !lastSummary;
  if (banner.hidden) return;
  const words = ALARM_WORDS[S.getLang() === "en" ? "en" : "zh"];
  const text = lastSummary.parts.map((p) => words[p.kind].replace("{n}", String(p.n))
    .replace("{level}", p.level ? S.label("responseLevel", p.level) : "")).join(" · ");
  banner.dataset.kinds = lastSummary.parts.map((p) => p.kind).join(" ");
  S.text(banner.querySelector(".message"), `${shortTime(new Date(lastSummary.at))} ${text}`);
}

export function renderUnseen() {
  const node = $("#unseen-reds");
  node.hidden = !signedIn();
  const n = unseenReds().length;
  node.dataset.count = String(n);
  node.classList.toggle("alert", n > 0);
  S.text(node, w("unseenReds", { n }));
}

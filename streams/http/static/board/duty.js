/* The pre-plan runs under way (应急预案) and who is on duty (值班表). */
import { $, S, auth } from "./state.js";
import { signedIn } from "./silences.js";

// ------------------------------------------------------------------ pre-plan runs (应急预案)
let planRuns = [];   // the last GET /api/plan-runs?active=true: the runs under way

const TASK_STATUS = {
  zh: { dispatched: "待签收", accepted: "处置中", resolved: "待核查", closed: "已完成", returned: "已退回" },
  en: { dispatched: "to accept", accepted: "in hand", resolved: "to verify", closed: "done", returned: "returned" },
};

export function renderPlanRuns() {
  const node = $("#plan-runs");
  node.hidden = !signedIn() || planRuns.length === 0;
  if (node.hidden) { S.clear(node); return; }
  const en = S.getLang() === "en";
  const runs = planRuns.map((run) => {
    const { done, total, overdue } = run.progress;
    const head = S.el("div", { class: "plan-run-head" },
      S.el("strong", {}, en ? run.name_en : run.name), " ",
      S.el("span", { class: "plan-progress" }, en ? `${done} of ${total} done` : `已完成 ${done}/${total}`),
      overdue ? S.el("span", { class: "plan-overdue" }, en ? ` · ${overdue} overdue` : ` · 超时 ${overdue}`) : null,
      S.el("span", { class: "plan-trigger" }, ` · ${en ? run.trigger.text_en : run.trigger.text} · ${S.dateTime(run.started_at)}`));
    const tasks = run.tasks.map((task) => S.el("li", {
      class: task.overdue ? "plan-task overdue" : "plan-task",
      dataset: { ticketId: task.ticket_id, status: task.status },
    }, `${en ? task.department_name_en : task.department_name} · ${task.title.split("：").pop()} · ${(en ? TASK_STATUS.en : TASK_STATUS.zh)[task.status] || ""}`
      + (task.overdue ? (en ? " · overdue" : " · 超时") : "")));
    return S.el("div", { class: "plan-run", dataset: { runId: run.run_id } }, head,
      S.el("ul", { class: "plan-tasks" }, ...tasks));
  });
  S.fill(node, ...runs);
}

export function resetPlanRuns() {
  planRuns = [];
  renderPlanRuns();
}

export async function refreshPlanRuns() {
  if (!auth.active) return;
  try {
    planRuns = (await S.api(auth.token, "GET", "/api/plan-runs?active=true")).body.items || [];
  } catch (_error) {
    return;   // the board works without it; the next poll tries again
  }
  renderPlanRuns();
}

// ------------------------------------------------------------------ who is on duty (值班表)
export const DUTY_REFRESH_MS = 60 * 1000;
let duty = null;   // the last /api/duty/now answer

export function renderDuty() {
  const node = $("#duty");
  if (!duty) { node.hidden = true; return; }
  const en = S.getLang() === "en";
  const who = (label, person) => `${label} ${person ? person.name : "—"}`;
  node.textContent = `${who(en ? "Leader" : "带班领导", duty.leader)} · ${who(en ? "Officer" : "值班员", duty.officer)}`;
  node.hidden = false;
}

export function resetDuty() {
  duty = null;
  renderDuty();
}

export async function refreshDuty() {
  if (!auth.active) return;
  try {
    duty = (await S.api(auth.token, "GET", "/api/duty/now")).body;
  } catch (_error) {
    duty = null;   // the board works without it; the next minute tries again
  }
  renderDuty();
}

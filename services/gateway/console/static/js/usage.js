// Usage: tokens per day, per assistant and per thread (GET /v1/usage?group_by=…), and the project's budgets.

import { api } from "./api.js";
import { barChart, columnChart } from "./charts.js";
import { h, num } from "./dom.js";

const DAYS = 30;
const TOP = 15;

/** Buckets summed by key: an admin key gets one bucket per project and key. */
function byKey(buckets) {
  const sums = new Map();
  for (const b of buckets) sums.set(b.key, (sums.get(b.key) ?? 0) + Number(b.total_tokens));
  return sums;
}

function lastDays(buckets) {
  const sums = byKey(buckets);
  const rows = [];
  const today = new Date();
  for (let i = DAYS - 1; i >= 0; i--) {
    const day = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - i));
    const key = day.toISOString().slice(0, 10);
    rows.push({ label: key, short: key.slice(5), value: sums.get(key) ?? 0 });
  }
  return rows;
}

const ranked = (buckets) => [...byKey(buckets)].map(([label, value]) => ({ label, value }))
  .sort((a, b) => b.value - a.value).slice(0, TOP);

/** When a budget's current period began (UTC), as budgets.py counts it. */
function periodStart(period) {
  const now = new Date();
  if (period === "day") return Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()) / 1000;
  if (period === "month") return Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1) / 1000;
  return 0;
}

async function budgetRow(budget, signal) {
  const start = periodStart(budget.period);
  let used;
  if (budget.scope === "project") {
    used = Number((await api(`/usage?start_time=${start}`, { signal })).total.total_tokens);
  } else {  // a per-thread budget: the thread closest to it is what matters
    const buckets = (await api(`/usage?group_by=thread&start_time=${start}`, { signal })).data;
    used = Math.max(0, ...buckets.map((b) => Number(b.total_tokens)));
  }
  const limit = Number(budget.tokens);
  return h("tr", {},
    h("td", { "data-label": "Scope" }, budget.scope === "project" ? "Project" : "Each thread"),
    h("td", { "data-label": "Period" }, budget.period),
    h("td", { class: "num", "data-label": "Limit" }, num(limit)),
    h("td", { class: "num", "data-label": budget.scope === "project" ? "Used" : "Most used by a thread" }, num(used)),
    h("td", { "data-label": "Share" },
      h("meter", { min: 0, max: Math.max(limit, 1), low: limit * 0.8, high: limit * 0.95, optimum: 0,
        value: Math.min(used, limit), "aria-label": `${Math.round((used / Math.max(limit, 1)) * 100)}% of the budget` }),
      ` ${Math.round((used / Math.max(limit, 1)) * 100)}%`));
}

export async function usagePage(root, signal, principal) {
  const [days, assistants, threads, named] = await Promise.all([
    ...["day", "assistant", "thread"].map((g) => api(`/usage?group_by=${g}`, { signal })),
    api("/assistants?limit=100", { signal }).catch(() => ({ data: [] }))]);
  // Buckets are keyed by id; a reader recognises an assistant by its name.
  const names = new Map(named.data.filter((a) => a.name).map((a) => [a.id, a.name]));
  const assistantRows = ranked(assistants.data).map((r) => ({ ...r,
    label: names.has(r.label) ? `${names.get(r.label)} (${r.label})` : r.label }));
  const total = days.total;
  const stat = (label, value) => h("div", {}, h("dt", {}, label), h("dd", {}, num(value)));
  const budgets = days.budgets;
  root.append(
    h("h1", { tabindex: -1 }, "Usage"),
    h("p", { class: "hint" }, principal.is_admin ? "All projects." : `Project ${principal.project_id}.`,
      " Tokens of finished runs."),
    h("dl", { class: "totals" }, stat("Runs", total.runs), stat("Prompt tokens", total.prompt_tokens),
      stat("Completion tokens", total.completion_tokens), stat("Total tokens", total.total_tokens)),
    h("div", { class: "charts" },
      columnChart(`Tokens per day (last ${DAYS} days, UTC)`, lastDays(days.data)),
      barChart(`Tokens per assistant (top ${TOP})`, assistantRows, { keyLabel: "Assistant" }),
      barChart(`Tokens per thread (top ${TOP})`, ranked(threads.data), {
        keyLabel: "Thread",
        link: (r) => h("a", { href: `#/threads/${encodeURIComponent(r.label)}` }, h("code", {}, r.label)),
      })),
    h("h2", { class: "section" }, "Budgets"),
    principal.is_admin
      ? h("p", { class: "hint" }, "Budgets belong to projects: sign in with a project's key to see its budgets.")
      : budgets.length
        ? h("table", { class: "cards" },
          h("thead", {}, h("tr", {}, ["Scope", "Period", "Limit", "Used", "Share"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, await Promise.all(budgets.map((b) => budgetRow(b, signal)))))
        : h("p", { class: "hint" }, "No budgets set (", h("code", {}, "threadlog budgets set"), ")."));
}

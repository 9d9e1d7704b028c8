// The operators' dashboard: the fleet list and counts from GET /api/sandboxes, then live over
// the admin fleet stream (server-sent events read with fetch, so the token travels in the
// Authorization header rather than the URL: no stream ticket needed). No framework, nothing
// from a CDN.
"use strict";

const STATUSES = ["RUNNING", "PAUSING", "PAUSED", "STARTING"];
const state = { token: "", sandboxes: new Map(), counts: {}, stream: null, expired: false };
const $ = (id) => document.getElementById(id);

function authHeaders() {
  return { Authorization: `Bearer ${state.token}` };
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function api(path, init = {}) {
  const response = await fetch(path, { ...init, headers: { ...authHeaders(), ...(init.headers || {}) } });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(`${init.method || "GET"} ${path}: ${response.status} ${detail}`);
  }
  return response.status === 204 ? null : response.json();
}

function ago(iso) {
  if (!iso) return "–";
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s ago`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m ago`;
}

function timeLeft(iso) {
  const s = Math.round((Date.parse(iso) - Date.now()) / 1000);
  if (s <= 0) return "due (next tick)";
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

// RUNNING: when it is paused, and why when a policy pauses it whatever the activity; PAUSED:
// when a policy deletes it.
function timeToPause(sbx) {
  if (sbx.status === "PAUSED" && sbx.deleteAt) return `deleted in ${timeLeft(sbx.deleteAt)}`;
  if (sbx.status !== "RUNNING" || !sbx.idleDeadlineAt) return "–";
  const forced = sbx.pauseReason && sbx.pauseReason !== "idle" ? ` (${sbx.pauseReason})` : "";
  return `${timeLeft(sbx.idleDeadlineAt)}${forced}`;
}

function renderCounts() {
  for (const li of document.querySelectorAll("#counts li")) {
    li.querySelector(".n").textContent = state.counts[li.dataset.status] || 0;
  }
}

function actionButton(sbx) {
  const button = document.createElement("button");
  if (sbx.status === "RUNNING") {
    button.textContent = "pause";
    button.onclick = () => act(`/api/sandboxes/${encodeURIComponent(sbx.sandboxId)}/pause`);
  } else if (sbx.status === "PAUSED" && sbx.projectId) {
    button.textContent = "wake";
    button.onclick = () => act(`/api/projects/${encodeURIComponent(sbx.projectId)}/sandbox/wake`);
  } else {
    return null;
  }
  return button;
}

async function act(path) {
  try {
    await api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
    showError("");
  } catch (err) {
    showError(err.message);
  }
}

function renderRow(sbx) {
  let row = document.querySelector(`tr[data-id="${CSS.escape(sbx.sandboxId)}"]`);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.id = sbx.sandboxId;
    for (const cls of ["id", "project", "status", "ttp", "active", "source", "action"]) {
      const cell = document.createElement("td");
      cell.className = cls;
      row.appendChild(cell);
    }
    row.querySelector(".id").onclick = () => showHistory(sbx.sandboxId);
    row.querySelector(".project").onclick = () => {
      const project = state.sandboxes.get(row.dataset.id)?.projectId;
      if (project) loadPolicy(project);
    };
    $("sandboxes").appendChild(row);
  }
  row.dataset.status = sbx.status;
  row.classList.toggle("imminent", Boolean(sbx.pauseImminent));
  row.querySelector(".id").textContent = sbx.sandboxId;
  row.querySelector(".project").textContent = sbx.projectId || "–";
  row.querySelector(".status").textContent = sbx.status;
  row.querySelector(".ttp").textContent = timeToPause(sbx);
  row.querySelector(".active").textContent = ago(sbx.lastActiveAt);
  row.querySelector(".source").textContent = sbx.lastActivitySource || "–";
  const action = row.querySelector(".action");
  action.replaceChildren(...[actionButton(sbx)].filter(Boolean));
}

function upsert(sbx) {
  const before = state.sandboxes.get(sbx.sandboxId);
  if (before) state.counts[before.status] = (state.counts[before.status] || 1) - 1;
  state.counts[sbx.status] = (state.counts[sbx.status] || 0) + 1;
  const merged = { ...before, ...sbx };
  state.sandboxes.set(sbx.sandboxId, merged);
  renderRow(merged);
  renderCounts();
}

function remove(sandboxId) {
  const before = state.sandboxes.get(sandboxId);
  if (!before) return;
  state.counts[before.status] -= 1;
  state.sandboxes.delete(sandboxId);
  document.querySelector(`tr[data-id="${CSS.escape(sandboxId)}"]`)?.remove();
  renderCounts();
}

function logEvent(text) {
  const item = document.createElement("li");
  item.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  $("events").prepend(item);
  while ($("events").children.length > 100) $("events").lastChild.remove();
}

async function showHistory(sandboxId) {
  try {
    const page = await api(`/api/sandboxes/${encodeURIComponent(sandboxId)}/history?limit=50`);
    $("history-of").textContent = sandboxId;
    $("history").replaceChildren(...page.events.map((e) => {
      const item = document.createElement("li");
      // Why, as the fact says it: a pause's or delete's reason (idle, maxRunningTime,
      // quietHours, deleteAfterPaused, policy), a kill's kill_reason.
      const why = e.data.reason || e.data.kill_reason;
      const reason = why ? ` (${why})` : "";
      item.textContent = `${e.occurredAt}  ${e.type}  by ${e.source}${reason}`;
      return item;
    }));
    $("history-panel").hidden = false;
  } catch (err) {
    showError(err.message);
  }
}

// -- lifecycle policies: the one in force for a project (or the default), and editing it ----

function policyPath(project) {
  return project ? `/api/projects/${encodeURIComponent(project)}/policy` : "/api/policy/default";
}

function renderPolicy(project, answer) {
  $("policy-project").value = project;
  $("policy-level").textContent = project || "the global default";
  $("policy-effective").replaceChildren(...Object.entries(answer.effective).map(([field, v]) => {
    const row = document.createElement("tr");
    row.dataset.field = field;
    for (const [cls, text] of [["field", field], ["value", v.value === null ? "–" : JSON.stringify(v.value)], ["source", v.source]]) {
      const cell = document.createElement("td");
      cell.className = cls;
      cell.textContent = text;
      row.appendChild(cell);
    }
    return row;
  }));
  // What an adaptive rule learned is the learner's (shown above, under effective): a PUT may
  // not carry it, so the editor holds the policy without it.
  const editable = structuredClone(answer.policy);
  if (editable.idle) delete editable.idle.learned;
  $("policy-json").value = JSON.stringify(editable, null, 2);
  $("policy-view").hidden = false;
}

async function loadPolicy(project) {
  try {
    renderPolicy(project, await api(policyPath(project)));
    $("policy-status").textContent = "";
    showError("");
  } catch (err) {
    showError(err.message);
  }
}

async function savePolicy() {
  const project = $("policy-project").value.trim();
  const status = $("policy-status");
  let body;
  try {
    body = JSON.stringify(JSON.parse($("policy-json").value || "{}"));
  } catch (err) {
    status.textContent = `not JSON: ${err.message}`;
    return;
  }
  const response = await fetch(policyPath(project), {
    method: "PUT",
    headers: { ...authHeaders(), "Content-Type": "application/json" },
    body,
  });
  const answer = await response.json().catch(() => ({}));
  if (response.status !== 202) {
    status.textContent = answer.field ? `refused: ${answer.field}: ${answer.reason}` : `refused: ${response.status} ${answer.detail || ""}`;
    return;
  }
  status.textContent = "saved; applying…";
  // Applied once the projector has folded the fact: the GET shows its event id then.
  for (let i = 0; i < 50; i++) {
    const now = await api(policyPath(project));
    if (now.eventId === answer.eventId) {
      renderPolicy(project, now);
      status.textContent = "applied";
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  status.textContent = "saved; not applied yet (is the projector behind?)";
}

$("policy-form").onsubmit = (e) => {
  e.preventDefault();
  loadPolicy($("policy-project").value.trim());
};

$("policy-edit").onsubmit = (e) => {
  e.preventDefault();
  savePolicy().catch((err) => showError(err.message));
};

async function loadFleet() {
  state.sandboxes.clear();
  $("sandboxes").replaceChildren();
  let cursor = null;
  let page;
  do {
    const query = new URLSearchParams({ limit: "500", ...(cursor ? { cursor } : {}) });
    page = await api(`/api/sandboxes?${query}`);
    for (const sbx of page.sandboxes) {
      state.sandboxes.set(sbx.sandboxId, sbx);
      renderRow(sbx);
    }
    cursor = page.nextCursor;
  } while (cursor && state.sandboxes.size < 2000);
  state.counts = { ...page.counts };
  renderCounts();
}

function handle(event, data) {
  if (event === "sandbox") {
    const before = state.sandboxes.get(data.sandboxId);
    if (!before || before.status !== data.status) logEvent(`${data.sandboxId} → ${data.status}`);
    upsert(data);
  } else if (event === "gone" && data.sandboxId) {
    logEvent(`${data.sandboxId} → killed`);
    remove(data.sandboxId);
  } else if (event === "reset") {
    logEvent("read model rebuilt: reloading the fleet");
    loadFleet().catch((err) => showError(err.message));
  } else if (event === "reauthenticate") {
    // The stream ended with the token: reconnecting with it would only be refused.
    state.expired = true;
    showError("Your token expired: sign in with a new one to follow the fleet live.");
  } else if (event === "deleteImminent") {
    logEvent(`${data.sandboxId} is deleted in ${data.secondsLeft}s unless woken (policy)`);
  } else if (event === "pauseImminent") {
    const why = data.reason && data.reason !== "idle" ? ` (${data.reason})` : " unless used";
    logEvent(`${data.sandboxId} pauses in ${data.secondsLeft}s${why}`);
    const sbx = state.sandboxes.get(data.sandboxId);
    if (sbx) renderRow({ ...sbx, pauseImminent: true });
  }
}

// Reads the fleet stream; reconnects with Last-Event-ID after a drop, as EventSource would.
async function follow() {
  let lastId = null;
  while (!state.expired) {
    try {
      const headers = { ...authHeaders(), Accept: "text/event-stream", ...(lastId ? { "Last-Event-ID": lastId } : {}) };
      const response = await fetch("/api/sandboxes/stream", { headers });
      if (!response.ok) throw new Error(`stream: ${response.status}`);
      $("live").textContent = "live";
      $("live").className = "live on";
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n/g, "\n");
        let split;
        while ((split = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, split);
          buffer = buffer.slice(split + 2);
          let event = "message";
          const data = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
            else if (line.startsWith("id:")) lastId = line.slice(3).trim();
          }
          if (data.length) handle(event, JSON.parse(data.join("\n")));
        }
      }
    } catch (err) {
      showError(err.message);
    }
    $("live").textContent = state.expired ? "token expired" : "reconnecting";
    $("live").className = "live off";
    if (!state.expired) await new Promise((resolve) => setTimeout(resolve, 2000));
  }
  state.stream = null;
}

async function start(token) {
  state.token = token;
  state.expired = false;
  sessionStorage.setItem("sandbox-dashboard-token", token);
  try {
    await loadFleet();
    showError("");
  } catch (err) {
    showError(err.message);
    return;
  }
  if (!state.stream) state.stream = follow();
}

$("login").onsubmit = (e) => {
  e.preventDefault();
  start($("token").value.trim());
};

setInterval(() => {
  for (const sbx of state.sandboxes.values()) renderRow(sbx);
}, 1000);

// A link such as /dashboard/#token=... (printed by `make up`) signs in at once.
const fromFragment = new URLSearchParams(location.hash.slice(1)).get("token");
const saved = fromFragment || sessionStorage.getItem("sandbox-dashboard-token");
if (fromFragment) history.replaceState(null, "", location.pathname);
if (saved) {
  $("token").value = saved;
  start(saved);
}

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

function timeToPause(sbx) {
  if (sbx.status !== "RUNNING" || !sbx.idleDeadlineAt) return "–";
  const s = Math.round((Date.parse(sbx.idleDeadlineAt) - Date.now()) / 1000);
  return s > 0 ? `${Math.floor(s / 60)}m ${s % 60}s` : "due (next tick)";
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
      const reason = e.data.reason ? ` (${e.data.reason})` : "";
      item.textContent = `${e.occurredAt}  ${e.type}  by ${e.source}${reason}`;
      return item;
    }));
    $("history-panel").hidden = false;
  } catch (err) {
    showError(err.message);
  }
}

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
  } else if (event === "pauseImminent") {
    logEvent(`${data.sandboxId} pauses in ${data.secondsLeft}s unless used`);
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

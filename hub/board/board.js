// gridcall's built-in board (served by the hub at /board; hub/board_web.py).
// Plain JS, no build step, nothing from outside this origin. The page asks once for a
// unit's bearer token (kept in sessionStorage) and uses the unit-scoped API:
//   GET  v1/board/map      the subtree's GeoJSON polygons and sensors, drawn as SVG
//   GET  v1/board/state    grid/sensor risk, open alerts, escalations
//   GET  v1/board/events   Server-Sent Events, read with fetch() streaming because
//                          EventSource cannot send the Authorization header
//   POST v1/alerts/{id}/{action}   the buttons
//   GET  v1/agents, v1/silences, v1/incidents(/{id}), v1/handover   the other panels
//   POST v1/silences, v1/silences/{id}/lift   the silence form and its lift buttons
// A department's token (吹哨报到) opens the department view instead:
//   GET  v1/department, v1/department/alerts?open=true   who it is, what it is called to
//   POST v1/department/alerts/{id}/{report-in|arrive|dispose}   its own steps
//   GET  v1/alerts/{id}, POST v1/alerts/{id}/plan/{step}   an alert's plan checklist
// Live: every `change` event fetches the state again (debounced); a fallback poll runs
// while the stream is down, and the stream reconnects with a backoff.
"use strict";

(() => {
  const TOKEN_KEY = "gridcall.board.token";
  const NS_PER_MS = 1e6;
  const POLL_DOWN_MS = 5000;     // state poll while the event stream is down
  const POLL_LIVE_MS = 60000;    // and, as insurance, while it is up
  const STALE_MS = 20000;        // no byte for this long: the stream is dead, reconnect
  const TIERS = { 4: "A", 3: "B", 2: "C", 1: "D" };
  const RISK = { A: 4, B: 3, C: 2, D: 1 };
  // a sensor its agent reports as anything but ok (stuck, missing, fault...); unknown is
  // not a report (its agent is not online), so it is not marked
  const unwell = (health) => Boolean(health) && health !== "ok" && health !== "unknown";
  const ACTION_LABEL = {
    acknowledge: "acknowledge 签收", arrive: "arrive 到场", resolve: "resolve 办结",
    false_alarm: "false alarm 误报", escalate: "call upward 吹哨",
    approve: "approve close 批准", reject: "reject close 退回",
  };
  const ACTION_PATH = {
    acknowledge: "acknowledge", arrive: "arrive", resolve: "resolve",
    false_alarm: "false-alarm", escalate: "escalate", approve: "approve", reject: "reject",
  };
  // A close awaiting approval (closure.approval, docs/desk.md): the closing buttons give
  // way to the approving unit's approve and reject (a second request would be a 409).
  const CLOSING = new Set(["resolve", "false_alarm"]);
  const CLOSE_AS = { resolve: "resolved", false_alarm: "a false alarm" };
  // A department called to an alert (吹哨报到): where its call stands, and its next step.
  const STAGE_LABEL = {
    whistled: "called 已吹哨", reported_in: "reported in 已报到", arrived: "on site 已到场",
    disposed: "disposed 已处置",
  };
  const DEPT_NEXT = {
    whistled: ["report-in", "report in 报到"], reported_in: ["arrive", "arrive 到场"],
    arrived: ["dispose", "dispose 处置"],
  };
  const SVG = "http://www.w3.org/2000/svg";
  // Map labels in screen pixels: a grid's name is drawn only where it fits its grid at
  // GRID_MIN_PX or more (else the community names, always readable, stand for them; the
  // grid's name stays in its tooltip); no label is drawn larger than its *_MAX_PX.
  const GRID_MIN_PX = 12, GRID_MAX_PX = 20, AREA_MIN_PX = 12, AREA_MAX_PX = 18;

  const $ = (sel) => document.querySelector(sel);
  const el = (tag, attrs = {}, ...kids) => {
    const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4))
      : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k === "class") node.setAttribute("class", v);
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const kid of kids) if (kid !== null && kid !== undefined) node.append(kid);
    return node;
  };

  // The name of a unit, department or person (GET v1/board/map's names), else the id.
  const nameOf = (id) => (board.map && board.map.names && board.map.names[id]) || id;
  // An alert as a person says it: what, where, and its id to quote on the phone.
  const alertLabel = (a) => `${a.matter_name} · ${a.grid_name} (${a.alert_id})`;

  const board = {
    token: null, me: null, map: null, state: null, live: false, zoom: null, noRoster: false,
    silences: [], incident: null, incidentAlerts: new Set(), handedTo: new Map(), plan: null,
    stream: null, attempts: 0, refreshTimer: null, lastByte: 0,
    clock: { first: null, last: null, rate: 1 },
  };
  window.gridcallBoard = board;  // for people debugging in the console (and tests)

  // ------------------------------------------------------------------ API

  class ApiRefusal extends Error {
    constructor(status, detail) {
      super(`${status}: ${detail}`);
      this.status = status;
      this.detail = detail;
    }
  }

  function detailOf(body, fallback) {
    if (!body || body.detail === undefined) return fallback;
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) {   // pydantic's 422: a list of problems
      return body.detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
    }
    return JSON.stringify(body.detail);
  }

  async function api(path, options = {}) {
    const headers = { Authorization: `Bearer ${board.token}`, ...(options.headers || {}) };
    let body;
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.json);
    }
    const resp = await fetch(path, { method: options.method || "GET", headers, body,
                                     cache: "no-store" });
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok) throw new ApiRefusal(resp.status, detailOf(data, resp.statusText));
    return data;
  }
  // The one fetch helper of the page: report.js and audits.js, loaded after this script,
  // call the API through it (window.gridcallBoard.api).
  board.api = api;

  // ------------------------------------------------------------------ the desk's clock

  // Deadlines are on the hub's desk clock, which may run faster than real time (the
  // demo's --clock-speed): the page follows the `now` of every state and event and
  // estimates the rate from the first and latest of them.
  function sampleClock(now) {
    const local = performance.now();
    const c = board.clock;
    if (!c.first) c.first = { server: now, local };
    else if (local - c.first.local > 3000) {
      const rate = (now - c.first.server) / ((local - c.first.local) * NS_PER_MS);
      c.rate = Math.min(100000, Math.max(0, rate));
    }
    c.last = { server: now, local };
  }

  function deskNow() {
    const c = board.clock;
    if (!c.last) return Date.now() * NS_PER_MS;
    return c.last.server + (performance.now() - c.last.local) * NS_PER_MS * c.rate;
  }

  function fmtTime(ns) {
    const d = new Date(ns / NS_PER_MS);
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  // A moment said short: "17:30" today (on the desk's clock), "12-07 08:00" this year,
  // else "2030-01-02 08:00".
  function fmtNear(ns) {
    const full = fmtTime(ns), now = fmtTime(deskNow());
    if (full.slice(0, 10) === now.slice(0, 10)) return full.slice(11, 16);
    return full.slice(0, 4) === now.slice(0, 4) ? full.slice(5, 16) : full.slice(0, 16);
  }

  function fmtLeft(seconds) {
    const s = Math.floor(Math.abs(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (h >= 48) return `${Math.floor(h / 24)}d ${h % 24}h`;
    if (h > 0) return `${h}h ${String(m).padStart(2, "0")}m`;
    return `${m}:${String(sec).padStart(2, "0")}`;
  }

  // ------------------------------------------------------------------ notices

  function notice(text, kind) {
    const box = $("#notice");
    box.textContent = text;
    box.className = kind;
    box.hidden = false;
  }

  // What the page could not load in the background (the state, the event stream) goes
  // to its own line, so it never hides the answer to what the person just clicked.
  function syncProblem(text) {
    const line = $("#sync");
    line.textContent = text || "";
    line.hidden = !text;
  }

  // ------------------------------------------------------------------ the map

  function shortName(area, byId) {
    const parent = area.parent ? byId.get(area.parent) : null;
    if (parent && area.name.startsWith(parent.name) && area.name.length > parent.name.length) {
      return area.name.slice(parent.name.length);
    }
    return area.name;
  }

  function fillZoom(map) {
    const select = $("#zoom");
    const indent = { district: "", town: "", community: "\u00a0\u00a0", grid: "\u00a0\u00a0\u00a0\u00a0" };
    select.replaceChildren(...map.areas.filter((a) => a.level !== "grid" || a.id === map.unit.unit)
      .map((a) => el("option", { value: a.id, text: `${indent[a.level]}${a.name}` })));
    select.hidden = select.options.length < 2;
    select.addEventListener("change", () => zoomTo(select.value));
  }

  function zoomTo(areaId) {
    board.zoom = areaId;
    $("#zoom").value = areaId;
    drawMap(board.map);
    if (board.state) paintMap(board.state);
  }

  function drawMap(map) {
    const svg = $("#map");
    svg.replaceChildren();
    const byId = new Map(map.areas.map((a) => [a.id, a]));
    // The map frames one area of the subtree (the select above it; clicking a town or
    // community label zooms there): everything below it, since a district's or a
    // community's polygon may be much larger than what lies in it.
    const root = byId.get(board.zoom) || byId.get(map.unit.unit);
    const within = (a) => {
      for (let x = a; x; x = byId.get(x.parent)) if (x.id === root.id) return true;
      return false;
    };
    const areas = map.areas.filter(within);
    const grids = areas.filter((a) => a.level === "grid");
    const gridIds = new Set(grids.map((g) => g.id));
    const sensors = map.sensors.filter((s) => gridIds.has(s.grid));
    const below = areas.filter((a) => a.id !== root.id);
    const focus = below.length ? below : [root];
    const points = [];
    for (const a of focus) {
      if (a.polygon) for (const ring of a.polygon) points.push(...ring);
      else points.push(a.point);
    }
    for (const s of sensors) points.push([s.lon, s.lat]);
    let minLon = Math.min(...points.map((p) => p[0])), maxLon = Math.max(...points.map((p) => p[0]));
    let minLat = Math.min(...points.map((p) => p[1])), maxLat = Math.max(...points.map((p) => p[1]));
    const span = Math.max(maxLon - minLon, maxLat - minLat, 0.002);
    const padLon = span * 0.04, padLat = span * 0.04;
    minLon -= padLon; maxLon += padLon; minLat -= padLat; maxLat += padLat;
    // Equirectangular with the longitude shrunk by cos(latitude): true shapes at a town's
    // scale, no projection library needed.
    const k = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
    const W = 1000;
    const scale = W / ((maxLon - minLon) * k || 1);
    const H = Math.max(200, (maxLat - minLat) * scale);
    const xy = ([lon, lat]) => [(lon - minLon) * k * scale, (maxLat - lat) * scale];
    svg.setAttribute("viewBox", `0 0 ${W} ${H.toFixed(1)}`);
    const ringPath = (ring) => ring.map((p, i) => {
      const [x, y] = xy(p);
      return `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`;
    }).join("") + "Z";
    const shape = (a, cls) => {
      if (a.polygon) {
        return el("svg:path", { d: a.polygon.map(ringPath).join(" "), class: cls,
                                "fill-rule": "evenodd" });
      }
      const [x, y] = xy(a.point);
      const r = W * 0.012;
      return el("svg:rect", { x: x - r, y: y - r, width: 2 * r, height: 2 * r, rx: r / 3,
                              class: cls });
    };
    const box = (a) => {
      const pts = a.polygon ? a.polygon[0].map(xy) : [xy(a.point)];
      const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
      return { x0: Math.min(...xs), x1: Math.max(...xs), y0: Math.min(...ys), y1: Math.max(...ys) };
    };

    const layer = (cls) => svg.appendChild(el("svg:g", { class: cls }));
    const gridLayer = layer("grids"), outlines = layer("outlines");
    const labels = layer("labels"), sensorLayer = layer("sensors");  // dots over names
    for (const g of grids) {
      const path = shape(g, "grid risk-0");
      path.dataset.grid = g.id;
      path.dataset.risk = "0";
      path.append(el("svg:title", { text: `${g.name} (${g.id})` }));
      path.addEventListener("click", () => highlight(g.id));
      gridLayer.append(path);
      const b = box(g);
      const label = shortName(g, byId);
      const [cx, cy] = xy(g.centre);
      // sized by fitLabels, in screen pixels, once the map is on the page
      const text = el("svg:text", { x: cx, y: cy, class: "grid-label", text: label });
      Object.assign(text.dataset, { of: g.id, cy, w: b.x1 - b.x0, h: b.y1 - b.y0 });
      labels.append(text);
    }
    for (const a of areas) {
      if (a.level === "grid") continue;
      outlines.append(shape(a, `outline ${a.level}`));
      if ((a.level === "community" || a.level === "town") && a.polygon && a.id !== root.id) {
        const b = box(a);
        const label = el("svg:text", { x: (b.x0 + b.x1) / 2, y: b.y0,
                                       class: `area-label ${a.level}`, text: a.name });
        Object.assign(label.dataset, { area: a.id, y0: b.y0, y1: b.y1, w: b.x1 - b.x0,
                                       h: b.y1 - b.y0 });
        label.append(el("svg:title", { text: `${a.name}: zoom in` }));
        label.addEventListener("click", () => zoomTo(a.id));
        labels.append(label);
      }
    }
    const widths = grids.map((g) => { const b = box(g); return b.x1 - b.x0; });
    const r = Math.max(2.5, Math.min(7, Math.min(...widths, W) * 0.035));
    for (const s of sensors) {
      const [x, y] = xy([s.lon, s.lat]);
      const dot = el("svg:circle", { cx: x.toFixed(1), cy: y.toFixed(1), r, class: "sensor" });
      dot.dataset.sensor = s.id;
      dot.dataset.r = String(r);
      dot.append(el("svg:title", { text: `${s.name} · ${s.kind}` }));
      sensorLayer.append(dot);
    }
    fitLabels();
  }

  // Sizes the map's names for the size the map has on screen (again whenever it changes:
  // a ResizeObserver calls this): a grid's name at GRID_MIN_PX..GRID_MAX_PX where it fits
  // inside its grid, hidden where it cannot; a town's or community's name never below
  // AREA_MIN_PX (communities named at their top edge, towns at their bottom one).
  function fitLabels() {
    const svg = $("#map");
    const vb = svg.viewBox.baseVal;
    const rect = svg.getBoundingClientRect();
    if (!vb || !vb.width || !rect.width) return;   // not on the page (yet)
    const px = Math.min(rect.width / vb.width, rect.height / vb.height);  // per SVG unit
    for (const t of svg.querySelectorAll("text.grid-label")) {
      const w = Number(t.dataset.w), h = Number(t.dataset.h);
      const fit = Math.min(h * 0.3, w / (t.firstChild.nodeValue.length * 1.05 + 0.4));
      const size = Math.min(fit, GRID_MAX_PX / px);
      t.setAttribute("font-size", size.toFixed(2));
      t.setAttribute("y", (Number(t.dataset.cy) + size * 0.35).toFixed(1));
      t.dataset.px = (size * px).toFixed(1);
      t.toggleAttribute("hidden", size * px < GRID_MIN_PX);
    }
    for (const t of svg.querySelectorAll("text.area-label")) {
      const fit = Math.min(Number(t.dataset.w) / (t.firstChild.nodeValue.length * 1.1),
                           Number(t.dataset.h) * 0.1);
      const size = Math.max(AREA_MIN_PX / px, Math.min(fit, AREA_MAX_PX / px));
      const town = t.classList.contains("town");
      t.setAttribute("font-size", size.toFixed(2));
      t.setAttribute("y", (town ? Number(t.dataset.y1) - size * 0.4
                                : Number(t.dataset.y0) + size * 1.1).toFixed(1));
      t.dataset.px = (size * px).toFixed(1);
    }
  }

  function paintMap(state) {
    const grids = new Map(state.grids.map((g) => [g.id, g]));
    for (const path of document.querySelectorAll("#map .grid")) {
      const g = grids.get(path.dataset.grid);
      const risk = g ? g.risk : 0;
      path.setAttribute("class", `grid risk-${risk}`);
      path.dataset.risk = String(risk);
      path.dataset.open = String(g ? g.open : 0);
      const area = board.map.areas.find((a) => a.id === path.dataset.grid) || { name: "", id: "" };
      path.querySelector("title").textContent = g
        ? `${area.name} (${area.id}) · tier ${TIERS[risk]} · ${g.open} open`
        : `${area.name} (${area.id}) · no open alert`;
    }
    const sensors = new Map(state.sensors.map((s) => [s.id, s]));
    for (const dot of document.querySelectorAll("#map .sensor")) {
      const s = sensors.get(dot.dataset.sensor);
      const sick = unwell(dot.dataset.health);
      dot.setAttribute("class", (s ? `sensor alerting risk-${s.risk}` : "sensor") +
                               (sick ? " unhealthy" : ""));
      dot.dataset.risk = String(s ? s.risk : 0);
      sizeDot(dot);
    }
    markSilenced();
  }

  function sizeDot(dot) {
    const big = dot.classList.contains("alerting") || dot.classList.contains("unhealthy");
    dot.setAttribute("r", String(Number(dot.dataset.r) * (big ? 1.8 : 1)));
  }

  function highlight(gridId) {
    for (const row of document.querySelectorAll("#alerts tbody tr")) {
      row.classList.toggle("hl", row.dataset.grid === gridId);
    }
  }

  // ------------------------------------------------------------------ the alerts

  function dueCell(alert) {
    const cell = el("td", { class: "due" });
    if (alert.due) {
      cell.dataset.at = String(alert.due.at);
      cell.dataset.kind = alert.due.name;
    }
    return cell;
  }

  function tickCountdowns() {
    const now = deskNow();
    for (const cell of document.querySelectorAll(
      "#alerts td.due[data-at], #dept-calls td.due[data-at], #dept-alerts td.due[data-at]")) {
      const left = (Number(cell.dataset.at) - now) / 1e9;
      const overdue = left < 0;
      cell.classList.toggle("overdue", overdue);
      cell.replaceChildren(
        el("small", { text: overdue ? `${cell.dataset.kind} overdue` : `${cell.dataset.kind} in` }),
        el("span", { class: "left", text: fmtLeft(left) }));
    }
    const speed = board.clock.rate > 1.5 ? ` (×${Math.round(board.clock.rate)})` : "";
    $("#desk-clock").textContent = board.clock.last ? `desk ${fmtTime(now)}${speed}` : "";
  }

  function renderAlerts(state) {
    const body = $("#alerts tbody");
    body.replaceChildren();
    for (const a of state.alerts) {
      const buttons = el("td", { class: "actions" });
      const pending = Boolean(a.pending_close);
      const actions = pending ? a.actions.filter((x) => !CLOSING.has(x)) : a.actions;
      if (pending && a.may_approve) actions.unshift("approve", "reject");
      for (const action of actions) {
        buttons.append(el("button", {
          type: "button", class: `act ${action}`, "data-action": action,
          text: ACTION_LABEL[action] || action, onclick: () => act(a, action),
        }));
      }
      if (board.me.level !== "grid") {   // a grid calls upward; the levels above dispatch
        buttons.append(el("button", { type: "button", class: "act dispatch",
                                      "data-action": "dispatch", text: "dispatch 派遣部门",
                                      onclick: () => dispatchAlert(a) }));
      }
      if (board.map.sensors.some((s) => s.id === a.sensor)) {
        buttons.append(el("button", { type: "button", class: "link silence-sensor",
                                      text: "silence its sensor…",
                                      onclick: () => prefillSilence("sensor", a.sensor) }));
      }
      const row = el("tr", { "data-alert": a.alert_id, "data-grid": a.grid,
                             "data-state": a.state, class: `tier-${a.tier}` },
        dueCell(a),
        el("td", {}, el("span", { class: `tier risk-${RISK[a.tier]}`, text: a.tier })),
        el("td", { class: "matter" },
          el("div", { text: a.matter_name }),
          el("small", { text: `${a.alert_id} · ${a.matter} · ${a.grid_name}` }),
          a.incident ? el("button", { type: "button", class: "link incident-link",
                                      text: `incident ${a.incident}`,
                                      onclick: () => showIncident(a.incident) }) : null,
          callsLine(a),
          a.plan_steps !== null && a.plan_steps !== undefined
            ? el("button", { type: "button", class: "link plan-link", "data-alert": a.alert_id,
                             text: a.plan_steps ? `plan 预案 ${a.plan_done.length}/${a.plan_steps}`
                               : "plan 预案",
                             onclick: () => showPlan(a.alert_id) }) : null),
        el("td", { class: "unit", title: a.unit_path.join(" / ") },
          el("div", { text: a.unit_name }), el("small", { text: a.unit_level })),
        el("td", { class: "state", text: a.state.replace("_", " ") },
          pending ? el("small", {
            class: "pending-close", "data-approver": a.approver,
            title: `asked by ${nameOf(a.pending_by)} to close it as ` +
                   `${CLOSE_AS[a.pending_close] || a.pending_close}; its deadlines wait`,
            text: `close awaiting approval by ${a.approver_name || a.approver}` }) : null),
        el("td", { class: "esc", title: a.escalations ? a.reason : "",
                   text: a.escalations ? `↑${a.escalations}` : "" }),
        buttons);
      body.append(row);
    }
    $("#alert-count").textContent = `(${state.alerts.length})`;
    $("#no-alerts").hidden = state.alerts.length > 0;
    $("#alerts").hidden = state.alerts.length === 0;
    tickCountdowns();

    const esc = $("#escalations");
    esc.replaceChildren(...state.escalations.slice(0, 30).map((e) => el("li", {},
      el("span", { class: `tier risk-${RISK[e.tier]}`, text: e.tier }),
      ` ${e.alert_id} → ${e.unit_name} · ${e.reason} · ${e.actor === "hub" ? "by the hub" : `by ${nameOf(e.actor)}`} · `,
      el("time", { text: fmtTime(e.at) }))));
    if (!state.escalations.length) esc.append(el("li", { class: "none", text: "none" }));
  }

  // ------------------------------------------------------------------ departments

  // Under an alert's matter: the departments called to it and where each stands.
  function callsLine(a) {
    const calls = a.department_calls || [];
    if (!calls.length) return null;
    return el("div", { class: "calls" }, ...calls.map((c) => el("span", {
      class: `call ${c.stage}${c.supervised_at ? " supervised" : ""}`,
      "data-department": c.department, "data-stage": c.stage,
      title: `on site by ${fmtNear(c.arrive_by)}` +
             (c.supervised_at ? ` · supervised (督办) ${fmtNear(c.supervised_at)}` : ""),
      text: `${nameOf(c.department)} ${STAGE_LABEL[c.stage]}` +
            (c.supervised_at ? " · 督办" : "") })));
  }

  // The promised arrival of a call still awaited, counting down; else when it arrived.
  function arrivalCell(c) {
    const cell = el("td", { class: "due arrival" });
    if (c.arrived_at === null && c.disposed_at === null) {
      cell.dataset.at = String(c.arrive_by);
      cell.dataset.kind = "on site";
    } else if (c.arrived_at !== null) {
      cell.textContent = `arrived ${fmtNear(c.arrived_at)}` +
        (c.arrived_at > c.arrive_by ? " (late)" : "");
    }
    return cell;
  }

  const whoDid = (person, at) => person ? ` · ${nameOf(person)} ${fmtNear(at)}` : "";

  // The unit's view of the departments: every call on its open alerts.
  function renderDepartments(state) {
    const rows = [];
    for (const a of state.alerts) for (const c of a.department_calls || []) rows.push([a, c]);
    $("#dept-calls tbody").replaceChildren(...rows.map(([a, c]) => el("tr", {
      "data-alert": a.alert_id, "data-department": c.department, "data-stage": c.stage },
      el("td", { text: nameOf(c.department) }),
      el("td", {}, el("div", { text: a.matter_name }),
         el("small", { text: `${a.alert_id} · ${a.grid_name}` })),
      el("td", { class: "stage", text: STAGE_LABEL[c.stage] +
        (c.stage === "reported_in" ? whoDid(c.reported_person, c.reported_at)
          : c.stage === "arrived" ? whoDid(c.arrived_person, c.arrived_at)
            : c.stage === "disposed" ? whoDid(c.disposed_person, c.disposed_at)
              : c.on_duty ? ` · sent to ${nameOf(c.on_duty)}` : "") }),
      arrivalCell(c),
      el("td", { class: "supervised", text: c.supervised_at
        ? `${fmtNear(c.supervised_at)} → ${nameOf(c.supervised_by || "district")}` : "" }))));
    $("#no-dept-calls").hidden = rows.length > 0;
    $("#dept-calls").hidden = rows.length === 0;
  }

  // POST v1/alerts/{id}/dispatch: call departments (吹哨); each must report in and be on
  // site by its promise. Empty: the matter's own departments (those whose area it is in).
  async function dispatchAlert(alert) {
    const named = window.prompt(`Dispatch departments to ${alertLabel(alert)} (吹哨): their ` +
                                "ids, separated by commas; empty: the matter's own", "");
    if (named === null) return;
    const departments = named.split(/[,，\s]+/).map((d) => d.trim()).filter(Boolean);
    try {
      const done = await api(`v1/alerts/${encodeURIComponent(alert.alert_id)}/dispatch`,
                             { method: "POST", json: { departments } });
      const last = done.history[done.history.length - 1];
      const called = last.action === "dispatch" && last.whistled.length
        ? last.whistled.map((w) => `${nameOf(w.department)} on site by ${fmtNear(w.arrive_by)}`)
          .join(", ")
        : "no department anew (their calls are under way)";
      notice(`${alertLabel(alert)}: dispatched — ${called}`, "ok");
    } catch (err) {
      const [status, why] = refusal(err);
      notice(`${alertLabel(alert)}: dispatch refused (${status}): ${why}`, "error");
    }
    await refresh();
  }

  // A department's own board: the open alerts it is called to, with its next step.
  async function startDepartment() {
    board.dept = await api("v1/department");
    const d = board.dept;
    $("#signin").hidden = true;
    $("#board").hidden = true;
    $("#dept-board").hidden = false;
    $("#signout").hidden = false;
    $("#unit-name").textContent = `· ${d.name} (department ${d.department})`;
    document.title = `gridcall · ${d.name}`;
    $("#dept-info").textContent =
      `area ${d.towns.length ? d.towns.join(", ") : "the whole district"} · on site within ` +
      `${Math.round(d.arrival_s / 60)} min of a call` +
      (d.person ? ` · acting as ${d.person}` : "") + (d.on_duty ? ` · on duty ${d.on_duty}` : "");
    await refreshDept();
    setInterval(tickCountdowns, 1000);
    setInterval(refreshDept, POLL_DOWN_MS);
  }

  async function refreshDept() {
    let data;
    try {
      data = await api("v1/department/alerts?open=true");
    } catch (err) {
      const [status, why] = refusal(err);
      syncProblem(`the hub refused the department's alerts (${status}): ${why}`);
      return;
    }
    syncProblem("");
    if (data.now) sampleClock(data.now);   // the desk's clock (the demo's runs faster)
    const mine = board.dept.department;
    $("#dept-alerts tbody").replaceChildren(...data.alerts.map((a) => {
      const c = a.department_calls.find((x) => x.department === mine);
      const next = c ? DEPT_NEXT[c.stage] : null;
      const buttons = el("td", { class: "actions" });
      if (next) {
        buttons.append(el("button", { type: "button", class: `act ${next[0]}`,
                                      "data-action": next[0], text: next[1],
                                      onclick: () => deptAct(a, next[0]) }));
      }
      return el("tr", { "data-alert": a.alert_id, "data-stage": c ? c.stage : "",
                        class: `tier-${a.tier}` },
        c ? arrivalCell(c) : el("td"),
        el("td", {}, el("span", { class: `tier risk-${RISK[a.tier]}`, text: a.tier })),
        el("td", { class: "matter" }, el("div", { text: a.matter_name }),
           el("small", { text: `${a.alert_id} · ${a.matter} · ${a.grid}` })),
        el("td", { class: "unit", text: `${a.unit} (${a.unit_level})` }),
        el("td", { class: "stage", text: c ? STAGE_LABEL[c.stage] +
          (c.supervised_at ? " · 督办" : "") : "" }),
        buttons);
    }));
    $("#dept-count").textContent = `(${data.alerts.length})`;
    $("#no-dept-alerts").hidden = data.alerts.length > 0;
    $("#dept-alerts").hidden = data.alerts.length === 0;
    tickCountdowns();
    document.body.dataset.loaded = String(Date.now());
  }

  async function deptAct(a, path) {
    const label = `${a.matter_name} · ${a.grid} (${a.alert_id})`;
    const json = {};
    if (!board.dept.person) {   // the department's own token: say who acts
      const who = window.prompt(`Who of ${board.dept.name} acts? (their id in roster.yaml)`,
                                board.dept.on_duty || "");
      if (who === null) return;
      json.person = who.trim();
    }
    const row = document.querySelector(`#dept-alerts tr[data-alert="${a.alert_id}"]`);
    if (row) for (const b of row.querySelectorAll("button")) b.disabled = true;
    try {
      const done = await api(`v1/department/alerts/${encodeURIComponent(a.alert_id)}/${path}`,
                             { method: "POST", json });
      const c = done.alert.department_calls.find((x) => x.department === board.dept.department);
      notice(`${label}: ${path} recorded — ${c ? STAGE_LABEL[c.stage] : ""}`, "ok");
    } catch (err) {
      const [status, why] = refusal(err);
      notice(`${label}: ${path} refused (${status}): ${why}`, "error");
    }
    await refreshDept();
  }

  async function act(alert, action) {
    let json;
    if (action === "escalate") {
      const reason = window.prompt(`Call ${alertLabel(alert)} upward (吹哨): why?`);
      if (reason === null) return;
      json = { reason };
    } else if (action === "false_alarm") {
      if (!window.confirm(`Close ${alertLabel(alert)} as a false alarm?`)) return;
    } else if (action === "reject") {
      const reason = window.prompt(`Reject closing ${alertLabel(alert)} ` +
                                   `(asked by ${nameOf(alert.pending_by)}): why?`);
      if (reason === null || !reason.trim()) return;
      json = { reason: reason.trim() };
    } else if (action === "approve") {
      json = {};
    }
    const row = document.querySelector(`#alerts tr[data-alert="${alert.alert_id}"]`);
    if (row) for (const b of row.querySelectorAll("button")) b.disabled = true;
    try {
      const done = await api(`v1/alerts/${encodeURIComponent(alert.alert_id)}/${ACTION_PATH[action]}`,
                             { method: "POST", json });
      notice(`${alertLabel(alert)}: ${action.replace("_", " ")} recorded — now ` +
             `${done.alert.state.replace("_", " ")}, held by ${nameOf(done.alert.unit)}`, "ok");
    } catch (err) {
      const status = err instanceof ApiRefusal ? err.status : "network";
      const why = err instanceof ApiRefusal ? err.detail : String(err);
      notice(`${alertLabel(alert)}: ${action.replace("_", " ")} refused (${status}): ${why}`,
             "error");
    }
    await refresh();
  }

  // ------------------------------------------------------------------ silences

  // GET v1/silences?current=true lists those pending or active that may hold in the
  // subtree; POST v1/silences sets one (the desk's clock starts it now), POST
  // v1/silences/{id}/lift ends it. A silence is no alert step, so the event stream does
  // not announce it: the list is fetched with the state, and after the page's own calls.
  const SCOPE_LABEL = { agent: "edge agent", sensor: "sensor", grid: "grid", matter: "matter" };

  function scopeChoices(scope) {
    const m = board.map;
    const both = (id, name) => [id, name && name !== id ? `${name} (${id})` : id];
    if (scope === "sensor") return m.sensors.map((s) => both(s.id, s.name));
    if (scope === "grid") {
      return m.areas.filter((a) => a.level === "grid").map((a) => [a.id, a.name]);
    }
    const named = scope === "agent" ? m.agents : m.matters;
    return Object.entries(named).map(([id, name]) => both(id, name));
  }

  function fillSilenceIds(selected) {
    const ids = $("#silence-id");
    ids.replaceChildren(...scopeChoices($("#silence-scope").value)
      .map(([id, text]) => el("option", { value: id, text })));
    if (selected) ids.value = selected;
  }

  function prefillSilence(scope, id) {
    $("#silence-scope").value = scope;
    fillSilenceIds(id);
    $("#silences-panel").scrollIntoView({ block: "nearest" });
    $("#silence-reason").focus();
  }

  // What a silence holds back, by name: "sensor 东苑社区第1网格PM2.5 (dongyuan-g1-pm25-1)".
  function silenceWhat(s) {
    const m = board.map;
    let name = nameOf(s.id);
    if (s.scope === "sensor") name = (m.sensors.find((x) => x.id === s.id) || { name: s.id }).name;
    else if (s.scope === "agent") name = m.agents[s.id] || s.id;
    else if (s.scope === "matter") name = m.matters[s.id] || s.id;
    return `${SCOPE_LABEL[s.scope] || s.scope} ${name}${name !== s.id ? ` (${s.id})` : ""}`;
  }

  // A unit may lift a silence set in its subtree (its own or a lower unit's).
  const liftable = (s) => board.me.path.every((id, i) => s.within[i] === id);

  async function refreshSilences() {
    let data;
    try {
      data = await api("v1/silences?current=true");
    } catch (err) {
      return;   // the state's own refresh says what is wrong with the hub
    }
    board.silences = data.silences;
    const list = $("#silences");
    list.replaceChildren(...data.silences.map((s) => {
      const by = s.author_person ? `${nameOf(s.author_person)} (${nameOf(s.author)})`
        : nameOf(s.author);
      const when = s.status === "pending" ? `from ${fmtNear(s.start)} until ${fmtNear(s.end)}`
        : `until ${fmtNear(s.end)}`;
      return el("li", { "data-silence": s.silence_id, "data-status": s.status },
        el("span", { class: `pill ${s.status}`, text: s.status }),
        ` ${s.silence_id} · ${silenceWhat(s)} · ${when} · ${s.reason} · by ${by}` +
        (s.muted ? ` · ${s.muted} held back` : "") + " ",
        liftable(s) ? el("button", { type: "button", class: "act lift", "data-action": "lift",
                                     text: "lift 解除", onclick: () => liftSilence(s) }) : null);
    }));
    if (!data.silences.length) list.append(el("li", { class: "none", text: "none" }));
    markSilenced();
  }

  // Grids and sensors under an active silence are drawn faded on the map.
  function markSilenced() {
    const active = board.silences.filter((s) => s.status === "active");
    const held = (scope) => new Set(active.filter((s) => s.scope === scope).map((s) => s.id));
    const grids = held("grid"), sensors = held("sensor");
    for (const p of document.querySelectorAll("#map .grid")) {
      p.classList.toggle("silenced", grids.has(p.dataset.grid));
    }
    for (const d of document.querySelectorAll("#map .sensor")) {
      d.classList.toggle("silenced", sensors.has(d.dataset.sensor));
    }
  }

  const refusal = (err) => err instanceof ApiRefusal ? [err.status, err.detail]
    : ["network", String(err)];

  async function addSilence(ev) {
    ev.preventDefault();
    const body = { scope: $("#silence-scope").value, id: $("#silence-id").value,
                   reason: $("#silence-reason").value.trim(),
                   duration_s: Number($("#silence-duration").value) };
    // a planned window starts later (the browser's local time); empty: now, on the desk
    const from = $("#silence-start").value;
    if (from) body.start = Date.parse(from) * NS_PER_MS;
    const button = $("#silence-form button");
    button.disabled = true;
    try {
      const s = await api("v1/silences", { method: "POST", json: body });
      notice(`${s.silence_id}: ${silenceWhat(s)} silenced until ${fmtNear(s.end)} — its ` +
             "anomalies are kept but open no alert", "ok");
      $("#silence-reason").value = "";
      $("#silence-start").value = "";
    } catch (err) {
      const [status, why] = refusal(err);
      notice(`Silencing ${silenceWhat(body)} refused (${status}): ${why}`, "error");
    } finally {
      button.disabled = false;
    }
    await refreshSilences();
  }

  async function liftSilence(s) {
    if (!window.confirm(`Lift ${s.silence_id} (${silenceWhat(s)})? Deadlines it held fall ` +
                        "due at once.")) return;
    try {
      await api(`v1/silences/${encodeURIComponent(s.silence_id)}/lift`,
                { method: "POST", json: {} });
      notice(`${s.silence_id}: ${silenceWhat(s)} lifted — it raises alerts again`, "ok");
    } catch (err) {
      const [status, why] = refusal(err);
      notice(`${s.silence_id}: lift refused (${status}): ${why}`, "error");
    }
    await refresh();
  }

  // ------------------------------------------------------------------ incidents

  // GET v1/incidents?open=true: incidents with an alert open in the subtree; one of them
  // is shown in full (GET v1/incidents/{id}: its alerts here and its steps), its alerts
  // marked in the table. An incident forms when an alert opens, which is an alert step,
  // so the event stream's refresh brings it.
  const matterName = (code) => board.map.matters[code] || code;

  async function refreshIncidents() {
    let data;
    try {
      data = await api("v1/incidents?open=true");
    } catch (err) {
      return;
    }
    const list = $("#incidents");
    list.replaceChildren(...data.incidents.map((i) => el("li", {
      "data-incident": i.incident_id, class: i.incident_id === board.incident ? "selected" : null },
      el("button", { type: "button", class: "link", text: i.incident_id,
                     onclick: () => showIncident(i.incident_id) }),
      ` ${matterName(i.matter)} · ${i.alerts.length} alerts in ${i.grids.map(nameOf).join(", ")}` +
      ` · lead 牵头 ${nameOf(i.lead)} · first received by ${nameOf(i.first)} · since `,
      el("time", { text: fmtTime(i.opened_at) }))));
    if (!data.incidents.length) list.append(el("li", { class: "none", text: "none open" }));
    if (board.incident) await showIncident(board.incident, false);
  }

  async function showIncident(id, scroll = true) {
    let data;
    try {
      data = await api(`v1/incidents/${encodeURIComponent(id)}`);
    } catch (err) {
      const [status, why] = refusal(err);
      notice(`${id}: refused (${status}): ${why}`, "error");
      return;
    }
    const i = data.incident;
    board.incident = id;
    board.incidentAlerts = new Set(i.open ? i.alerts : []);
    const box = $("#incident");
    box.dataset.incident = id;
    box.replaceChildren(
      el("h3", { text: `${id} · ${matterName(i.matter)} · ${i.open ? "open" : "closed"}` }),
      el("p", { class: "lead", text: `lead 牵头 ${nameOf(i.lead)} (${i.lead_level}) · first ` +
                `received by ${nameOf(i.first)} · grids ${i.grids.map(nameOf).join(", ")}` }),
      el("table", {},
        el("thead", {}, el("tr", {}, ...["alert", "tier", "state", "held by", "grid"]
          .map((h) => el("th", { text: h })))),
        el("tbody", {}, ...data.alerts.map((a) => el("tr", { "data-alert": a.alert_id },
          el("td", { text: a.alert_id }),
          el("td", {}, el("span", { class: `tier risk-${RISK[a.tier]}`, text: a.tier })),
          el("td", { class: "state", text: a.state.replace("_", " ") }),
          el("td", { text: nameOf(a.unit) }),
          el("td", { text: nameOf(a.grid) }))))),
      el("ol", { class: "steps" }, ...data.history.map((s) => el("li", {},
        el("time", { text: fmtTime(s.at) }),
        ` ${s.action} ${s.alerts.join(", ")} · lead ${nameOf(s.lead)} · ${s.reason}`))),
      el("button", { type: "button", class: "act", text: "close", onclick: () => {
        board.incident = null;
        board.incidentAlerts = new Set();
        box.hidden = true;
        markIncident();
      } }));
    box.hidden = false;
    markIncident();
    if (scroll) box.scrollIntoView({ block: "nearest" });
  }

  function markIncident() {
    for (const li of document.querySelectorAll("#incidents li[data-incident]")) {
      li.classList.toggle("selected", li.dataset.incident === board.incident);
    }
    for (const row of document.querySelectorAll("#alerts tbody tr")) {
      row.classList.toggle("in-incident", board.incidentAlerts.has(row.dataset.alert));
    }
  }

  // ------------------------------------------------------------------ plans

  // An alert's plan (一事一预案) as a checklist: GET v1/alerts/{id} (the board's state
  // leaves plans out), each step ticked off with POST v1/alerts/{id}/plan/{step}, a
  // ledger step: the event stream's refresh shows it, here and on every other board.
  const LEVEL_NAME = { grid: "grid 网格", community: "community 社区", town: "town 镇街",
                       district: "district 区", responsible: "the unit holding it" };
  const roleName = (role) => LEVEL_NAME[role] || nameOf(role);

  async function showPlan(id, scroll = true) {
    let data;
    try {
      data = await api(`v1/alerts/${encodeURIComponent(id)}`);
    } catch (err) {
      const [status, why] = refusal(err);
      notice(`${id}: refused (${status}): ${why}`, "error");
      return;
    }
    const a = data.alert, p = a.plan || { steps: [], dispatch: [], resources: [], contacts: [] };
    const open = !["resolved", "false_alarm"].includes(a.state);
    const done = new Map(a.plan_done.map((d) => [d.step, d]));
    board.plan = id;
    const box = $("#plan");
    box.dataset.alert = id;
    const whoDid = (d) => (d.person ? `${nameOf(d.person)} (${nameOf(d.by)})` : nameOf(d.by));
    box.replaceChildren(...[
      el("h3", { text: `Plan 预案 · ${a.matter_name} · ${id} · ${done.size}/${p.steps.length} done` }),
      p.summary ? el("p", { class: "summary", text: p.summary }) : null,
      el("ol", { class: "checklist" }, ...p.steps.map((s, i) => {
        const d = done.get(s.id);
        const box_ = el("input", { type: "checkbox", id: `plan-${s.id}`, "data-step": s.id,
                                   checked: Boolean(d), disabled: Boolean(d) || !open });
        box_.addEventListener("change", () => tickStep(a, s, box_));
        return el("li", { "data-step": s.id, class: d ? "done" : null },
          box_, el("label", { for: `plan-${s.id}`, text: ` ${i + 1}. ${s.text}` }),
          el("small", { class: "role", text: roleName(s.role) }),
          d ? el("small", { class: "ticked", text: `✓ ${whoDid(d)} · ${fmtTime(d.at)}` }) : null);
      })),
      p.dispatch.length ? el("p", { class: "dispatch", text: "called in at tier B/A 自动派遣: " +
        p.dispatch.map((x) => `${nameOf(x.department)} (${Object.entries(x.when)
          .map(([t, c]) => `${t}: ${c}`).join(", ")})`).join("; ") }) : null,
      p.resources.length ? el("p", { class: "resources", text: "resources 物资: " +
        p.resources.map((r) => r.note ? `${r.name} (${r.note})` : r.name).join("; ") }) : null,
      p.contacts.length ? el("ul", { class: "contacts" }, ...p.contacts.map((c) => el("li", {
        text: [c.name, c.phone, c.department && nameOf(c.department) !== c.name
          ? nameOf(c.department) : "", c.note].filter(Boolean).join(" · ") }))) : null,
      el("button", { type: "button", class: "act", text: "close", onclick: () => {
        board.plan = null;
        box.hidden = true;
      } })].filter(Boolean));
    box.hidden = false;
    if (scroll) box.scrollIntoView({ block: "nearest" });
  }

  async function tickStep(alert, step, input) {
    input.disabled = true;
    try {
      await api(`v1/alerts/${encodeURIComponent(alert.alert_id)}/plan/${encodeURIComponent(step.id)}`,
                { method: "POST", json: {} });
      notice(`${alert.alert_id}: plan step “${step.text}” ticked off`, "ok");
    } catch (err) {
      const [status, why] = refusal(err);
      notice(`${alert.alert_id}: ticking “${step.text}” refused (${status}): ${why}`, "error");
    }
    await showPlan(alert.alert_id, false);
    await refresh();
  }

  // ------------------------------------------------------------------ who is on duty

  // GET v1/handover: who is on duty at the board's unit now and next (roster.yaml), its
  // duty leader, and how many of its open alerts fall due on the incoming watch.
  async function refreshDuty() {
    let h;
    try {
      h = await api("v1/handover");
    } catch (err) {
      return;
    }
    const who = (p) => el("span", { class: "person", "data-person": p.id, text: p.name });
    const kids = [];
    if (h.on_duty) {
      kids.push(who(h.on_duty.person), ` until ${fmtNear(h.on_duty.end)}` +
                (h.on_duty.override ? " (override)" : ""));
    } else {
      kids.push(el("span", { class: "none", text: "nobody on duty" }),
                " (new alerts go to the unit's channels)");
    }
    if (h.next) kids.push(" · next ", who(h.next.person), ` from ${fmtNear(h.next.start)}`);
    if (h.leader) kids.push(" · duty leader 值班领导 ", who(h.leader));
    const due = h.alerts.filter((a) => a.in_shift).length;
    kids.push(` · hand-over: ${h.alerts.length} open, ${due} due on the incoming watch`);
    $("#duty").replaceChildren(...kids);
    $("#duty-panel").hidden = false;
    board.handedTo = new Map(h.alerts.filter((a) => a.on_duty).map((a) => [a.alert_id, a.on_duty]));
  }

  // Under the unit holding each alert: the person on duty it was handed to (roster.yaml).
  function markHandedTo() {
    for (const row of document.querySelectorAll("#alerts tbody tr")) {
      const cell = row.querySelector("td.unit");
      const person = board.handedTo.get(row.dataset.alert);
      let line = cell.querySelector("small.handed");
      if (!person) { if (line) line.remove(); continue; }
      if (!line) line = cell.appendChild(el("small", { class: "handed" }));
      line.dataset.person = person;
      line.textContent = `→ ${nameOf(person)}`;
      line.title = "the person on duty it was handed to";
    }
  }

  // ------------------------------------------------------------------ edge agents

  // GET v1/agents (the hub's roster): 503 when the API runs without one, then the panel
  // stays hidden. Agents going down or coming back are desk steps (EDGE-OFFLINE), so the
  // change events refresh this; a sensor's health alone is seen at the next poll.
  async function refreshAgents() {
    if (board.noRoster) return;
    let data;
    try {
      data = await api("v1/agents");
    } catch (err) {
      if (err instanceof ApiRefusal && err.status === 503) board.noRoster = true;
      return;
    }
    const health = new Map();
    const list = $("#agents");
    list.replaceChildren(...data.agents.map((a) => {
      const bad = a.sensors.filter((s) => unwell(s.health));
      for (const s of a.sensors) health.set(s.sensor, s.health);
      const seen = a.last_seen_s === null ? "never heard" : `heard ${fmtLeft(a.last_seen_s)} ago`;
      return el("li", { "data-agent": a.agent, "data-state": a.state },
        el("span", { class: `agent-state ${a.state}`, text: a.state }),
        ` ${a.name || a.agent} (${a.agent}) · ${seen}` +
        (a.outbox_depth ? ` · outbox ${a.outbox_depth}` : "") +
        (bad.length ? ` · ${bad.map((s) => `${s.sensor} ${s.health}`).join(", ")}` : ""));
    }));
    $("#agents-panel").hidden = false;
    for (const dot of document.querySelectorAll("#map .sensor")) {
      const h = health.get(dot.dataset.sensor) || "unknown";
      dot.dataset.health = h;
      dot.classList.toggle("unhealthy", unwell(h));
      sizeDot(dot);
    }
  }

  // ------------------------------------------------------------------ state

  async function refresh() {
    try {
      const state = await api("v1/board/state");
      board.state = state;
      sampleClock(state.now);
      paintMap(state);
      renderAlerts(state);
      renderDepartments(state);
      await Promise.all([refreshAgents(), refreshSilences(), refreshIncidents(), refreshDuty(),
                         board.plan ? showPlan(board.plan, false) : null]);
      markIncident();
      markHandedTo();
      document.body.dataset.loaded = String(Date.now());
      syncProblem("");
    } catch (err) {
      if (err instanceof ApiRefusal) syncProblem(`the hub refused the board's state (${err.status}): ${err.detail}`);
      else { syncProblem("the hub cannot be reached; retrying"); setLive(false, "hub unreachable"); }
    }
  }

  function refreshSoon() {
    if (board.refreshTimer) return;
    board.refreshTimer = setTimeout(() => { board.refreshTimer = null; refresh(); }, 150);
  }

  function logStep(change) {
    const s = change.step, a = change.alert;
    const who = s.actor === "hub" ? "hub"
      : s.person ? `${nameOf(s.person)} (${nameOf(s.actor)})` : nameOf(s.actor);
    const item = el("li", { "data-alert": a.alert_id },
      el("time", { text: fmtTime(s.at).slice(11) }),
      ` ${a.alert_id} ${s.action.replace("_", " ")} by ${who} → ${s.state.replace("_", " ")}, ` +
      `tier ${s.tier}, ${a.unit_name} · ${a.matter_name} · ${a.grid_name}`);
    const list = $("#activity");
    list.prepend(item);
    while (list.children.length > 50) list.lastChild.remove();
  }

  // ------------------------------------------------------------------ live

  function setLive(on, why) {
    board.live = on;
    const badge = $("#live");
    badge.className = `live ${on ? "on" : "off"}`;
    badge.textContent = on ? "live" : `${why || "reconnecting"} · polling`;
  }

  function handleEvent(event, data) {
    let payload = null;
    try { payload = data ? JSON.parse(data) : null; } catch (e) { return; }
    if (payload && typeof payload.now === "number") sampleClock(payload.now);
    if (event === "hello") {
      board.attempts = 0;
      setLive(true);
      refresh();   // whatever happened while we were not connected
    } else if (event === "change") {
      logStep(payload);
      refreshSoon();
    } else if (event === "resync") {
      refreshSoon();
    }
  }

  async function readStream() {
    const ctrl = new AbortController();
    board.stream = ctrl;
    board.lastByte = performance.now();
    const resp = await fetch("v1/board/events", {
      headers: { Authorization: `Bearer ${board.token}`, Accept: "text/event-stream" },
      cache: "no-store", signal: ctrl.signal,
    });
    if (!resp.ok) {
      let data = null;
      try { data = await resp.json(); } catch (e) { data = null; }
      throw new ApiRefusal(resp.status, detailOf(data, resp.statusText));
    }
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      board.lastByte = performance.now();
      buf += value.replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        let event = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (!line || line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let val = colon < 0 ? "" : line.slice(colon + 1);
          if (val.startsWith(" ")) val = val.slice(1);
          if (field === "event") event = val;
          else if (field === "data") data.push(val);
        }
        handleEvent(event, data.join("\n"));
      }
    }
  }

  async function follow() {
    for (;;) {
      try {
        await readStream();
        setLive(false, "stream ended");
      } catch (err) {
        if (err instanceof ApiRefusal) {
          setLive(false, `refused ${err.status}`);
          syncProblem(`live updates refused (${err.status}): ${err.detail}`);
        } else {
          setLive(false, "disconnected");
        }
      }
      board.attempts += 1;
      const wait = Math.min(15000, 500 * 2 ** Math.min(board.attempts, 5));
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  // ------------------------------------------------------------------ start

  function showSignin(message) {
    $("#signin").hidden = false;
    $("#board").hidden = true;
    $("#dept-board").hidden = true;
    $("#signout").hidden = true;
    $("#live").hidden = true;
    $("#signin-error").textContent = message || "";
    $("#token").focus();
  }

  async function start() {
    try {
      board.me = await api("v1/me");
    } catch (err) {
      if (err instanceof ApiRefusal && err.status === 401 && err.detail.includes("department")) {
        try {
          await startDepartment();
        } catch (deptErr) {
          showSignin(`Cannot open the department's board: ${deptErr.message || deptErr}`);
        }
        return;
      }
      if (err instanceof ApiRefusal && err.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        board.token = null;
        showSignin(`The hub refused the token: ${err.detail}`);
      } else {
        showSignin(`Cannot reach the hub: ${err.message || err}`);
      }
      return;
    }
    $("#signin").hidden = true;
    $("#board").hidden = false;
    $("#signout").hidden = false;
    $("#live").hidden = false;
    $("#unit-name").textContent = `· ${board.me.name} (${board.me.level} ${board.me.unit})`;
    document.title = `gridcall · ${board.me.name}`;
    board.map = await api("v1/board/map");
    fillZoom(board.map);
    fillSilenceIds();
    drawMap(board.map);
    new ResizeObserver(fitLabels).observe($("#map"));
    await refresh();
    setInterval(tickCountdowns, 1000);
    setInterval(() => {
      if (board.live && performance.now() - board.lastByte > STALE_MS && board.stream) {
        board.stream.abort();   // silent for too long: reconnect
      }
    }, 2000);
    let lastPoll = performance.now();
    setInterval(() => {
      const every = board.live ? POLL_LIVE_MS : POLL_DOWN_MS;
      if (performance.now() - lastPoll >= every) { lastPoll = performance.now(); refresh(); }
    }, 1000);
    follow();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("#token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const token = $("#token").value.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      board.token = token;
      $("#token").value = "";
      start();
    });
    $("#silence-scope").addEventListener("change", () => fillSilenceIds());
    $("#silence-form").addEventListener("submit", addSilence);
    $("#signout").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      window.location.reload();
    });
    // `gridcall demo` prints /board#token=…: a fragment is never sent to a server, and
    // it is taken out of the address bar (and history) at once.
    const fromLink = new URLSearchParams(window.location.hash.slice(1)).get("token");
    if (fromLink) {
      sessionStorage.setItem(TOKEN_KEY, fromLink);
      history.replaceState(null, "", window.location.pathname + window.location.search);
    }
    board.token = sessionStorage.getItem(TOKEN_KEY);
    if (board.token) start();
    else showSignin("");
  });
})();

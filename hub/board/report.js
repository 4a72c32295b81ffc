// The board's report form (issue 18: calls from people), beside board.js, which signs in
// and exposes its state as window.gridcallBoard (the token, the unit's map and matters, the
// fetch helper api); index.html loads it after board.js (deferred scripts run in order).
//   POST v1/reports                 file a report: matter, grid or GPS point, description,
//                                   0-5 photos (JPEG/PNG, sent in base64; the hub checks
//                                   what they are)
//   GET  v1/reports                 the reports this token filed, to follow them
//   POST v1/reports/{id}/rating     rate one once its alert is closed
"use strict";

(() => {
  const MAX_PHOTOS = 5;
  const RATINGS = [["satisfied", "满意 satisfied"], ["basically_satisfied", "基本满意 basically"],
                   ["dissatisfied", "不满意 dissatisfied"]];
  const JOINED = { open: "opened", evidence: "joined as evidence", reopen: "reopened" };
  const $ = (sel) => document.querySelector(sel);
  const board = () => window.gridcallBoard || {};

  // board.js's fetch helper: the token, JSON in and out, a refusal thrown as "status: detail".
  const call = (path, options) => board().api(path, options);

  function say(text, kind) {
    const out = $("#report-result");
    out.textContent = text;
    out.className = kind;
    out.hidden = false;
  }

  // The matters of the catalog and the grids of the unit's subtree, from the board's map.
  function fillChoices() {
    const map = board().map;
    if (!map) return false;
    const matter = $("#report-matter");
    const grid = $("#report-grid");
    if (matter.options.length <= 1) {
      for (const [code, name] of Object.entries(map.matters || {})) {
        if (code === "UNCLASSIFIED") continue;
        matter.append(new Option(`${name} (${code})`, code));
      }
    }
    if (grid.options.length <= 1) {
      for (const area of map.areas.filter((a) => a.level === "grid")) {
        grid.append(new Option(`${area.name} (${area.id})`, area.id));
      }
      if (grid.options.length === 2) grid.selectedIndex = 1;
    }
    return true;
  }

  function asBase64(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(file);
    });
  }

  async function fileReport(ev) {
    ev.preventDefault();
    const files = Array.from($("#report-photos").files || []);
    if (files.length > MAX_PHOTOS) {
      say(`At most ${MAX_PHOTOS} photos, not ${files.length}`, "error");
      return;
    }
    const body = { matter: $("#report-matter").value,
                   description: $("#report-description").value.trim() };
    const lon = $("#report-lon").value, lat = $("#report-lat").value;
    if (lon !== "" && lat !== "") body.point = [Number(lon), Number(lat)];
    if ($("#report-grid").value) body.grid = $("#report-grid").value;
    const button = $("#report-form button[type=submit]");
    button.disabled = true;
    try {
      body.photos = await Promise.all(files.map(async (f) => ({ data: await asBase64(f) })));
      const r = await call("v1/reports", { method: "POST", json: body });
      say(`${r.report_id}: ${JOINED[r.joined] || r.joined} ${r.alert_id}` +
          (r.photos.length ? ` with ${r.photos.length} photo(s)` : ""), "ok");
      $("#report-description").value = "";
      $("#report-photos").value = "";
      await listReports();
    } catch (err) {
      say(`Report refused (${err.message})`, "error");
    } finally {
      button.disabled = false;
    }
  }

  async function rate(report, rating) {
    try {
      await call(`v1/reports/${report.report_id}/rating`, { method: "POST",
                                                            json: { rating } });
      say(`${report.report_id}: rated ${rating}`, "ok");
    } catch (err) {
      say(`Rating ${report.report_id} refused (${err.message})`, "error");
    }
    await listReports();
  }

  async function listReports() {
    const list = $("#my-reports");
    let data;
    try {
      data = await call("v1/reports");
    } catch (err) {
      return;
    }
    list.replaceChildren();
    for (const r of data.reports.slice().reverse()) {
      const item = document.createElement("li");
      item.dataset.report = r.report_id;
      item.dataset.state = r.state || "";
      item.textContent = `${r.report_id} · ${r.matter} · ${r.grid} · ${r.alert_id} ` +
        `${r.state || "…"}${r.rating ? ` · rated ${r.rating}` : ""} — ${r.description}`;
      if (r.rateable) {
        for (const [value, label] of RATINGS) {
          const b = document.createElement("button");
          b.type = "button";
          b.dataset.rating = value;
          b.textContent = label;
          b.addEventListener("click", () => rate(r, value));
          item.append(" ", b);
        }
      }
      list.append(item);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const panel = $("#report-panel");
    if (!panel) return;
    panel.addEventListener("toggle", () => {
      if (panel.open) { fillChoices(); listReports(); }
    });
    $("#report-form").addEventListener("submit", fileReport);
    $("#report-refresh").addEventListener("click", listReports);
  });
})();

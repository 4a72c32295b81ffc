// The board's closure control and audit queue (issue 18 item 5), beside board.js, which
// signs in and exposes its state as window.gridcallBoard (the token, the unit, the fetch
// helper api); index.html loads it after board.js (deferred scripts run in order).
//   GET  v1/approvals               closes of tier-A/B alerts awaiting approval in the
//                                   unit's subtree, with whether this unit may decide
//   POST v1/alerts/{id}/approve     approve one (the unit's own resolve or false alarm)
//   POST v1/alerts/{id}/reject      reject one, with a reason
//   GET  v1/audits                  closings drawn for audit, with whether it may audit
//   POST v1/alerts/{id}/audit       pass, or fail with a note (the alert reopens)
// It refreshes whenever the board does (board.js marks <body data-loaded> each time).
"use strict";

(() => {
  const $ = (sel) => document.querySelector(sel);
  const board = () => window.gridcallBoard || {};
  const CLOSE = { resolve: "resolved", false_alarm: "a false alarm" };

  // board.js's fetch helper: the token, JSON in and out, a refusal thrown as "status: detail".
  const call = (path, options) => board().api(path, options);

  function say(text, kind) {
    const out = $("#audits-result");
    out.textContent = text;
    out.className = kind;
    out.hidden = false;
  }

  const label = (a) => `${a.alert_id} · [${a.tier}] ${a.matter_name} · ${a.grid}`;

  function button(text, action, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.do = action;
    b.textContent = text;
    b.addEventListener("click", onClick);
    return b;
  }

  async function decide(item, action) {
    const a = item.alert;
    const json = {};
    if (action === "reject") {
      const reason = window.prompt(`Reject closing ${label(a)}: why?`);
      if (!reason || !reason.trim()) return;
      json.reason = reason.trim();
    }
    try {
      await call(`v1/alerts/${a.alert_id}/${action}`, { method: "POST", json });
      say(`${a.alert_id}: ${action === "approve" ? "close approved" : "close rejected"}`, "ok");
    } catch (err) {
      say(`${action} ${a.alert_id} refused (${err.message})`, "error");
    }
    await refresh();
  }

  async function audit(item, verdict) {
    const a = item.alert;
    const json = { verdict };
    if (verdict === "fail") {
      const note = window.prompt(`Fail the audit of ${label(a)}: what was found? ` +
                                 "(the alert reopens with it)");
      if (!note || !note.trim()) return;
      json.note = note.trim();
    }
    try {
      await call(`v1/alerts/${a.alert_id}/audit`, { method: "POST", json });
      say(`${a.alert_id}: audit ${verdict === "pass" ? "passed" : "failed, reopened"}`, "ok");
    } catch (err) {
      say(`audit of ${a.alert_id} refused (${err.message})`, "error");
    }
    await refresh();
  }

  function renderApprovals(data) {
    const list = $("#approvals");
    list.replaceChildren();
    $("#approvals-count").textContent = `(${data.count})`;
    for (const p of data.pending) {
      const li = document.createElement("li");
      li.dataset.alert = p.alert.alert_id;
      li.textContent = `${label(p.alert)}: ${p.requested_by} asks it be closed as ` +
        `${CLOSE[p.requested] || p.requested}; the ${p.approver_level} approves`;
      if (p.may_approve) {
        li.append(button("approve 批准", "approve", () => decide(p, "approve")),
                  button("reject 退回", "reject", () => decide(p, "reject")));
      }
      list.append(li);
    }
  }

  function renderQueue(data) {
    const list = $("#audit-queue");
    list.replaceChildren();
    $("#audit-count").textContent = `(${data.count})`;
    $("#audit-rate").textContent = data.audit_pass_rate === null ? "" :
      `稽查合格率 ${Math.round(data.audit_pass_rate * 100)}% of the closings audited`;
    for (const q of data.items) {
      const li = document.createElement("li");
      li.dataset.alert = q.alert.alert_id;
      li.textContent = `${label(q.alert)}: ${CLOSE[q.closed_as === "resolved" ? "resolve" :
        "false_alarm"]} by ${q.closed_by}`;
      if (data.may_audit) {
        li.append(button("pass 合格", "pass", () => audit(q, "pass")),
                  button("fail 不合格", "fail", () => audit(q, "fail")));
      }
      list.append(li);
    }
  }

  let busy = false;
  async function refresh() {
    if (busy || !board().token || !board().me || $("#audits-panel") === null) return;
    busy = true;
    try {
      const [pending, queue] = await Promise.all([call("v1/approvals"), call("v1/audits")]);
      renderApprovals(pending);
      renderQueue(queue);
      document.body.dataset.auditsLoaded = String(Date.now());
    } catch (err) {
      // the board itself says when the hub cannot be reached
    } finally {
      busy = false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (!$("#audits-panel")) return;
    new MutationObserver(() => refresh()).observe(document.body, {
      attributes: true, attributeFilter: ["data-loaded"] });
  });
})();

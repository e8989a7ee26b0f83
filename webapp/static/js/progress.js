// Progress of a long operation: polls the task's JSON status every second and updates
// the page until the task has finished or failed. No inline script (strict CSP).
(function () {
  "use strict";

  var FINISHED = { done: true, failed: true };

  function text(id, value) {
    var node = document.getElementById(id);
    if (node) { node.textContent = value; }
    return node;
  }

  function show(id, visible) {
    var node = document.getElementById(id);
    if (node) { node.hidden = !visible; }
    return node;
  }

  function render(box, status) {
    box.setAttribute("data-state", status.state);
    var state = text("task-state", status.state_label);
    if (state) { state.className = "task-state state-" + status.state; }
    var bar = document.getElementById("task-bar");
    if (bar) { bar.value = status.percent; bar.textContent = status.percent_label; }
    text("task-percent", status.percent_label);
    var count = document.getElementById("task-count");
    if (count && status.total !== null) {
      count.textContent = (count.getAttribute("data-template") || "{done} / {total}")
        .replace("{done}", status.done_label).replace("{total}", status.total_label);
      count.hidden = false;
    }
    text("task-message", status.message);
    if (status.failure_message) {
      text("task-failure", status.failure_message);
      show("task-failure", true);
    }
    if (status.result_url) {
      var link = document.getElementById("task-result-link");
      if (link) { link.href = status.result_url; }
      show("task-result", true);
    }
  }

  function start() {
    var box = document.getElementById("task");
    if (!box) { return; }
    var url = box.getAttribute("data-status-url");
    if (!url || FINISHED[box.getAttribute("data-state")]) { return; }
    var failures = 0;

    function poll() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (response) {
          if (!response.ok) { throw new Error("status " + response.status); }
          return response.json();
        })
        .then(function (status) {
          failures = 0;
          render(box, status);
          if (!status.finished) { window.setTimeout(poll, 1000); }
        })
        .catch(function () {
          failures += 1;
          if (failures < 30) { window.setTimeout(poll, 2000); }
        });
    }

    window.setTimeout(poll, 1000);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());

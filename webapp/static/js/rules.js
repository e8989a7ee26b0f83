// The rule editor: when the checker refused the condition, put the cursor at the
// position it named, so the officer edits where the error is. No inline script.
(function () {
  "use strict";

  function offsetOf(source, line, column) {
    var lines = source.split("\n");
    var offset = 0;
    for (var i = 0; i < line - 1 && i < lines.length; i += 1) {
      offset += lines[i].length + 1;
    }
    return Math.min(source.length, offset + Math.max(0, column - 1));
  }

  function start() {
    var field = document.getElementById("condition");
    if (!field) { return; }
    var line = parseInt(field.getAttribute("data-error-line"), 10);
    var column = parseInt(field.getAttribute("data-error-column"), 10);
    if (!line || !column) { return; }
    var at = offsetOf(field.value, line, column);
    field.focus();
    field.setSelectionRange(at, Math.min(field.value.length, at + 1));
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());

// stvg report: sortable tables and run toggles. No network, no libraries.
(function () {
  "use strict";

  // Sort a table's body rows by one column. Cells carry their sort key in data-value
  // (numbers as plain decimals, "" for none); rows without a value go last either way, and
  // ties keep the annotation order (the first column's value).
  function sortKey(row, col, numeric) {
    var cell = row.cells[col];
    var raw = cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent;
    if (!numeric) return raw.toLowerCase();
    return raw === "" ? null : parseFloat(raw);
  }

  function compare(a, b, numeric) {
    if (a === b) return 0;
    if (numeric) return a - b;
    return a.localeCompare(b, undefined, { numeric: true });
  }

  function sortBy(table, th, status) {
    var col = parseInt(th.getAttribute("data-col"), 10);
    var numeric = th.getAttribute("data-type") === "num";
    var direction = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    var sign = direction === "ascending" ? 1 : -1;
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var keyed = rows.map(function (row) {
      return { row: row, key: sortKey(row, col, numeric), order: parseInt(row.getAttribute("data-order"), 10) };
    });
    keyed.sort(function (a, b) {
      if (a.key === null || b.key === null) {
        if (a.key === null && b.key === null) return a.order - b.order;
        return a.key === null ? 1 : -1;
      }
      return sign * compare(a.key, b.key, numeric) || a.order - b.order;
    });
    var headers = table.querySelectorAll("th[data-col]");
    for (var i = 0; i < headers.length; i++) headers[i].setAttribute("aria-sort", "none");
    th.setAttribute("aria-sort", direction);
    var fragment = document.createDocumentFragment();
    keyed.forEach(function (k) { fragment.appendChild(k.row); });
    body.appendChild(fragment);
    if (status) status.textContent = "Sorted by " + th.getAttribute("data-label") + ", " + direction + ".";
  }

  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    var status = document.getElementById(table.getAttribute("data-status"));
    var buttons = table.querySelectorAll("th[data-col] > button");
    Array.prototype.forEach.call(buttons, function (button) {
      button.addEventListener("click", function () { sortBy(table, button.parentNode, status); });
    });
  });

  // Show or hide one run's boxes, spans and per-frame IoUs everywhere.
  var toggles = document.querySelectorAll("input[data-run-toggle]");
  Array.prototype.forEach.call(toggles, function (box) {
    box.addEventListener("change", function () {
      document.body.classList.toggle("hide-run-" + box.getAttribute("data-run-toggle"), !box.checked);
    });
  });
})();

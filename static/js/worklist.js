// The displaced patients' worklist: the header's checkbox (data-check-all="rows") ticks or unticks every row's
// checkbox (input[name=rows]) of its form, and shows ticked, unticked or mixed as rows are ticked one by one.
// It comes hidden (without JavaScript it could do nothing): this script shows it.
(function () {
  "use strict";

  function rowsOf(all) {
    var scope = all.form || document;
    return Array.prototype.slice.call(scope.querySelectorAll('input[type=checkbox][name="' + all.dataset.checkAll + '"]'));
  }

  function follow(all) {
    var rows = rowsOf(all);
    var ticked = rows.filter(function (box) { return box.checked; }).length;
    all.checked = rows.length > 0 && ticked === rows.length;
    all.indeterminate = ticked > 0 && ticked < rows.length;
  }

  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!(box instanceof HTMLInputElement) || box.type !== "checkbox") { return; }
    if (box.dataset.checkAll) {
      rowsOf(box).forEach(function (row) { row.checked = box.checked; });
      box.indeterminate = false;
      return;
    }
    document.querySelectorAll("input[data-check-all]").forEach(function (all) {
      if (all.dataset.checkAll === box.name) { follow(all); }
    });
  });

  // A page shown again from the back/forward cache, or refilled by the browser, keeps its ticks: follow them.
  function followAll() {
    document.querySelectorAll("input[data-check-all]").forEach(function (all) {
      all.hidden = false;
      follow(all);
    });
  }
  followAll();
  window.addEventListener("pageshow", followAll);
})();

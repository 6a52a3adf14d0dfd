// The public booking site's small enhancements (the pages work without them):
// - times are shown in the browser's time zone: the page is asked for again with ?tz= when it differs;
// - the finder's selects submit themselves.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  var zone = "";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }

  document.querySelectorAll("input[data-browser-zone]").forEach(function (input) {
    if (zone && input.value !== zone) {
      var url = new URL(window.location.href);
      if (!url.searchParams.get("tz") && input.form && input.form.method.toLowerCase() === "get") {
        url.searchParams.set("tz", zone);
        window.location.replace(url.toString());
        return;
      }
      input.value = input.value || zone;
    }
  });

  // A day or a week chosen on the strip swaps the times in (htmx): the focus stays on the link pressed, found
  // again by its id in the new strip, so a keyboard or screen-reader user is not sent back to the page's start.
  document.addEventListener("htmx:afterSettle", function (event) {
    var trigger = event.detail && event.detail.requestConfig && event.detail.requestConfig.elt;
    if (!trigger || !trigger.id || !trigger.closest || !trigger.id.startsWith("strip-")) { return; }
    var again = document.getElementById(trigger.id);
    if (again && document.activeElement !== again) { again.focus(); }
  });

  document.addEventListener("change", function (event) {
    var select = event.target;
    if (select instanceof HTMLSelectElement && select.form && select.form.classList.contains("finder")) {
      select.form.requestSubmit();
    }
  });
})();

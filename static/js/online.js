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

  document.addEventListener("change", function (event) {
    var select = event.target;
    if (select instanceof HTMLSelectElement && select.form && select.form.classList.contains("finder")) {
      select.form.requestSubmit();
    }
  });
})();

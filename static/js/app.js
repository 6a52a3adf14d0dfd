// Site-wide behaviour: keyboard shortcuts and small progressive enhancements.
// No inline scripts anywhere: the Content-Security-Policy allows only files like this one.
(function () {
  "use strict";

  document.documentElement.classList.add("js");

  // A plan chosen as primary is never offered as the secondary one (Book Appointment): the select marked
  // data-not-plan-of="coverage" hides the option of the radio now chosen, and drops it if it was chosen.
  document.addEventListener("change", function (event) {
    var radio = event.target;
    if (!(radio instanceof HTMLInputElement) || radio.type !== "radio" || !radio.form) { return; }
    radio.form.querySelectorAll('select[data-not-plan-of="' + radio.name + '"]').forEach(function (select) {
      Array.prototype.forEach.call(select.options, function (option) {
        var primary = option.value !== "" && option.value === radio.value;
        option.hidden = primary;
        option.disabled = primary;
      });
      if (select.selectedOptions.length && select.selectedOptions[0].disabled) { select.value = ""; }
    });
  });

  // Create New Slot: a chosen practitioner brings their usual location, a chosen slot type its length
  // (until the length is typed by hand). The options carry them: data-location, data-length.
  document.addEventListener("input", function (event) {
    var field = event.target;
    if (field instanceof HTMLInputElement && field.name === "length_minutes" && field.closest("[data-new-slot]")) {
      field.dataset.typed = "1";
    }
  });
  document.addEventListener("change", function (event) {
    var select = event.target;
    var form = select instanceof HTMLSelectElement && select.closest("[data-new-slot]");
    if (!form) { return; }
    var option = select.selectedOptions[0];
    if (select.name === "practitioner" && option && option.dataset.location) {
      form.querySelector("select[name=location]").value = option.dataset.location;
    } else if (select.name === "slot_type" && option && option.dataset.length) {
      var length = form.querySelector("input[name=length_minutes]");
      if (length && !length.dataset.typed) { length.value = option.dataset.length; }
    }
  });

  // A form that fails validation (or a save the server refuses) comes back with 422 and its messages beside
  // the fields: show it. htmx leaves 4xx answers unswapped by default, which kept "Saved" on screen.
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.xhr.status === 422) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // Alt+C opens the calendar from any page. event.code is layout-independent, so this
  // also works where Alt+C types a character (e.g. "ç" on macOS).
  document.addEventListener("keydown", function (event) {
    if (event.altKey && !event.ctrlKey && !event.metaKey && event.code === "KeyC") {
      var url = document.body.dataset.calendarUrl;
      if (url) {
        event.preventDefault();
        window.location.assign(url);
      }
    }
  });

  // The browser's time zone goes to the server once (kept in a cookie); pages then show
  // times in it. A page that shows times ([data-zone-sensitive]) reloads to use it at once.
  (function reportTimeZone() {
    var body = document.body;
    var url = body.dataset.zoneUrl;
    var zone;
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
    if (!url || !zone || zone === body.dataset.viewerZone) { return; }
    var token = "";
    try { token = JSON.parse(body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || ""; } catch (e) { /* no token: the POST is refused */ }
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      // Not activity: the page sends it by itself (clinic/signin.py, idle sign-out).
      headers: { "X-CSRFToken": token, "Content-Type": "application/x-www-form-urlencoded", "X-Background": "1" },
      body: "time_zone=" + encodeURIComponent(zone)
    }).then(function (response) {
      if (response.status === 204 && document.querySelector("[data-zone-sensitive]")) {
        window.location.reload();
      }
    });
  })();

  // <select data-autosubmit> submits its form on change (the clinic switcher).
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target instanceof HTMLSelectElement && target.hasAttribute("data-autosubmit") && target.form) {
      target.form.requestSubmit();
    }
  });

  // Forms with data-confirm ask before a destructive action.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });
})();

// Copy buttons: <button data-copy="#input-id"> copies that field's value and says so.
document.addEventListener("click", function (event) {
  var button = event.target instanceof Element ? event.target.closest("[data-copy]") : null;
  if (!button) { return; }
  var field = document.querySelector(button.getAttribute("data-copy"));
  var status = button.parentElement ? button.parentElement.querySelector(".copy-status") : null;
  if (!field) { return; }
  field.select();
  var said = function (text) { if (status) { status.textContent = text; } };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(field.value).then(function () { said("Copied."); }, function () { said("Press Ctrl+C to copy."); });
  } else {
    said(document.execCommand && document.execCommand("copy") ? "Copied." : "Press Ctrl+C to copy.");
  }
});

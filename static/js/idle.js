// Idle sign-out in the browser: a warning a minute before the server signs an idle session out, with
// "Stay signed in", and never a reload: whatever is typed stays on the page. The server keeps the real clock
// (clinic.middleware.SignInMiddleware); this module asks it how long is left (a background request, which is
// not activity) before warning, so another tab's activity is seen. Typing or clicking on the page counts as
// activity: it is reported at most once a minute, so a member filling in a long form is not signed out.
(function () {
  "use strict";

  var body = document.body;
  var dialog = document.getElementById("idle-dialog");
  var url = body.dataset.sessionUrl;
  if (!dialog || !url || typeof dialog.showModal !== "function") { return; }

  var WARNING_MS = 60 * 1000;
  var REPORT_MS = 60 * 1000;
  var limitMs = Number(body.dataset.idleLimit) * 1000;
  var deadline = Date.now() + Number(body.dataset.idleRemaining) * 1000;
  var lastContact = Date.now();
  var localActivity = false;
  var timer = null;
  var ticker = null;
  var signedOut = false;

  var countdown = dialog.querySelector("[data-countdown]");
  var stay = dialog.querySelector("[data-stay]");
  var closeButton = dialog.querySelector("[data-close]");
  var signIn = dialog.querySelector("[data-sign-in]");
  var warningParts = dialog.querySelectorAll("[data-warning], [data-warning-form]");
  var expiredParts = dialog.querySelectorAll("[data-expired]");

  function token() {
    try { return JSON.parse(body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || ""; } catch (e) { return ""; }
  }

  // Both the question and "Stay signed in" are background requests: they never count as activity on their
  // own (the POST extends the session because the user asked).
  function ask(method) {
    var headers = { "X-Background": "1", "Accept": "application/json" };
    if (method === "POST") { headers["X-CSRFToken"] = token(); }
    return fetch(url, { method: method, credentials: "same-origin", headers: headers }).then(function (response) {
      return response.json().catch(function () { return { signed_in: false, remaining: 0 }; });
    });
  }

  function schedule() {
    clearTimeout(timer);
    var wait = deadline - WARNING_MS - Date.now();
    timer = setTimeout(check, Math.max(0, wait));
  }

  function heard(answer) {
    lastContact = Date.now();
    if (!answer.signed_in) { expired(); return false; }
    deadline = Date.now() + answer.remaining * 1000;
    return true;
  }

  function check() {
    ask("GET").then(function (answer) {
      if (!heard(answer)) { return; }
      if (deadline - Date.now() > WARNING_MS + 2000) { hide(); schedule(); return; }
      warn();
    }, function () { warn(); });
  }

  function secondsLeft() { return Math.max(0, Math.ceil((deadline - Date.now()) / 1000)); }

  function tick() {
    var left = secondsLeft();
    if (countdown) { countdown.textContent = left + (left === 1 ? " second" : " seconds"); }
    if (left <= 0) {
      clearInterval(ticker);
      // The server decides: another tab may have kept the session going.
      ask("GET").then(function (answer) {
        if (heard(answer) && deadline - Date.now() > 0) { hide(); schedule(); }
      }, expired);
    }
  }

  function warn() {
    if (signedOut) { return; }
    if (!dialog.open) { dialog.showModal(); stay.focus(); }
    clearInterval(ticker);
    tick();
    ticker = setInterval(tick, 1000);
  }

  function hide() {
    clearInterval(ticker);
    if (dialog.open && !signedOut) { dialog.close(); }
  }

  function expired() {
    signedOut = true;
    clearTimeout(timer);
    clearInterval(ticker);
    warningParts.forEach(function (el) { el.hidden = true; });
    expiredParts.forEach(function (el) { el.hidden = false; });
    stay.hidden = true;
    closeButton.hidden = false;
    signIn.hidden = false;
    if (!dialog.open) { dialog.showModal(); }
    signIn.focus();
  }

  function keepSignedIn() {
    return ask("POST").then(function (answer) {
      if (heard(answer)) { localActivity = false; hide(); schedule(); }
    });
  }

  stay.addEventListener("click", keepSignedIn);
  closeButton.addEventListener("click", function () { dialog.close(); });
  // Escape would close the warning without an answer: it means "stay".
  dialog.addEventListener("cancel", function (event) {
    if (!signedOut) { event.preventDefault(); keepSignedIn(); }
  });

  // Requests the user made (htmx swaps) reached the server: the idle time started again there.
  document.addEventListener("htmx:afterRequest", function (event) {
    var xhr = event.detail && event.detail.xhr;
    if (!signedOut && xhr && xhr.status && xhr.status < 400) {
      lastContact = Date.now();
      deadline = Date.now() + limitMs;
      schedule();
    }
  });

  // Typing and clicking in the page: activity, reported at most once a minute while the page is in use.
  function local(event) {
    if (signedOut || dialog.contains(event.target)) { return; }
    localActivity = true;
    if (Date.now() - lastContact >= REPORT_MS) { keepSignedIn(); }
  }
  ["keydown", "input", "pointerdown"].forEach(function (name) { document.addEventListener(name, local, true); });

  schedule();
})();

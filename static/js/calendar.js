// The calendar: keyboard shortcuts, the slot/event popup, and new events from an empty time.
// The grid itself is swapped by htmx (links carry href and hx-get); this file draws its slots from their data
// and adds the rest.
(function () {
  "use strict";

  function calendarEl() { return document.getElementById("calendar"); }

  // The grid's slots come as data (scheduling/grid_html.py says how): each column's list is drawn as the links
  // it stands for, where it stood, when the page has been read and after each swap. Every text in the data is
  // escaped already; this only joins the pieces.
  function uuidOf(shortId) {
    var bytes = atob(shortId.replace(/-/g, "+").replace(/_/g, "/") + "==");
    var hex = "";
    for (var i = 0; i < bytes.length; i++) { hex += (bytes.charCodeAt(i) + 256).toString(16).slice(1); }
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" + hex.slice(16, 20) + "-" +
      hex.slice(20);
  }

  function clockText(value) {
    if (typeof value !== "number") { return value; }
    var hours = Math.floor(value / 60);
    var minutes = value % 60;
    return (hours < 10 ? "0" : "") + hours + ":" + (minutes < 10 ? "0" : "") + minutes;
  }

  function drawSlots() {
    var lists = document.querySelectorAll("script[data-slots]");
    var table = document.getElementById("cal-slot-kinds");
    if (!lists.length || !table) { return; }
    var info = JSON.parse(table.textContent);
    var kinds = info.kinds;
    lists.forEach(function (list) {
      var html = "";
      JSON.parse(list.textContent).forEach(function (slot) {
        var kind = kinds[slot[3]];
        var id = uuidOf(slot[0]);
        var start = clockText(slot[4]);
        var label = slot.length > 5 ? slot[5] : kind[4];
        var end = slot.length > 6 ? clockText(slot[6]) : clockText(slot[4] + slot[2] * info.rowMinutes);
        html += "<a" + (kind[3] ? ' id="slot-' + id + '"' : "") + ' class="' + kind[0] + " r" + slot[1] + " h" +
          slot[2] + '" href="' + info.href[0] + id + info.href[1] + '" title="' + start + "\u2013" + end + " \u00b7 " +
          kind[2].split("\u0000").join(label) + '"><b>' + start + "</b> " + kind[1] + label + "</a>";
      });
      list.insertAdjacentHTML("afterend", html);
      list.remove();
    });
    if (window.performance && performance.mark) { performance.mark("calendar-slots-drawn"); }
  }

  drawSlots();  // deferred: the page has been read
  document.addEventListener("htmx:afterSwap", drawSlots);

  function go(url) {
    if (!url) { return; }
    if (window.htmx) {
      // #calendar carries hx-push-url, so htmx pushes the URL itself (once: the back button works).
      window.htmx.ajax("GET", url, { target: "#calendar", swap: "outerHTML", source: calendarEl() });
    } else {
      window.location.assign(url);
    }
  }

  function typing(event) {
    var t = event.target;
    return t instanceof HTMLElement && (t.isContentEditable || /^(INPUT|SELECT|TEXTAREA)$/.test(t.tagName));
  }

  // A modal dialog keeps the focus while it is open and gives it back when it closes. showModal() makes the
  // page behind inert, but Tab from the last control (or Shift+Tab from the first) would still leave it for
  // the browser's own toolbar: it wraps around instead (over the controls there now: htmx swaps steps in).
  // On closing, the browser focuses what had the focus before; when that is gone (a slot the grid's
  // refresh replaced) or hidden (a menu item, its menu closed), the element now bearing its id, or the
  // menu's button, gets it.
  var openers = new WeakMap();

  function openModal(dialog, opener) {
    var from = opener || document.activeElement;
    if (from && from !== document.body && !dialog.contains(from)) { openers.set(dialog, from); }
    if (!dialog.open) { dialog.showModal(); }
  }

  function shown(el) { return el.isConnected && el.getClientRects().length > 0; }

  function tabStops(dialog) {
    var candidates = dialog.querySelectorAll(
      "a[href], button, input, select, textarea, summary, [tabindex]:not([tabindex='-1'])"
    );
    return Array.prototype.filter.call(candidates, function (el) {
      if (el.disabled || el.tabIndex < 0 || el.type === "hidden" || !shown(el)) { return false; }
      if (el.type === "radio" && !el.checked && el.name) {
        // One stop per radio group: the chosen radio, else the group's first.
        var group = (el.form || dialog).querySelectorAll("input[type=radio][name='" + CSS.escape(el.name) + "']");
        var chosen = Array.prototype.some.call(group, function (r) { return r.checked; });
        return !chosen && group[0] === el;
      }
      return true;
    });
  }

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Tab" || event.altKey || event.ctrlKey || event.metaKey) { return; }
    var dialog = document.querySelector("dialog[open]");
    if (!dialog) { return; }
    var stops = tabStops(dialog);
    var active = document.activeElement;
    if (!stops.length) { event.preventDefault(); return; }
    var first = stops[0];
    var last = stops[stops.length - 1];
    if (!dialog.contains(active) || (event.shiftKey && active === first) || (!event.shiftKey && active === last)) {
      event.preventDefault();
      (event.shiftKey ? last : first).focus();
    }
  });

  document.addEventListener("close", function (event) {
    var dialog = event.target;
    if (!(dialog instanceof HTMLDialogElement)) { return; }
    var opener = openers.get(dialog);
    openers.delete(dialog);
    var active = document.activeElement;
    if (!opener || (active && active !== document.body && shown(active))) { return; }
    var target = opener.isConnected ? opener : (opener.id && document.getElementById(opener.id));
    if (target && !shown(target)) {
      var menu = target.closest("details");
      target = menu && menu.querySelector("summary");
    }
    if (target && shown(target)) { target.focus(); }
  }, true);

  function openTip(url, opener) {
    var dialog = document.getElementById("tip");
    var body = document.getElementById("tip-body");
    if (!dialog || !body || !window.htmx) { window.location.assign(url); return; }
    opener = opener || document.activeElement;
    // Open once htmx has settled the new content (its links and forms are wired up by then),
    // not when the request resolves: a quick Enter would otherwise follow a plain link.
    body.addEventListener("htmx:afterSettle", function opened(event) {
      if (event.target !== body && !body.contains(event.target)) { return; }
      body.removeEventListener("htmx:afterSettle", opened);
      openModal(dialog, opener);
      var first = body.querySelector("input:not([type=hidden]):not([type=radio]), select, textarea, a, button");
      if (first) { first.focus(); }
    });
    window.htmx.ajax("GET", url, { target: "#tip-body", swap: "innerHTML" });
  }

  // A step inside the open popup (Preview, Remove, Review...) replaces its content: put the focus on
  // what the new step marks with data-step-focus (else its title), not on the page behind.
  var stepping = false;
  document.addEventListener("htmx:beforeRequest", function (event) {
    var dialog = document.getElementById("tip");
    var body = document.getElementById("tip-body");
    // Only a request that replaces the whole popup (not one filling part of it, like search results).
    stepping = Boolean(dialog && dialog.open && body && event.detail.target === body && body.contains(event.target));
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    var body = document.getElementById("tip-body");
    if (!stepping || event.target !== body) { return; }
    stepping = false;
    var active = document.activeElement;
    if (active && active !== document.body && body.contains(active)) { return; }  // already somewhere in it
    var target = body.querySelector("[data-step-focus]") || body.querySelector(".tip-title");
    if (!target) { return; }
    if (!target.matches("a, button, input, select, textarea, summary")) { target.setAttribute("tabindex", "-1"); }
    target.focus();
  });

  function closeDialogs() {
    document.querySelectorAll("dialog[open]").forEach(function (d) { d.close(); });
  }

  // Keyboard: t today, ←/p and →/n move, d/w/m switch view, e new event, ? the list.
  document.addEventListener("keydown", function (event) {
    var cal = calendarEl();
    if (!cal || event.altKey || event.ctrlKey || event.metaKey || typing(event)) { return; }
    if (document.querySelector("dialog[open]") && event.key !== "?") { return; }
    var urls = {
      t: cal.dataset.todayUrl, p: cal.dataset.previousUrl, ArrowLeft: cal.dataset.previousUrl,
      n: cal.dataset.nextUrl, ArrowRight: cal.dataset.nextUrl,
      d: cal.dataset.dayUrl, w: cal.dataset.weekUrl, m: cal.dataset.monthUrl
    };
    if (event.key === "?") {
      event.preventDefault();
      var help = document.getElementById("shortcuts");
      if (help && !help.open) { openModal(help); }
    } else if (event.key === "e") {
      event.preventDefault();
      var link = cal.querySelector("a[href*='/events/new/']");
      if (link) { openTip(link.getAttribute("href")); }
    } else if (Object.prototype.hasOwnProperty.call(urls, event.key) && urls[event.key]) {
      event.preventDefault();
      go(urls[event.key]);
    }
  });

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) { return; }
    if (target.closest("[data-shortcuts]")) {
      var help = document.getElementById("shortcuts");
      var menu = target.closest("details");
      if (menu) { menu.removeAttribute("open"); }
      // The item is hidden with its menu: the menu's button gets the focus back.
      if (help) { openModal(help, menu ? menu.querySelector("summary") : target.closest("button")); }
      return;
    }
    if (target.closest("[data-close]")) { closeDialogs(); return; }
    // A slot or timed event of the grid is a plain link in its column; elsewhere a link says data-tip-link.
    var tipLink = target.closest("a[data-tip-link], .cal-col > a[href]");
    if (tipLink && !event.ctrlKey && !event.metaKey && !event.shiftKey) {
      event.preventDefault();
      var menu = tipLink.closest("details");
      if (menu) { menu.removeAttribute("open"); }
      openTip(tipLink.getAttribute("href"), menu ? menu.querySelector("summary") : tipLink);
      return;
    }
    var cal = calendarEl();
    if (!cal) { return; }
    // An empty time: a new event there, on the clicked 5-minute row (rounded down to 15 minutes).
    var column = target.closest(".cal-col");
    var allDay = target.closest(".cal-allday");
    var practitioner = (column || allDay) && (column || allDay).dataset.practitioner;
    if (!practitioner) { return; }
    var base = cal.dataset.newEventUrl + "?practitioner=" + encodeURIComponent(practitioner);
    if (allDay && target === allDay) {
      openTip(base + "&date=" + allDay.dataset.date + "&all_day=1");
    } else if (column && (target === column || target.classList.contains("fill") || target.classList.contains("off"))) {
      var grid = column.closest(".cal-grid");
      var rowMinutes = Number(grid.dataset.rowMinutes);
      var rangeStart = Number(grid.dataset.rangeStart);
      var rowPx = parseFloat(getComputedStyle(column).gridAutoRows) || 8;
      var offset = event.clientY - column.getBoundingClientRect().top;
      var minutes = rangeStart + Math.floor(offset / rowPx) * rowMinutes;
      minutes = Math.floor(minutes / 15) * 15;
      var hh = String(Math.floor(minutes / 60)).padStart(2, "0");
      var mm = String(minutes % 60).padStart(2, "0");
      openTip(base + "&date=" + column.dataset.date + "&start=" + hh + ":" + mm);
    }
  });

  // A status change in the popup keeps it open but refreshes the grid behind it.
  document.body.addEventListener("calendar:refresh", function () {
    if (calendarEl() && window.htmx) {
      window.htmx.ajax("GET", window.location.pathname + window.location.search, { target: "#calendar", swap: "outerHTML" });
    }
  });

  // Show the changed item: scrolled into view, highlighted, focused (so the keyboard continues from it).
  function showChanged(id) {
    var item = id && document.getElementById(id);
    if (!item) { return false; }
    item.classList.add("just-changed");
    item.scrollIntoView({ block: "center", inline: "nearest" });
    item.focus({ preventScroll: true });
    return true;
  }

  // After a change in the popup the server says "calendar:changed" with what it did ("message"), the day
  // it happened ("then") and the changed item's id ("focus"): close, say it, refresh, and show the item
  // once the new grid has settled; when the refreshed view does not hold it (a reschedule to another
  // week), go to that day and show it there.
  var pending = null;
  document.body.addEventListener("calendar:changed", function (event) {
    closeDialogs();
    var detail = event.detail || {};
    var said = document.getElementById("calendar-said");
    if (said && detail.message) {
      said.innerHTML = "";
      var line = document.createElement("p");
      line.className = "message success";
      line.textContent = detail.message;
      said.appendChild(line);
    }
    var cal = calendarEl();
    if (!cal || !window.htmx) { return; }
    pending = detail.focus ? { focus: detail.focus, then: detail.then, moved: false } : null;
    window.htmx.ajax("GET", window.location.pathname + window.location.search, { target: "#calendar", swap: "outerHTML" });
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    var cal = calendarEl();
    if (!pending || !cal || !(event.target === cal || cal.contains(event.target))) { return; }
    var wanted = pending;
    if (showChanged(wanted.focus)) { pending = null; return; }
    if (wanted.moved || !wanted.then) { pending = null; return; }
    wanted.moved = true;
    window.htmx.ajax("GET", wanted.then, { target: "#calendar", swap: "outerHTML", source: cal });
  });

  // Arriving from a page of its own (a redirect to the day, #slot-…): show that item the same way.
  document.addEventListener("DOMContentLoaded", function () {
    if (window.location.hash.indexOf("#slot-") === 0) { showChanged(window.location.hash.slice(1)); }
  });

  // The filter menu: "Show everyone" unticks the boxes before submitting.
  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element && event.target.closest("[data-clear-filters]");
    if (button) {
      button.form.querySelectorAll("input[type=checkbox]").forEach(function (box) { box.checked = false; });
    }
  });
})();

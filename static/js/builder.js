// The session builder: selection by click/keyboard, and the drag handle that extends the
// session by the selected pattern. The server holds the truth: this module only previews
// a drag and then asks the server (an htmx form submit) to apply it.
(function () {
  "use strict";

  var anchor = null; // index of the last row clicked, for Shift+click ranges

  function builderForm() { return document.getElementById("builder"); }
  // Real slot rows only: drag-preview ghosts are .slot-row too but have no checkbox.
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("#slot-list .slot-row:not(.ghost)")); }
  function box(row) { return row.querySelector('input[type="checkbox"]'); }

  function setSelected(row, on) {
    box(row).checked = on;
    row.classList.toggle("selected", on);
  }

  // --- Selection --------------------------------------------------------------------
  document.addEventListener("click", function (event) {
    var row = event.target.closest && event.target.closest("#slot-list .slot-row:not(.ghost)");
    if (!row || event.target.closest(".slot-menu") || event.target.matches('input[type="checkbox"], label')) return;
    var all = rows();
    var index = all.indexOf(row);
    if (event.shiftKey && anchor !== null) {
      var lo = Math.min(anchor, index), hi = Math.max(anchor, index);
      all.forEach(function (r, i) { setSelected(r, i >= lo && i <= hi); });
    } else if (event.ctrlKey || event.metaKey) {
      setSelected(row, !box(row).checked);
      anchor = index;
    } else {
      all.forEach(function (r) { setSelected(r, r === row); });
      anchor = index;
    }
    box(row).focus();
  });

  document.addEventListener("change", function (event) {
    var row = event.target.closest && event.target.closest("#slot-list .slot-row");
    if (row && event.target === box(row)) {
      row.classList.toggle("selected", event.target.checked);
      anchor = rows().indexOf(row);
    }
  });

  document.addEventListener("keydown", function (event) {
    var row = event.target.closest && event.target.closest("#slot-list .slot-row");
    if (!row || event.target !== box(row) || (event.key !== "ArrowDown" && event.key !== "ArrowUp")) return;
    var all = rows();
    var next = all[all.indexOf(row) + (event.key === "ArrowDown" ? 1 : -1)];
    if (!next) return;
    event.preventDefault();
    if (event.shiftKey) {
      if (!box(row).checked) setSelected(row, true);
      setSelected(next, true);
    }
    box(next).focus();
  });

  // --- Drag to extend ------------------------------------------------------------------
  var drag = null;

  function pattern() {
    var all = rows();
    var chosen = all.filter(function (r) { return box(r).checked; });
    if (!chosen.length && all.length) chosen = [all[all.length - 1]];
    return chosen.map(function (r) {
      return { label: r.dataset.label, colour: r.dataset.colour, length: parseInt(r.dataset.length, 10) };
    });
  }

  function clearPreview() {
    document.querySelectorAll("#slot-list .ghost").forEach(function (g) { g.remove(); });
    rows().forEach(function (r) { r.classList.remove("removing"); });
  }

  function formatMinutes(m) { return m + " minutes"; }

  // Show `count` slots added (or removed when negative) and the live duration.
  function preview(count) {
    var list = document.getElementById("slot-list");
    var output = document.getElementById("duration-live");
    if (!list || !output) return 0;
    var all = rows();
    var pat = pattern();
    count = Math.max(count, 1 - all.length);
    clearPreview();
    var minutes = parseInt(output.dataset.minutes, 10);
    var slots = all.length + count;
    if (count > 0 && pat.length) {
      for (var i = 0; i < count; i++) {
        var p = pat[i % pat.length];
        var ghost = document.createElement("li");
        ghost.className = "slot-row ghost " + p.colour;
        ghost.setAttribute("aria-hidden", "true");
        ghost.textContent = "+ " + p.label + " · " + p.length + " min";
        list.appendChild(ghost);
        minutes += p.length;
      }
    } else if (count < 0) {
      all.slice(all.length + count).forEach(function (r) {
        r.classList.add("removing");
        minutes -= parseInt(r.dataset.length, 10);
      });
    }
    output.textContent = formatMinutes(minutes) + " · " + slots + " slot" + (slots === 1 ? "" : "s") +
      (count ? " (" + (count > 0 ? "+" : "") + count + ", release to apply)" : "");
    return count;
  }

  function commit(count) {
    var form = builderForm();
    if (!form) return;
    if (!count) { preview(0); return; }
    document.getElementById("extend-count").value = String(count);
    // A click, not form.requestSubmit(button): htmx sends the name/value of the button it saw
    // clicked and ignores the submit event's submitter, so action=extend would be lost.
    document.getElementById("extend-submit").click();
  }

  function rowHeight() {
    var first = rows()[0];
    return first ? first.getBoundingClientRect().height : 32;
  }

  document.addEventListener("pointerdown", function (event) {
    var handle = event.target.closest && event.target.closest("#drag-handle");
    if (!handle || event.button !== 0) return;
    event.preventDefault();
    handle.setPointerCapture(event.pointerId);
    drag = { handle: handle, startY: event.clientY, step: rowHeight(), count: 0 };
    handle.classList.add("dragging");
  });

  document.addEventListener("pointermove", function (event) {
    if (!drag) return;
    var count = Math.round((event.clientY - drag.startY) / drag.step);
    if (count !== drag.count) drag.count = preview(count);
  });

  function endDrag(apply) {
    if (!drag) return;
    var count = drag.count;
    drag.handle.classList.remove("dragging");
    drag = null;
    if (apply) commit(count); else preview(0);
  }
  document.addEventListener("pointerup", function () { endDrag(true); });
  document.addEventListener("pointercancel", function () { endDrag(false); });

  // Keyboard equivalent of the drag: arrows preview, Enter applies, Escape cancels.
  var keyCount = 0;
  document.addEventListener("keydown", function (event) {
    if (!event.target.matches || !event.target.matches("#drag-handle")) return;
    var step = { ArrowDown: 1, ArrowUp: -1, PageDown: pattern().length, PageUp: -pattern().length }[event.key];
    if (step) {
      event.preventDefault();
      keyCount = preview(keyCount + step);
    } else if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      var count = keyCount;
      keyCount = 0;
      commit(count);
    } else if (event.key === "Escape") {
      keyCount = 0;
      preview(0);
    }
  });
  document.addEventListener("htmx:afterSwap", function () { keyCount = 0; });

  // --- The header preview follows the name, description and colour as they are typed ----------------
  document.addEventListener("input", function (event) {
    var form = builderForm();
    var field = event.target;
    if (!form || !(field instanceof HTMLInputElement || field instanceof HTMLTextAreaElement) || !form.contains(field)) { return; }
    var header = form.querySelector(".session-header");
    if (!header) { return; }
    if (field.name === "name") {
      header.querySelector(".session-header-name").textContent = field.value.trim() || "New session";
    } else if (field.name === "description") {
      var desc = header.querySelector(".session-header-desc");
      if (!desc) {
        desc = document.createElement("span");
        desc.className = "session-header-desc";
        header.appendChild(desc);
      }
      desc.textContent = field.value;
      header.title = field.value;
    }
  });
  document.addEventListener("change", function (event) {
    var form = builderForm();
    var field = event.target;
    if (!form || !(field instanceof HTMLInputElement) || field.name !== "colour" || !form.contains(field)) { return; }
    var header = form.querySelector(".session-header");
    if (!header) { return; }
    header.className = header.className.replace(/\bc-[a-z0-9-]+/g, "").trim() + " c-" + field.value;
  });

  // --- Leaving with unsaved changes asks first ---------------------------------------------------------
  // Every edit (typing, or a step the server applied: extend, duration, slot types) is unsaved until Save.
  var dirty = false;
  var saving = false;
  document.addEventListener("input", function (event) {
    var form = builderForm();
    if (form && event.target instanceof Node && form.contains(event.target)) { dirty = true; }
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    saving = false;
    if (event.detail.target && event.detail.target.id === "builder") { dirty = true; }
  });
  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element && event.target.closest("#builder button[name=action][value=save]");
    if (button) { saving = true; }
  });
  window.addEventListener("beforeunload", function (event) {
    if (dirty && !saving && builderForm()) {
      event.preventDefault();
      event.returnValue = "";  // older browsers need a value to ask
    }
  });
})();

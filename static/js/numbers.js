/* The numbers pages' live parts: lease countdowns, the lease's inbound messages as they arrive, and
   copying a code. Without JavaScript the pages show the lease's end time, and a reload shows new messages. */
(function () {
  "use strict";

  var TICK_MS = 1000;
  var POLL_MS = 2500;
  // Server time minus this browser's clock, from the page's data-now, so a wrong local clock does not skew the countdown.
  var skew = 0;

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function remainingText(ms) {
    if (ms <= 0) { return "expired"; }
    var s = Math.floor(ms / 1000);
    var days = Math.floor(s / 86400);
    var h = Math.floor(s % 86400 / 3600);
    var m = Math.floor(s % 3600 / 60);
    var clock = (days || h ? (days ? pad(h) : h) + ":" + pad(m) : m) + ":" + pad(s % 60);
    return (days ? days + " d " : "") + clock + " left";
  }

  function tick() {
    var now = Date.now() + skew;
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      var ms = Date.parse(el.getAttribute("data-expires-at")) - now;
      el.textContent = remainingText(ms);
      el.classList.toggle("is-expired", ms <= 0);
      el.classList.toggle("is-ending", ms > 0 && ms < 60000);
    });
  }

  function setUpCountdowns() {
    var first = document.querySelector("[data-countdown][data-now]");
    if (!first) { return; }
    skew = Date.parse(first.getAttribute("data-now")) - Date.now() || 0;
    tick();
    window.setInterval(tick, TICK_MS);
  }

  // Copy buttons of codes, present now or added later: shown only when the clipboard is usable (CSS).
  function setUpCopy() {
    if (!navigator.clipboard || !window.isSecureContext) { return; }
    document.documentElement.classList.add("has-clipboard");
    document.addEventListener("click", function (event) {
      var button = event.target.closest ? event.target.closest("[data-copy-code]") : null;
      if (!button) { return; }
      var label = button.querySelector("[data-copy-label]");
      navigator.clipboard.writeText(button.getAttribute("data-copy-code")).then(function () {
        button.classList.add("is-copied");
        if (label) { label.textContent = "Copied"; }
        window.setTimeout(function () {
          button.classList.remove("is-copied");
          if (label) { label.textContent = "Copy"; }
        }, 2000);
      }, function () {
        if (label) { label.textContent = "Press Ctrl+C"; }
      });
    });
  }

  function setUpLive(box) {
    var url = box.getAttribute("data-url");
    var after = box.getAttribute("data-after") || "";
    var list = box.querySelector("[data-inbound-list]");
    var empty = box.querySelector("[data-inbound-empty]");
    var failures = 0;

    function seen(id) {
      return Array.prototype.some.call(list.children, function (li) { return li.getAttribute("data-message-id") === id; });
    }

    function show(answer) {
      answer.messages.forEach(function (message) {
        if (seen(message.id)) { return; }
        list.insertAdjacentHTML("afterbegin", message.html);
        list.firstElementChild.classList.add("is-new");
        if (empty) { empty.hidden = true; }
      });
      after = answer.after || after;
      document.querySelectorAll("[data-countdown]").forEach(function (el) {
        el.setAttribute("data-expires-at", answer.lease.expires_at);
      });
      document.querySelectorAll("[data-lease-end]").forEach(function (el) {
        el.setAttribute("datetime", answer.lease.expires_at);
      });
      if (!answer.lease.active) { ended(answer.lease.status); }
      return answer.lease.active;
    }

    function ended(status) {
      var badge = document.querySelector("[data-lease-status]");
      if (badge) {
        badge.textContent = status === "released" ? "Released" : "Expired";
        badge.className = "badge " + (status === "released" ? "badge-neutral" : "badge-warning");
      }
      document.querySelectorAll("[data-lease-actions], [data-live-note]").forEach(function (el) { el.hidden = true; });
    }

    function poll() {
      fetch(url + "?after=" + encodeURIComponent(after), {
        credentials: "same-origin", headers: { "Accept": "application/json" }
      }).then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      }).then(function (answer) {
        failures = 0;
        if (show(answer)) { window.setTimeout(poll, POLL_MS); }
      }).catch(function () {
        // Signed out or offline: back off, and stop after a while (a reload starts again).
        failures += 1;
        if (failures < 10) { window.setTimeout(poll, POLL_MS * failures); }
      });
    }

    window.setTimeout(poll, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUpCountdowns();
    setUpCopy();
    var box = document.querySelector("[data-lease-live][data-active=true]");
    if (box && window.fetch) { setUpLive(box); }
  });
})();

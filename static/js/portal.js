/* Progressive enhancement for the portal; every page works without it. */
(function () {
  "use strict";

  // Copy buttons: <button data-copy="#selector" hidden> shown only when the clipboard is usable.
  function textOf(target) {
    var items = target.querySelectorAll("li");
    if (items.length) {
      return Array.prototype.map.call(items, function (li) { return li.textContent.trim(); }).join("\n");
    }
    return target.textContent.trim();
  }

  function setUpCopy(button) {
    var target = document.querySelector(button.getAttribute("data-copy"));
    if (!target || !navigator.clipboard || !window.isSecureContext) { return; }
    var label = button.lastChild;
    var original = label ? label.textContent : "";
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(textOf(target)).then(function () {
        button.classList.add("is-copied");
        if (label) { label.textContent = "Copied"; }
        window.setTimeout(function () {
          button.classList.remove("is-copied");
          if (label) { label.textContent = original; }
        }, 2000);
      });
    });
  }

  // Menus are <details>: close them on a click elsewhere or on Escape.
  function closeMenus(except) {
    document.querySelectorAll("details[data-menu][open]").forEach(function (menu) {
      if (menu !== except) { menu.removeAttribute("open"); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-copy]").forEach(setUpCopy);
    document.addEventListener("click", function (event) {
      closeMenus(event.target.closest ? event.target.closest("details[data-menu]") : null);
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { closeMenus(null); }
    });
  });
})();

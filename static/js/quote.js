/* The send page's live length and price check: posts the message (body, sender, recipient, type) to the quote endpoint as
   the user types.
   Without JavaScript the "Check length" button renders the same panel on the server. */
(function () {
  "use strict";

  var QUOTED_FIELDS = ["content", "text", "template", "variables", "smart_encoding", "sender", "to", "region",
                       "message_type"];
  var DELAY_MS = 150;

  function setUp(form) {
    var url = form.getAttribute("data-quote-url");
    var panel = document.querySelector("[data-quote-panel]");
    var counter = form.querySelector("[data-quote-counter]");
    var check = document.querySelector("[data-quote-check]");
    var timer = null;
    var latest = 0;

    if (check) { check.hidden = true; }

    function show(answer) {
      panel.innerHTML = answer.html;
      counter.textContent = answer.summary || (answer.error ? answer.error.message : "");
      counter.classList.toggle("is-error", Boolean(answer.error));
    }

    function refresh() {
      var mine = ++latest;
      panel.classList.add("is-loading");
      fetch(url, {
        method: "POST",
        body: new FormData(form), // includes the form's CSRF token
        credentials: "same-origin",
        headers: { "Accept": "application/json" }
      }).then(function (response) {
        return response.json();
      }).then(function (answer) {
        if (mine === latest) { show(answer); }
      }).catch(function () {
        if (mine === latest) {
          counter.textContent = "The length could not be checked; use “Check length”.";
          counter.classList.add("is-error");
          if (check) { check.hidden = false; }
        }
      }).then(function () {
        if (mine === latest) { panel.classList.remove("is-loading"); }
      });
    }

    function later(event) {
      if (QUOTED_FIELDS.indexOf(event.target.name) === -1) { return; }
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, DELAY_MS);
    }

    form.addEventListener("input", later);
    form.addEventListener("change", later);
    setUpVariables(form);
    var text = form.elements.text;
    var template = form.elements.template;
    if ((text && text.value) || (template && template.value)) { refresh(); }
  }

  // Choosing a template offers one "name=" line per placeholder, unless values were already typed.
  function setUpVariables(form) {
    var select = form.elements.template;
    var variables = form.elements.variables;
    if (!select || !variables) { return; }
    var placeholders = JSON.parse(select.getAttribute("data-placeholders") || "{}");
    var offered = "";
    select.addEventListener("change", function () {
      if (variables.value.trim() && variables.value !== offered) { return; }
      var names = placeholders[select.value] || [];
      offered = names.map(function (name) { return name + "="; }).join("\n");
      variables.value = offered;
      if (names.length) { variables.focus(); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("form[data-quote-url]");
    if (form && window.fetch && window.FormData) { setUp(form); }
  });
})();

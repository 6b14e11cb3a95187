// Progressive enhancement only: every page works without it.
(function () {
  // Behaviour once written as onchange="" / href="javascript:…": the pages' CSP runs no inline script.
  document.querySelectorAll("[data-autosubmit]").forEach(function (field) {
    field.addEventListener("change", function () { if (field.form) { field.form.submit(); } });
  });
  document.querySelectorAll("a[data-back]").forEach(function (link) {
    link.addEventListener("click", function (event) { event.preventDefault(); window.history.back(); });
  });
  // Keep half-typed text (review opinions, reasons) in this browser until the form is sent, so an
  // expired session that sends the user to sign-in does not lose it.
  document.querySelectorAll("textarea[data-keep]").forEach(function (area) {
    var key = "qf-draft:" + area.getAttribute("data-keep");
    var saved = window.localStorage.getItem(key);
    if (saved && !area.value) { area.value = saved; }
    area.addEventListener("input", function () { window.localStorage.setItem(key, area.value); });
    if (area.form) {
      area.form.addEventListener("submit", function () { window.sessionStorage.setItem("qf-sent", key); });
    }
  });
  // Forget a draft only once the page after a send shows no error. A send that lands on the
  // sign-in page (the session had ended) was not taken, so its draft stays.
  var sent = window.sessionStorage.getItem("qf-sent");
  if (sent && !document.querySelector(".error") && !document.querySelector("[data-keep-drafts]")) {
    window.localStorage.removeItem(sent);
  }
  window.sessionStorage.removeItem("qf-sent");

  // Draw ceremony: the commitment is SHA-256(draw_id|party|secret), computed here so the secret
  // leaves the browser only at the reveal.
  function hex(buffer) {
    return Array.from(new Uint8Array(buffer)).map(function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }
  document.querySelectorAll("form[data-commit]").forEach(function (form) {
    var secret = form.querySelector("[name=secret]");
    var out = form.querySelector("[name=commitment]");
    var gen = form.querySelector("[data-generate]");
    var key = "qf-secret:" + form.getAttribute("data-commit");
    if (!secret.value && window.localStorage.getItem(key)) { secret.value = window.localStorage.getItem(key); }
    function update() {
      if (!window.crypto || !window.crypto.subtle) { return; }
      var text = form.getAttribute("data-commit") + "|" + form.getAttribute("data-party") + "|" + secret.value;
      window.crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)).then(function (d) { out.value = hex(d); });
      window.localStorage.setItem(key, secret.value);
    }
    if (gen) {
      gen.addEventListener("click", function () {
        var bytes = new Uint8Array(16); window.crypto.getRandomValues(bytes); secret.value = hex(bytes); update();
      });
    }
    secret.addEventListener("input", update);
    update();
  });
  document.querySelectorAll("form[data-reveal]").forEach(function (form) {
    var secret = form.querySelector("[name=secret]");
    var kept = window.localStorage.getItem("qf-secret:" + form.getAttribute("data-reveal"));
    if (secret && !secret.value && kept) { secret.value = kept; }
  });
})();

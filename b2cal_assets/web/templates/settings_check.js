// The server's checks of the generated settings form, before it is sent (settings_form.py says the same).
document.querySelectorAll("form#form-submit").forEach(function (form) {
  form.querySelectorAll("textarea[data-json]").forEach(function (area) {
    area.addEventListener("input", function () { area.setCustomValidity(""); });  // checked again on send
  });
  form.addEventListener("submit", function (event) {
    var first = null;
    form.querySelectorAll("textarea[data-json]").forEach(function (area) {
      var message = "";
      try {
        var value = JSON.parse(area.value);
        var got = Array.isArray(value) ? "list" : value === null ? "NoneType" : typeof value === "object" ? "dict" : typeof value;
        var want = area.getAttribute("data-json");
        if (want && got !== want && !(want === "float" && got === "number")) {
          message = "JSON of the default's type (" + want + "), not " + got;
        }
      } catch (e) {
        message = "not valid JSON (" + e.message + ")";
      }
      area.setCustomValidity(message);
      var shown = area.parentNode.querySelector(".field-error");
      if (!shown && message) {
        shown = document.createElement("span");
        shown.className = "field-error";
        shown.setAttribute("role", "alert");
        area.parentNode.appendChild(shown);
      }
      if (shown) { shown.textContent = message; }
      if (message && !first) { first = area; }
    });
    if (first) { event.preventDefault(); first.focus(); }
  });
});

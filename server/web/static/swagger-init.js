// Starts Swagger UI on the API docs pages (server/templates/swagger_ui.html) without an inline script.
(function () {
  var node = document.getElementById("swagger-ui-container");
  var config = { url: node.getAttribute("data-spec-url"), dom_id: "#swagger-ui-container" };
  var extra = JSON.parse(node.getAttribute("data-config") || "{}");
  Object.keys(extra).forEach(function (key) { config[key] = extra[key]; });
  window.addEventListener("load", function () { window.ui = window.SwaggerUIBundle(config); });
})();

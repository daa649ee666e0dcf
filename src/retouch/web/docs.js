// Starts Swagger UI on /docs. A file rather than an inline script, so the page's
// Content-Security-Policy can forbid inline scripts.
window.addEventListener("load", () => {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    // The default validator badge would load an image from a public validator service.
    validatorUrl: null,
  });
});

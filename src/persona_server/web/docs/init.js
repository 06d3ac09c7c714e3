// Swagger UI over the server's own OpenAPI document; a file, not an inline script, for the page's CSP.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null, // never ask an online validator
  tryItOutEnabled: false,
});

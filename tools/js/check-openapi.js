// Validates an OpenAPI document (3.0 or 3.1) with @apidevtools/swagger-parser: the structure
// against the official schema, then every $ref resolved. Prints a JSON summary; exits 1 with the
// validator's message when the document is invalid.
//   node check-openapi.js FILE
'use strict';
const SwaggerParser = require('@apidevtools/swagger-parser');

async function main() {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node check-openapi.js FILE');
    process.exit(2);
  }
  try {
    const api = await SwaggerParser.validate(file);
    console.log(JSON.stringify({
      ok: true,
      openapi: api.openapi,
      paths: Object.keys(api.paths || {}),
      schemas: Object.keys((api.components || {}).schemas || {}).length,
    }));
  } catch (err) {
    console.error(String(err && err.message || err));
    process.exit(1);
  }
}

main();

// Validates Amazon States Language definitions with the AWS Toolkit's language service
// (npm amazon-states-language-service, pinned in package-lock.json), as the Toolkit's editor does.
// stdin: {"<name>": "<definition text, placeholders already substituted>", ...}
// stdout: a JSON list of problems, "<name>:<line>: <message>"; the exit code is 0 either way.
'use strict';
const { getLanguageService, TextDocument, DiagnosticSeverity } = require('amazon-states-language-service');

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const definitions = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const service = getLanguageService({});
  const problems = [];
  for (const [name, text] of Object.entries(definitions)) {
    const document = TextDocument.create(`file:///${name}`, 'json', 0, text);
    const diagnostics = await service.doValidation(document, service.parseJSONDocument(document));
    for (const diagnostic of diagnostics) {
      const level = diagnostic.severity === DiagnosticSeverity.Error ? 'error' : 'warning';
      problems.push(`${name}:${diagnostic.range.start.line + 1}: ${level}: ${diagnostic.message}`);
    }
  }
  process.stdout.write(JSON.stringify(problems));
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(2);
});

// Type-checks Flux queries with the WASM Flux language server from @influxdata/flux-lsp-browser.
//
// stdin: JSON [{"id": "...", "query": "..."}], Grafana template variables already substituted.
// stdout: JSON [{"id": "...", "diagnostics": [{"line", "character", "severity", "message"}]}],
// lines and characters 0-based in the query as given.
//
// Each query gets what Grafana's Flux data source provides at run time: the record `v` with
// timeRangeStart, timeRangeStop, windowPeriod, defaultBucket and organization, bound after the
// query's imports. The language server warns that `v` is a name InfluxDB may provide; that one
// warning, on the binding we add, is dropped. Every other diagnostic is reported.
//
// The package is built for bundlers (its JS glue imports the .wasm file as a module, and the
// two import each other), so this shim instantiates the .wasm itself and hands its exports to
// the glue code.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const GRAFANA_V =
  'v = {timeRangeStart: 2026-11-01T00:00:00Z, timeRangeStop: 2026-11-08T00:00:00Z, ' +
  'windowPeriod: 5m, defaultBucket: "llm_raw", organization: "llm"}';
const V_WARNING = 'Avoid using `v` as an identifier name';

async function loadFlux() {
  const require = createRequire(import.meta.url);
  const dir = dirname(require.resolve('@influxdata/flux-lsp-browser/package.json'));
  const glue = readFileSync(join(dir, 'flux-lsp-browser_bg.js'), 'utf8')
    .replace(
      /^import \* as wasm from .*$/m,
      'let wasm; export function __setWasm(exports) { wasm = exports; ' +
        'cachedInt32Memory0 = new Int32Array(wasm.memory.buffer); ' +
        'cachedUint8Memory0 = new Uint8Array(wasm.memory.buffer); }',
    )
    .replace(/^cached(Int32|Uint8)Memory0 = new .*$/gm, '');
  const flux = await import('data:text/javascript;base64,' + Buffer.from(glue).toString('base64'));
  const bytes = readFileSync(join(dir, 'flux-lsp-browser_bg.wasm'));
  const { instance } = await WebAssembly.instantiate(bytes, { './flux-lsp-browser_bg.js': flux });
  flux.__setWasm(instance.exports);
  return flux;
}

// Imports must stay first in a Flux file: put the `v` binding right after them.
function withGrafanaContext(query) {
  const lines = query.split('\n');
  let imports = 0;
  while (imports < lines.length && /^\s*(import\s|$)/.test(lines[imports])) imports += 1;
  const text = [...lines.slice(0, imports), GRAFANA_V, ...lines.slice(imports)].join('\n');
  return { text, bindingLine: imports };
}

async function startServer(flux) {
  const lsp = new flux.Lsp();
  const waiting = new Map();
  lsp.onMessage((raw) => {
    const message = JSON.parse(raw);
    if (message.method !== 'textDocument/publishDiagnostics') return;
    const resolve = waiting.get(message.params.uri);
    if (resolve) {
      waiting.delete(message.params.uri);
      resolve(message.params.diagnostics);
    }
  });
  lsp.run();
  const send = (message) => lsp.send(JSON.stringify({ jsonrpc: '2.0', ...message }));
  await send({ id: 1, method: 'initialize', params: { capabilities: {} } });
  await send({ method: 'initialized', params: {} });
  return { send, waiting };
}

// One document at a time, each in its own directory: the server treats the files of one
// directory as one package, so two open queries would clash on their shared names.
async function check(server, index, query) {
  const uri = `file:///queries/${index}/query.flux`;
  const { text, bindingLine } = withGrafanaContext(query);
  const published = new Promise((resolve) => server.waiting.set(uri, resolve));
  await server.send({
    method: 'textDocument/didOpen',
    params: { textDocument: { uri, languageId: 'flux', version: 1, text } },
  });
  const diagnostics = await published;
  await server.send({ method: 'textDocument/didClose', params: { textDocument: { uri } } });
  return diagnostics
    .filter((d) => !(d.range.start.line === bindingLine && d.message.startsWith(V_WARNING)))
    .map((d) => ({
      line: d.range.start.line > bindingLine ? d.range.start.line - 1 : d.range.start.line,
      character: d.range.start.character,
      severity: d.severity,
      message: d.message,
    }));
}

// The server logs through console.*: keep stdout for the JSON answer.
for (const level of ['log', 'info', 'debug', 'warn']) console[level] = console.error;
const queries = JSON.parse(readFileSync(0, 'utf8'));
const server = await startServer(await loadFlux());
const results = [];
for (const [index, { id, query }] of queries.entries()) {
  results.push({ id, diagnostics: await check(server, index, query) });
}
process.stdout.write(JSON.stringify(results));
process.exit(0);

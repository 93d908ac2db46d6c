// Turns a stream of Kubernetes YAML documents (kubectl kustomize's output) into one TypeScript
// file per object, `const o: DaemonSet = {...};`, typed with the npm package kubernetes-types.
// tsc --strict then rejects unknown fields (excess property checks on the fresh object literal,
// at every depth) and wrong types (a string where the API has a number, boolean or enum).
// Usage: node to_typescript.js MANIFESTS.yaml OUT_DIR NAME_PREFIX
'use strict';
const fs = require('fs');
const path = require('path');
const YAML = require('yaml');

// apiVersion -> kubernetes-types module: "v1" is core/v1, "apps/v1" apps/v1, and a group
// "networking.k8s.io/v1" is networking/v1 (the first label of the group).
function moduleFor(apiVersion) {
  const parts = apiVersion.split('/');
  if (parts.length === 1) return `kubernetes-types/core/${parts[0]}`;
  return `kubernetes-types/${parts[0].split('.')[0]}/${parts[1]}`;
}

const [input, outDir, prefix] = process.argv.slice(2);
const docs = YAML.parseAllDocuments(fs.readFileSync(input, 'utf8'));
let n = 0;
for (const doc of docs) {
  if (doc.errors.length) {
    console.error(`${input}: ${doc.errors[0].message}`);
    process.exit(2);
  }
  const obj = doc.toJS();
  if (obj === null || obj === undefined) continue;
  if (typeof obj.apiVersion !== 'string' || typeof obj.kind !== 'string') {
    console.error(`${input}: document ${n + 1} has no apiVersion/kind`);
    process.exit(2);
  }
  const mod = moduleFor(obj.apiVersion);
  const file = path.join(outDir, `${prefix}-${++n}-${obj.kind}-${obj.metadata?.name ?? 'x'}.ts`);
  // The import fails to resolve (TS2307/TS2305) for an apiVersion or kind the API does not have.
  fs.writeFileSync(file,
    `// ${obj.apiVersion} ${obj.kind} ${obj.metadata?.name ?? ''} from ${path.basename(input)}\n` +
    `import type { ${obj.kind} } from '${mod}';\n` +
    `export const o: ${obj.kind} = ${JSON.stringify(obj, null, 2)};\n`);
}
if (n === 0) {
  console.error(`${input}: no objects`);
  process.exit(2);
}
console.log(`${input}: ${n} objects`);

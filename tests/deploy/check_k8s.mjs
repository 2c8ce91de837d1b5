// Validates docker/k8s/*.yaml against the Kubernetes OpenAPI schemas (npm kubernetes-models),
// plus the facts gptd depends on: probes on /health, a grace period above the drain timeout,
// resource requests and limits, 3 replicas, the "restricted" Pod Security level. Exits 1 on any
// problem.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { Deployment } from "kubernetes-models/apps/v1";
import { Service, } from "kubernetes-models/v1";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";

const kinds = { Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget };
const dir = process.argv[2] || "docker/k8s";
let problems = 0, seen = {};
const fail = (msg) => { console.log(`FAIL - ${msg}`); problems++; };

for (const file of readdirSync(dir).filter((f) => f.endsWith(".yaml"))) {
  for (const doc of parseAllDocuments(readFileSync(join(dir, file), "utf8"))) {
    if (doc.errors.length) { fail(`${file}: ${doc.errors[0].message}`); continue; }
    const obj = doc.toJS();
    const Model = kinds[obj.kind];
    if (!Model) { fail(`${file}: unexpected kind ${obj.kind}`); continue; }
    try {
      new Model(obj).validate();
      console.log(`ok   - ${file}: ${obj.kind} ${obj.metadata.name} matches the schema`);
      seen[obj.kind] = obj;
    } catch (e) {
      fail(`${file}: ${obj.kind}: ${e.message}`);
    }
  }
}
for (const k of Object.keys(kinds)) if (!seen[k]) fail(`no ${k} manifest`);
const dep = seen.Deployment;
if (dep) {
  const pod = dep.spec.template.spec, c = pod.containers[0];
  const drain = Number((c.env || []).find((e) => e.name === "GPTD_DRAIN_TIMEOUT")?.value || 30);
  const checks = [
    [dep.spec.replicas === 3, "3 replicas"],
    [c.readinessProbe?.httpGet?.path === "/health", "readiness probe on /health"],
    [c.livenessProbe !== undefined, "liveness probe"],
    [pod.terminationGracePeriodSeconds > drain, `terminationGracePeriodSeconds above the drain timeout (${drain} s)`],
    [c.resources?.requests && c.resources?.limits, "resource requests and limits"],
    // The "restricted" Pod Security Standard, which a namespace may enforce:
    [c.securityContext?.allowPrivilegeEscalation === false, "restricted: allowPrivilegeEscalation false"],
    [JSON.stringify(c.securityContext?.capabilities?.drop) === '["ALL"]', "restricted: capabilities drop ALL"],
    [(c.securityContext?.runAsNonRoot ?? pod.securityContext?.runAsNonRoot) === true, "restricted: runAsNonRoot"],
    [(c.securityContext?.seccompProfile?.type ?? pod.securityContext?.seccompProfile?.type) === "RuntimeDefault",
     "restricted: seccompProfile RuntimeDefault"],
    [c.securityContext?.readOnlyRootFilesystem === true, "readOnlyRootFilesystem"],
  ];
  for (const [ok, what] of checks) ok ? console.log(`ok   - ${what}`) : fail(what);
}
process.exit(problems ? 1 : 0);

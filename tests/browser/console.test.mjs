// podid's web console in headless Chromium (Debian's `chromium`), driven by playwright-core.
//
// A real `podid server` on loopback; roles made with the real AWS CLI; the seed 003 flow (a
// cluster's Access tab, Create, pick a role that trusts pods.eks.amazonaws.com, the association's
// details), then `podid exec` as that service account gets the role; edit to a target role in
// another account; delete; a read-only user sees the list and gets AccessDenied on create; a
// cross-site form post is refused; sign-out ends the session. Screenshots of each page at
// 1280×800 and 390×844 go to $PODID_ARTIFACTS_DIR (default target/console-screenshots).
//
// Needs: PODID_BIN (the podid binary), PODID_AWS_CLI (the AWS CLI), and Chromium at
// PODID_CHROMIUM or /usr/bin/chromium.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, mkdirSync, existsSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

const A = "111122223333";
const B = "444455556666";
const POD_TRUST = JSON.stringify({
  Version: "2012-10-17",
  Statement: [{ Effect: "Allow", Principal: { Service: "pods.eks.amazonaws.com" }, Action: ["sts:AssumeRole", "sts:TagSession"] }],
});
const PODID = process.env.PODID_BIN;
const AWS = process.env.PODID_AWS_CLI;
const CHROMIUM = process.env.PODID_CHROMIUM || "/usr/bin/chromium";
const ARTIFACTS = resolve(process.env.PODID_ARTIFACTS_DIR || "../../target/console-screenshots");

let server, endpoint, dir, browser;

function env(profile) {
  const out = { ...process.env, AWS_CONFIG_FILE: join(dir, "data/aws/config"), AWS_SHARED_CREDENTIALS_FILE: join(dir, "data/aws/credentials") };
  for (const key of Object.keys(out)) if (key.startsWith("AWS_") && !key.endsWith("_FILE")) delete out[key];
  if (profile) out.AWS_PROFILE = profile;
  return out;
}

function aws(args, profile) {
  const out = execFileSync(AWS, [...args, "--output", "json"], { env: env(profile), encoding: "utf8" });
  return out.trim() ? JSON.parse(out) : null;
}

function podid(args, profile) {
  return execFileSync(PODID, args, { env: env(profile), encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

function adminKeys() {
  const text = readFileSync(join(dir, "data/aws/credentials"), "utf8");
  const first = text.split("[")[1];
  const value = (name) => first.match(new RegExp(`${name} = (\\S+)`))[1];
  return { id: value("aws_access_key_id"), secret: value("aws_secret_access_key") };
}

async function shoot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  for (const [w, h] of [[1280, 800], [390, 844]]) {
    await page.setViewportSize({ width: w, height: h });
    await page.screenshot({ path: join(ARTIFACTS, `${name}-${w}x${h}.png`), fullPage: true });
  }
  await page.setViewportSize({ width: 1280, height: 800 });
}

async function signIn(page, keys) {
  await page.goto(`${endpoint}/console/sign-in`);
  await page.getByLabel("Access key ID").fill(keys.id);
  await page.getByLabel("Secret access key").fill(keys.secret);
  await page.getByRole("button", { name: "Sign in" }).click();
}

before(async () => {
  assert.ok(PODID && existsSync(PODID), "PODID_BIN must name the podid binary");
  assert.ok(AWS && existsSync(AWS), "PODID_AWS_CLI must name the AWS CLI");
  dir = mkdtempSync(join(tmpdir(), "podid-console-"));
  server = spawn(PODID, ["server", "--listen", "127.0.0.1:0", "--data-dir", join(dir, "data"), "--accounts", `${A},${B}`], { env: { ...process.env, RUST_LOG: "warn" } });
  endpoint = await new Promise((resolveEndpoint, reject) => {
    let seen = "";
    server.stdout.on("data", (chunk) => {
      seen += chunk;
      const m = seen.match(/listening on (http:\/\/\S+)/);
      if (m) resolveEndpoint(m[1]);
    });
    server.on("exit", (code) => reject(new Error(`podid server exited with ${code}`)));
  });
  podid(["cluster", "create", "prod"]);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});

after(async () => {
  if (browser) await browser.close();
  if (server) server.kill("SIGTERM");
});

test("sign in, the seed 003 flow, podid exec gets the role, edit to a target role, delete", async () => {
  aws(["iam", "create-role", "--role-name", "console-pod-role", "--assume-role-policy-document", POD_TRUST]);
  aws(["iam", "create-role", "--role-name", "not-for-pods", "--assume-role-policy-document",
    JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Principal: { AWS: `arn:aws:iam::${A}:root` }, Action: "sts:AssumeRole" }] })]);
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  await page.goto(`${endpoint}/console/`);
  await shoot(page, "01-sign-in");
  await signIn(page, adminKeys());
  await page.waitForURL(/\/console\/clusters$/);
  await assert.doesNotReject(page.getByRole("link", { name: "prod" }).waitFor());
  await shoot(page, "02-clusters");
  // The cluster's Access tab, then Create.
  await page.getByRole("link", { name: "prod" }).click();
  await page.getByText("Pod Identity associations").first().waitFor();
  await page.getByRole("link", { name: "Create Pod Identity association" }).click();
  const options = await page.locator("select[name=roleArn] option").allTextContents();
  assert.ok(options.includes("console-pod-role"), options.join());
  assert.ok(!options.includes("not-for-pods"), "a role that does not trust pods is not offered");
  await page.getByText("Why is a role missing from this list?").click();
  await assert.doesNotReject(page.getByText("not-for-pods").waitFor());
  await shoot(page, "03-create");
  // EKS's validation, inline: a bad namespace.
  await page.getByLabel("Kubernetes namespace").fill("Not_Valid");
  await page.getByLabel("Kubernetes service account").fill("app");
  await page.locator("select[name=roleArn]").selectOption({ label: "console-pod-role" });
  await page.getByRole("button", { name: "Create" }).click();
  await assert.doesNotReject(page.getByRole("alert").waitFor());
  assert.match(await page.getByRole("alert").textContent(), /InvalidParameterException/);
  await page.getByLabel("Kubernetes namespace").fill("default");
  await page.locator("select[name=roleArn]").selectOption({ label: "console-pod-role" });
  await page.getByRole("button", { name: "Create" }).click();
  await page.waitForURL(/\/associations\/a-/);
  const details = await page.locator("table.details").textContent();
  assert.match(details, /console-pod-role/);
  await shoot(page, "04-association");
  await page.getByRole("link", { name: "prod" }).click();
  await page.getByRole("cell", { name: "app", exact: true }).waitFor();
  await shoot(page, "10-access-tab");
  await page.locator("a[href*='/associations/a-']").first().click();
  // The pod gets the role.
  const me = JSON.parse(podid(["exec", "--cluster", "prod", "--namespace", "default", "--service-account", "app", "--", AWS, "sts", "get-caller-identity", "--output", "json"]));
  assert.match(me.Arn, /assumed-role\/console-pod-role\//);
  // Edit: a target role in account B, trusting the pod role with the association's external id.
  aws(["iam", "put-role-policy", "--role-name", "console-pod-role", "--policy-name", "to-b", "--policy-document",
    JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: ["sts:AssumeRole", "sts:TagSession"], Resource: `arn:aws:iam::${B}:role/console-target` }] })]);
  aws(["iam", "create-role", "--role-name", "console-target", "--assume-role-policy-document", POD_TRUST], B);
  await page.getByRole("link", { name: "Edit" }).click();
  await page.getByLabel(/Target IAM role/).fill(`arn:aws:iam::${B}:role/console-target`);
  await shoot(page, "05-edit");
  await page.getByRole("button", { name: "Save changes" }).click();
  await page.waitForURL(/\/associations\/a-[^/]+\?/);
  const externalId = (await page.locator("table.details tr", { hasText: "External ID" }).locator("td").textContent()).trim();
  assert.notEqual(externalId, "—");
  aws(["iam", "update-assume-role-policy", "--role-name", "console-target", "--policy-document",
    JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Principal: { AWS: `arn:aws:iam::${A}:role/console-pod-role` }, Action: ["sts:AssumeRole", "sts:TagSession"], Condition: { StringEquals: { "sts:ExternalId": externalId } } }] })], B);
  const target = JSON.parse(podid(["exec", "--cluster", "prod", "--namespace", "default", "--service-account", "app", "--", AWS, "sts", "get-caller-identity", "--output", "json"]));
  assert.equal(target.Account, B);
  assert.match(target.Arn, /assumed-role\/console-target\//);
  // The access graph and the EKS Auth decisions.
  await page.goto(`${endpoint}/console/access?cluster=prod`);
  await assert.doesNotReject(page.locator("figure.graph svg").waitFor());
  const tooltip = await page.locator("a.edge title").first().textContent();
  assert.match(tooltip, /sts:AssumeRole/);
  await shoot(page, "06-access-graph");
  await page.goto(`${endpoint}/console/audit?cluster=prod`);
  assert.match(await page.locator("table").textContent(), /default\/app/);
  await shoot(page, "07-audit");
  // Delete, with confirmation.
  await page.goto(`${endpoint}/console/clusters/prod`);
  await page.locator("a[href*='/associations/a-']").first().click();
  await page.getByRole("link", { name: "Delete" }).click();
  await shoot(page, "08-delete");
  await page.getByRole("button", { name: "Delete" }).click();
  await page.waitForURL(/\/console\/clusters\/prod/);
  await assert.doesNotReject(page.getByText("No Pod Identity associations.").waitFor());
  // Nothing but this server was asked for.
  const origin = new URL(endpoint).origin;
  assert.deepEqual(requests.filter((u) => !u.startsWith(origin)), []);
  await context.close();
});

test("a reader sees the list and gets AccessDenied on create", async () => {
  aws(["iam", "create-user", "--user-name", "reader"]);
  aws(["iam", "put-user-policy", "--user-name", "reader", "--policy-name", "read", "--policy-document",
    JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: ["eks:List*", "eks:Describe*", "iam:ListRoles"], Resource: "*" }] })]);
  const key = aws(["iam", "create-access-key", "--user-name", "reader"]).AccessKey;
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, { id: key.AccessKeyId, secret: key.SecretAccessKey });
  await page.waitForURL(/\/console\/clusters$/);
  await page.getByRole("link", { name: "prod" }).click();
  await page.getByRole("link", { name: "Create Pod Identity association" }).click();
  await page.getByLabel("Kubernetes namespace").fill("default");
  await page.getByLabel("Kubernetes service account").fill("reader-app");
  await page.locator("select[name=roleArn]").selectOption({ label: "console-pod-role" });
  await page.getByRole("button", { name: "Create" }).click();
  const alert = await page.getByRole("alert").textContent();
  assert.match(alert, /AccessDeniedException: User: arn:aws:iam::111122223333:user\/reader is not authorized to perform: eks:CreatePodIdentityAssociation/);
  await shoot(page, "09-access-denied");
  await context.close();
});

test("a cross-site form post is refused, and sign-out ends the session", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, adminKeys());
  await page.waitForURL(/\/console\/clusters$/);
  // Another site (localhost is not 127.0.0.1's site) posts a form to the console.
  const evil = createServer((_, res) => {
    res.setHeader("content-type", "text/html");
    res.end(`<form id="f" method="post" action="${endpoint}/console/clusters/prod/associations"><input name="namespace" value="evil"><input name="serviceAccount" value="evil"><input name="roleArn" value="arn:aws:iam::${A}:role/console-pod-role"></form><script>document.getElementById("f").submit()</script>`);
  });
  await new Promise((r) => evil.listen(0, "127.0.0.1", r));
  const evilPage = await context.newPage();
  await evilPage.goto(`http://localhost:${evil.address().port}/`);
  await evilPage.waitForLoadState("networkidle");
  const refused = await evilPage.content();
  assert.match(refused, /refused|session has ended/i);
  evil.close();
  const list = aws(["eks", "list-pod-identity-associations", "--cluster-name", "prod"]);
  assert.ok(!list.associations.some((a) => a.namespace === "evil"), "the cross-site post created nothing");
  // Sign out; the old cookie opens nothing any more.
  const [cookie] = (await context.cookies()).filter((c) => c.name === "podid_console");
  assert.ok(cookie.httpOnly && cookie.sameSite === "Strict");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/\/console\/sign-in$/);
  const replay = await browser.newContext();
  await replay.addCookies([cookie]);
  const again = await replay.newPage();
  await again.goto(`${endpoint}/console/clusters`);
  assert.match(again.url(), /\/console\/sign-in$/);
  await replay.close();
  await context.close();
});

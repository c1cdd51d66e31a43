//! The `podid policy` command line, run as a user runs it: real files, real processes, exit codes.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test helpers fail loudly"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn podid(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_podid"))
        .args(args)
        .output()
        .expect("podid runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn assert_has(text: &str, needle: &str) {
    assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
}

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
        .display()
        .to_string()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn validate_reports_valid_files_and_exits_zero() {
    let o = podid(&[
        "policy",
        "validate",
        "--kind",
        "trust",
        &repo("examples/policies/pod-identity-trust.json"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("valid trust policy, 1 statement(s)"));
}

#[test]
fn validate_locates_every_problem_and_gives_the_aws_answer() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "trust.json",
        "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [{\n    \"Effect\": \"Allow\",\n    \"Principal\": {\"Service\": \"ec2.amazonaws.com\"},\n    \"Action\": \"sts:AssumeRole\",\n    \"Resource\": \"*\"\n  }]\n}\n",
    );
    let o = podid(&[
        "policy",
        "validate",
        "--kind",
        "trust",
        file.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains(
            "trust.json:7:5: error: statement 0: a role trust policy cannot have `Resource`"
        ),
        "{out}"
    );
    assert_has(
        &out,
        "AWS would answer: MalformedPolicyDocument: Has prohibited field Resource",
    );
    // JSON output for scripts.
    let o = podid(&[
        "policy",
        "validate",
        "--kind",
        "trust",
        "--output",
        "json",
        file.to_str().unwrap(),
    ]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report[0]["valid"], false);
    assert_eq!(
        report[0]["errors"][0]["aws_code"],
        "MalformedPolicyDocument"
    );
    assert_eq!(report[0]["errors"][0]["path"], "$.Statement[0].Resource");
    assert_eq!(report[0]["errors"][0]["line"], 7);
}

#[test]
fn validate_lint_errors_fail_and_warnings_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let typo = write(
        &dir,
        "typo.json",
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIpp":"10.0.0.0/8"}}}}"#,
    );
    let o = podid(&["policy", "validate", typo.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_has(
        &stdout(&o),
        "error: `aws:SourceIpp` is not a global condition key",
    );
    let warning = write(
        &dir,
        "warning.json",
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ec2:CreateTags","Resource":"*","Condition":{"StringEquals":{"aws:TagKeys":"env"}}}}"#,
    );
    let o = podid(&["policy", "validate", warning.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert_has(&stdout(&o), "warning: `aws:TagKeys` is multivalued");
}

#[test]
fn unreadable_input_exits_two_with_the_file_name() {
    let o = podid(&["policy", "validate", "/nonexistent/policy.json"]);
    assert_eq!(o.status.code(), Some(2));
    assert_has(&stderr(&o), "cannot read `/nonexistent/policy.json`");
    let o = podid(&["policy", "validate", "--kind", "nonsense", "x.json"]);
    assert_eq!(o.status.code(), Some(2));
    assert_has(
        &stderr(&o),
        "possible values: identity, trust, resource, boundary, session",
    );
}

#[test]
fn cases_pass_with_a_summary_line() {
    let o = podid(&[
        "policy",
        "simulate",
        "--cases",
        &repo("crates/podid-policy/tests/data/iam-cases.json"),
        &repo("examples/policies/cases.json"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(stdout(&o).lines().last(), Some("84 passed, 0 failed"));
}

#[test]
fn failing_cases_are_printed_with_expected_got_and_trace() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "cases.json",
        r#"[
  {"name": "wrongly expects allow",
   "policies": {"identity": [{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::a/*"}]}]},
   "request": {"principal": {"type": "User", "arn": "arn:aws:iam::111111111111:user/alice"},
               "action": "s3:GetObject", "resource": "arn:aws:s3:::b/k"},
   "expected": "Allow"},
  {"name": "right",
   "policies": {},
   "request": {"principal": {"type": "User", "arn": "arn:aws:iam::111111111111:user/alice"},
               "action": "s3:GetObject", "resource": "arn:aws:s3:::b/k"},
   "expected": "ImplicitDeny"}
]"#,
    );
    let o = podid(&["policy", "simulate", "--cases", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert_has(&out, "FAIL wrongly expects allow");
    assert_has(&out, "cases.json:2): expected Allow, got ImplicitDeny");
    assert_has(
        &out,
        "reason: no identity-based policy allows `s3:GetObject`",
    );
    assert_has(
        &out,
        "not applied: identity-based policy `identity[0]` statement 0 (line 3): its resources do not cover `arn:aws:s3:::b/k`",
    );
    assert!(!out.contains("FAIL right"));
    assert_eq!(out.lines().last(), Some("1 passed, 1 failed"));
}

#[test]
fn malformed_case_files_name_the_file_and_the_json_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "bad.json",
        r#"[{"name": "x", "request": {"principal": {"type": "Robot"}, "action": "s3:GetObject", "resource": "*"}, "expected": "Allow"}]"#,
    );
    let o = podid(&["policy", "simulate", "--cases", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_has(
        &err,
        "bad.json: malformed case file: unknown principal type `Robot`",
    );
    assert_has(&err, "at `$[0].request.principal.type`, line 1, column 50");
    let policy = write(
        &dir,
        "policy.json",
        r#"[{"name": "x", "policies": {"identity": [{"Statement": [{"Effect": "Allow", "Action": "s3:*"}]}]}, "request": {"principal": {"type": "Anonymous"}, "action": "s3:GetObject", "resource": "*"}, "expected": "Allow"}]"#,
    );
    let o = podid(&["policy", "simulate", "--cases", policy.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert_has(
        &stderr(&o),
        "invalid identity policy: the statement has no `Resource`",
    );
    assert_has(&stderr(&o), "$[0].policies.identity[0].Statement[0]");
}

#[test]
fn one_question_allowed_and_denied() {
    let trust = repo("examples/policies/pod-identity-trust.json");
    let base = [
        "policy",
        "simulate",
        "--trust-policy",
        &trust,
        "--principal",
        "pods.eks.amazonaws.com",
        "--action",
        "sts:AssumeRole",
        "--resource",
        "arn:aws:iam::111122223333:role/app",
        "--context",
        "aws:RequestTag/kubernetes-service-account=api",
    ];
    let mut allowed = base.to_vec();
    allowed.extend(["--context", "aws:RequestTag/kubernetes-namespace=prod"]);
    let o = podid(&allowed);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).starts_with("decision: Allow"));
    let mut denied = base.to_vec();
    denied.extend([
        "--context",
        "aws:RequestTag/kubernetes-namespace=dev",
        "--output",
        "json",
    ]);
    let o = podid(&denied);
    assert_eq!(o.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["decision"], "ImplicitDeny");
    assert_eq!(report["missing"], "trust");
    assert_eq!(
        report["not_applied"][0]["why"],
        "condition `StringEquals` on `aws:RequestTag/kubernetes-namespace` (`prod`) is not met: the request has `dev`"
    );
    assert!(
        report["access_denied_message"]
            .as_str()
            .unwrap()
            .ends_with("because no role trust policy allows the sts:AssumeRole action")
    );
}

#[test]
fn one_question_with_a_session_and_a_bucket_policy() {
    let dir = tempfile::tempdir().unwrap();
    let identity = write(
        &dir,
        "identity.json",
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::data/${aws:PrincipalTag/team}/*"}}"#,
    );
    let o = podid(&[
        "policy",
        "simulate",
        "--identity-policy",
        identity.to_str().unwrap(),
        "--principal",
        "arn:aws:sts::111122223333:assumed-role/app/s1",
        "--action",
        "s3:GetObject",
        "--resource",
        "arn:aws:s3:::data/blue/x",
        "--context",
        "aws:PrincipalTag/team=blue",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let o = podid(&[
        "policy",
        "simulate",
        "--identity-policy",
        identity.to_str().unwrap(),
        "--principal",
        "arn:aws:iam::111122223333:role/app",
        "--action",
        "s3:GetObject",
        "--resource",
        "arn:aws:s3:::data/blue/x",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_has(&stderr(&o), "a role acts through sessions");
}

#[test]
fn help_teaches() {
    let o = podid(&["policy", "simulate", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    for needle in [
        "--cases",
        "N passed, M failed",
        "Exit code 0 if allowed",
        "podid policy simulate --cases",
        "--context <KEY=VALUE>",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    let o = podid(&["--help"]);
    assert!(stdout(&o).contains("Exit codes: 0 success"));
}

#[test]
fn invalid_utf8_is_a_located_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.json");
    std::fs::write(&path, b"{\"Version\":\"2012-10-17\",\"Id\":\"caf\xe9\"}").unwrap();
    let o = podid(&["policy", "validate", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_has(
        &stdout(&o),
        "the file is not UTF-8 text (invalid byte at offset 33)",
    );
    let o = podid(&["policy", "simulate", "--cases", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert_has(&stderr(&o), "the text is not valid UTF-8");
}

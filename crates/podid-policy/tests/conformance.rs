//! Every case of AWS-derived conformance data (`shared/conformance/iam-cases.json`, copied into
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers fail loudly"
)]
//! `tests/data/`) must be decided as expected. A missing or emptied file fails this test.

use podid_policy::Case;

#[test]
fn every_conformance_case_is_decided_as_expected() {
    run_file("iam-cases.json", 81);
}

/// Cases of the same rules written for podid (decisions the public file does not pin down,
/// regressions from reviews); same format, same runner.
#[test]
fn podids_own_cases_are_decided_as_expected() {
    run_file("podid-cases.json", 11);
}

/// ARN patterns with fewer than six fields in ARN conditions (which never match) and in
/// `Resource`/`NotResource` (where the missing fields are `*`): issue 21, docs/policy-engine.md.
#[test]
fn short_arn_cases_are_decided_as_expected() {
    run_file("arn-short-cases.json", 104);
}

fn run_file(name: &str, at_least: usize) {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let cases = Case::load(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(
        cases.len() >= at_least,
        "{path} has only {} cases; it should have at least {at_least}",
        cases.len()
    );
    let failures: Vec<String> = cases
        .iter()
        .map(Case::run)
        .filter(|r| !r.passed())
        .map(|r| {
            format!(
                "{} (line {}): expected {}, got {}\n{}",
                r.name,
                r.position.line,
                r.expected.as_str(),
                r.explanation.outcome.as_str(),
                r.explanation
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The runner itself: a case with the wrong expectation fails.
#[test]
fn a_wrong_expectation_fails() {
    let text = br#"[{"name": "wrong", "request": {"principal": {"type": "Anonymous"}, "action": "s3:GetObject", "resource": "*"}, "expected": "Allow"}]"#;
    let cases = Case::load(text).unwrap();
    let result = cases[0].run();
    assert!(!result.passed());
    assert_eq!(
        result.explanation.outcome,
        podid_policy::Outcome::ImplicitDeny
    );
}

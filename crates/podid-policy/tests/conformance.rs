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
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/iam-cases.json");
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let cases = Case::load(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(
        cases.len() >= 81,
        "{path} has only {} cases; it should have at least 81",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let result = case.run();
        if !result.passed() {
            failures.push(format!(
                "{} (line {}): expected {}, got {}\n{}",
                result.name,
                result.position.line,
                result.expected.as_str(),
                result.explanation.outcome.as_str(),
                result.explanation
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Cases of the same rules written for podid (decisions the public file does not pin down,
/// regressions from reviews); same format, same runner.
#[test]
fn podids_own_cases_are_decided_as_expected() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/podid-cases.json");
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let cases = Case::load(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(cases.len() >= 11, "{path} has only {} cases", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .map(Case::run)
        .filter(|r| !r.passed())
        .map(|r| {
            format!(
                "{}: expected {}, got {}\n{}",
                r.name,
                r.expected.as_str(),
                r.explanation.outcome.as_str(),
                r.explanation
            )
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
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

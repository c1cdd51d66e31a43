//! Condition operators, one family at a time, with their qualifiers and `IfExists`, evaluated
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers fail loudly"
)]
//! through the public API: one identity statement with the condition, one request.

mod common;

use common::*;
use podid_policy::{Context, ContextValue, PolicySet};

/// Whether `{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":condition}`
/// allows a request with `context`.
fn allows(condition: &str, context: &Context) -> bool {
    allows_in(condition, context, "2012-10-17")
}

fn allows_in(condition: &str, context: &Context, version: &str) -> bool {
    let text = format!(
        r#"{{"Version":"{version}","Statement":[{{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{condition}}}]}}"#
    );
    let set = PolicySet::new().identity(identity(&text));
    decide(&set, &alice(), "s3:GetObject", "arn:aws:s3:::b/k", context).is_allowed()
}

fn one(key: &str, value: &str) -> Context {
    Context::new().with(key, value)
}

fn many(key: &str, values: &[&str]) -> Context {
    Context::new().with(key, list(values))
}

fn none() -> Context {
    Context::new()
}

#[test]
fn string_equals_is_exact_and_case_sensitive() {
    let c = r#"{"StringEquals":{"s3:prefix":["a*","home/"]}}"#;
    assert!(allows(c, &one("s3:prefix", "home/")));
    assert!(allows(c, &one("s3:prefix", "a*")));
    assert!(!allows(c, &one("s3:prefix", "abc")), "no wildcards");
    assert!(!allows(c, &one("s3:prefix", "HOME/")), "case-sensitive");
    assert!(!allows(c, &none()), "missing key");
}

#[test]
fn string_not_equals_is_nor_and_true_when_missing() {
    let c = r#"{"StringNotEquals":{"s3:prefix":["a","b"]}}"#;
    assert!(allows(c, &one("s3:prefix", "c")));
    assert!(!allows(c, &one("s3:prefix", "a")));
    assert!(!allows(c, &one("s3:prefix", "b")));
    assert!(allows(c, &none()), "negated operator + missing key = true");
}

#[test]
fn string_ignore_case() {
    let c = r#"{"StringEqualsIgnoreCase":{"aws:PrincipalTag/dept":"Finance"}}"#;
    assert!(allows(c, &one("aws:PrincipalTag/dept", "FINANCE")));
    assert!(allows(c, &one("aws:PrincipalTag/dept", "finance")));
    assert!(!allows(c, &one("aws:PrincipalTag/dept", "finances")));
    let n = r#"{"StringNotEqualsIgnoreCase":{"aws:PrincipalTag/dept":"Finance"}}"#;
    assert!(!allows(n, &one("aws:PrincipalTag/dept", "fINANCE")));
    assert!(allows(n, &one("aws:PrincipalTag/dept", "hr")));
    // Non-ASCII letters fold too.
    let u = r#"{"StringEqualsIgnoreCase":{"aws:PrincipalTag/city":"ÉVORA"}}"#;
    assert!(allows(u, &one("aws:PrincipalTag/city", "évora")));
}

#[test]
fn string_like_wildcards() {
    let c = r#"{"StringLike":{"s3:prefix":["home/*/docs","tmp?"]}}"#;
    assert!(allows(c, &one("s3:prefix", "home/alice/docs")));
    assert!(
        allows(c, &one("s3:prefix", "home/a/b/docs")),
        "* spans slashes"
    );
    assert!(allows(c, &one("s3:prefix", "tmp1")));
    assert!(!allows(c, &one("s3:prefix", "tmp12")), "? is one character");
    assert!(
        !allows(c, &one("s3:prefix", "Home/alice/docs")),
        "case-sensitive"
    );
    let n = r#"{"StringNotLike":{"s3:prefix":"secret*"}}"#;
    assert!(allows(n, &one("s3:prefix", "public/x")));
    assert!(!allows(n, &one("s3:prefix", "secret/x")));
    assert!(allows(n, &none()));
}

#[test]
fn numeric_comparisons() {
    let cases = [
        ("NumericEquals", "10", true),
        ("NumericEquals", "10.0", true),
        ("NumericEquals", "11", false),
        ("NumericNotEquals", "11", true),
        ("NumericNotEquals", "10", false),
        ("NumericLessThan", "9", true),
        ("NumericLessThan", "10", false),
        ("NumericLessThanEquals", "10", true),
        ("NumericLessThanEquals", "10.5", false),
        ("NumericGreaterThan", "11", true),
        ("NumericGreaterThan", "10", false),
        ("NumericGreaterThanEquals", "10", true),
        ("NumericGreaterThanEquals", "-1", false),
    ];
    for (op, value, expected) in cases {
        let c = format!(r#"{{"{op}":{{"s3:max-keys":"10"}}}}"#);
        assert_eq!(
            allows(&c, &one("s3:max-keys", value)),
            expected,
            "{op} {value}"
        );
    }
    // A JSON number in the policy is the same as a string.
    assert!(allows(
        r#"{"NumericLessThanEquals":{"s3:max-keys":10}}"#,
        &one("s3:max-keys", "3")
    ));
    // A request value that is not a number matches nothing.
    assert!(!allows(
        r#"{"NumericLessThan":{"s3:max-keys":"10"}}"#,
        &one("s3:max-keys", "few")
    ));
    assert!(allows(
        r#"{"NumericNotEquals":{"s3:max-keys":"10"}}"#,
        &none()
    ));
}

#[test]
fn date_comparisons_accept_iso_and_epoch() {
    let now = one("aws:CurrentTime", "2024-05-01T12:00:00Z");
    assert!(allows(
        r#"{"DateGreaterThan":{"aws:CurrentTime":"2024-01-01T00:00:00Z"}}"#,
        &now
    ));
    assert!(!allows(
        r#"{"DateLessThan":{"aws:CurrentTime":"2024-01-01"}}"#,
        &now
    ));
    assert!(allows(
        r#"{"DateEquals":{"aws:CurrentTime":"2024-05-01T14:00:00+02:00"}}"#,
        &now
    ));
    assert!(allows(
        r#"{"DateNotEquals":{"aws:CurrentTime":"2024-05-01T12:00:01Z"}}"#,
        &now
    ));
    assert!(
        allows(
            r#"{"DateLessThanEquals":{"aws:CurrentTime":"1714564800"}}"#,
            &now
        ),
        "epoch seconds"
    );
    assert!(allows(
        r#"{"DateGreaterThanEquals":{"aws:CurrentTime":"2024-05-01T12:00:00Z"}}"#,
        &now
    ));
    // aws:EpochTime works with Date and Numeric operators.
    let epoch = one("aws:EpochTime", "1714564800");
    assert!(allows(
        r#"{"DateGreaterThan":{"aws:EpochTime":"2024-05-01T11:59:59Z"}}"#,
        &epoch
    ));
    assert!(allows(
        r#"{"NumericGreaterThan":{"aws:EpochTime":"1714564799"}}"#,
        &epoch
    ));
}

#[test]
fn bool_and_null() {
    let c = r#"{"Bool":{"aws:SecureTransport":"true"}}"#;
    assert!(allows(c, &one("aws:SecureTransport", "true")));
    assert!(allows(c, &one("aws:SecureTransport", "TRUE")));
    assert!(!allows(c, &one("aws:SecureTransport", "false")));
    assert!(!allows(c, &none()));
    assert!(allows(
        r#"{"Bool":{"aws:SecureTransport":true}}"#,
        &one("aws:SecureTransport", "true")
    ));
    let null = r#"{"Null":{"aws:TokenIssueTime":"true"}}"#;
    assert!(allows(null, &none()));
    assert!(!allows(
        null,
        &one("aws:TokenIssueTime", "2024-01-01T00:00:00Z")
    ));
    let present = r#"{"Null":{"aws:TokenIssueTime":"false"}}"#;
    assert!(allows(
        present,
        &one("aws:TokenIssueTime", "2024-01-01T00:00:00Z")
    ));
    assert!(!allows(present, &none()));
    // An empty list counts as absent.
    assert!(allows(
        r#"{"Null":{"aws:TagKeys":"true"}}"#,
        &many("aws:TagKeys", &[])
    ));
}

#[test]
fn binary_equals_compares_bytes() {
    let c = r#"{"BinaryEquals":{"s3:blob":"aGVsbG8="}}"#;
    assert!(allows(c, &one("s3:blob", "aGVsbG8=")));
    assert!(
        allows(c, &one("s3:blob", "hello")),
        "raw bytes of a non-base64 value"
    );
    assert!(!allows(c, &one("s3:blob", "aGVsbG9v")));
}

#[test]
fn ip_address_v4_and_v6() {
    let c = r#"{"IpAddress":{"aws:SourceIp":["203.0.113.0/24","2001:DB8:1234:5678::/64"]}}"#;
    assert!(allows(c, &one("aws:SourceIp", "203.0.113.7")));
    assert!(allows(c, &one("aws:SourceIp", "2001:db8:1234:5678::1")));
    assert!(!allows(c, &one("aws:SourceIp", "203.0.114.7")));
    assert!(!allows(c, &one("aws:SourceIp", "not-an-ip")));
    let exact = r#"{"IpAddress":{"aws:SourceIp":"203.0.113.5"}}"#;
    assert!(allows(exact, &one("aws:SourceIp", "203.0.113.5")));
    assert!(
        !allows(exact, &one("aws:SourceIp", "203.0.113.6")),
        "no prefix is /32"
    );
    let not = r#"{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#;
    assert!(allows(not, &one("aws:SourceIp", "192.0.2.1")));
    assert!(!allows(not, &one("aws:SourceIp", "10.1.2.3")));
    assert!(allows(not, &none()));
}

#[test]
fn arn_operators_match_component_by_component() {
    let c = r#"{"ArnLike":{"aws:SourceArn":"arn:aws:sqs:*:111122223333:queue-*"}}"#;
    assert!(allows(
        c,
        &one(
            "aws:SourceArn",
            "arn:aws:sqs:us-east-1:111122223333:queue-1"
        )
    ));
    assert!(!allows(
        c,
        &one(
            "aws:SourceArn",
            "arn:aws:sqs:us-east-1:999999999999:queue-1"
        )
    ));
    assert!(
        !allows(
            c,
            &one(
                "aws:SourceArn",
                "arn:aws:sqs:us-east-1:x:111122223333:queue-1"
            )
        ),
        "* never crosses a colon"
    );
    assert!(!allows(c, &one("aws:SourceArn", "not-an-arn")));
    let equals = r#"{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::111111111111:user/*"}}"#;
    assert!(
        allows(equals, &none()),
        "ArnEquals is ArnLike; aws:PrincipalArn is derived from the caller"
    );
    let not = r#"{"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::111111111111:role/*"}}"#;
    assert!(allows(not, &none()));
    let not_equals =
        r#"{"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::111111111111:user/alice"}}"#;
    assert!(!allows(not_equals, &none()));
}

#[test]
fn if_exists_is_true_when_missing_and_the_base_operator_otherwise() {
    let c = r#"{"StringEqualsIfExists":{"aws:ResourceTag/env":"dev"}}"#;
    assert!(allows(c, &none()));
    assert!(allows(c, &one("aws:ResourceTag/env", "dev")));
    assert!(!allows(c, &one("aws:ResourceTag/env", "prod")));
    let n = r#"{"NumericLessThanIfExists":{"s3:max-keys":"10"}}"#;
    assert!(allows(n, &none()));
    assert!(!allows(n, &one("s3:max-keys", "20")));
}

#[test]
fn for_all_values() {
    let c = r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["env","owner"]}}"#;
    assert!(allows(c, &many("aws:TagKeys", &["env"])));
    assert!(allows(c, &many("aws:TagKeys", &["env", "owner"])));
    assert!(!allows(c, &many("aws:TagKeys", &["env", "cost"])));
    assert!(allows(c, &none()), "true when the key is missing");
    assert!(
        allows(c, &many("aws:TagKeys", &[])),
        "true when the key is empty"
    );
    // With a negated operator the per-value test is negated.
    let n = r#"{"ForAllValues:StringNotLike":{"aws:TagKeys":"key1*"}}"#;
    assert!(allows(n, &many("aws:TagKeys", &["key2:audit"])));
    assert!(!allows(n, &many("aws:TagKeys", &["key1:legal"])));
    assert!(!allows(n, &many("aws:TagKeys", &["key2", "key1:legal"])));
    assert!(allows(n, &none()));
}

#[test]
fn for_any_value() {
    let c = r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["env"]}}"#;
    assert!(allows(c, &many("aws:TagKeys", &["owner", "env"])));
    assert!(!allows(c, &many("aws:TagKeys", &["owner"])));
    assert!(!allows(c, &none()), "false when the key is missing");
    assert!(
        !allows(c, &many("aws:TagKeys", &[])),
        "false when the key is empty"
    );
    let n = r#"{"ForAnyValue:StringNotEquals":{"aws:TagKeys":["env"]}}"#;
    assert!(allows(n, &many("aws:TagKeys", &["env", "owner"])));
    assert!(!allows(n, &many("aws:TagKeys", &["env"])));
    let if_exists = r#"{"ForAnyValue:StringEqualsIfExists":{"aws:TagKeys":["env"]}}"#;
    assert!(allows(if_exists, &none()));
}

#[test]
fn unqualified_operator_on_a_multivalued_key_matches_any_value() {
    let c = r#"{"StringEquals":{"aws:TagKeys":"env"}}"#;
    assert!(allows(c, &many("aws:TagKeys", &["owner", "env"])));
    assert!(!allows(c, &many("aws:TagKeys", &["owner"])));
    let n = r#"{"StringNotEquals":{"aws:TagKeys":"env"}}"#;
    assert!(!allows(n, &many("aws:TagKeys", &["owner", "env"])));
    assert!(allows(n, &many("aws:TagKeys", &["owner"])));
}

#[test]
fn operators_and_keys_and_values_combine_as_and_and_or() {
    let c = r#"{"StringEquals":{"aws:PrincipalTag/a":["1","2"],"aws:PrincipalTag/b":"x"},"Bool":{"aws:SecureTransport":"true"}}"#;
    let full = Context::new()
        .with("aws:PrincipalTag/a", "2")
        .with("aws:PrincipalTag/b", "x")
        .with("aws:SecureTransport", "true");
    assert!(allows(c, &full));
    assert!(
        !allows(c, &full.clone().with("aws:PrincipalTag/b", "y")),
        "keys AND"
    );
    assert!(
        !allows(c, &full.clone().with("aws:SecureTransport", "false")),
        "operators AND"
    );
    assert!(
        allows(c, &full.clone().with("aws:PrincipalTag/a", "1")),
        "values OR"
    );
}

#[test]
fn condition_key_names_are_case_insensitive_values_are_not() {
    let c = r#"{"IpAddress":{"AWS:SOURCEIP":"10.0.0.0/8"},"StringEquals":{"aws:principaltag/TEAM":"Blue"}}"#;
    let ctx = Context::new()
        .with("aws:SourceIp", "10.1.1.1")
        .with("aws:PrincipalTag/team", "Blue");
    assert!(allows(c, &ctx));
    assert!(!allows(
        c,
        &ctx.clone().with("aws:PrincipalTag/Team", "blue")
    ));
}

#[test]
fn empty_value_lists_match_nothing() {
    assert!(!allows(
        r#"{"StringEquals":{"s3:prefix":[]}}"#,
        &one("s3:prefix", "a")
    ));
    assert!(allows(
        r#"{"StringNotEquals":{"s3:prefix":[]}}"#,
        &one("s3:prefix", "a")
    ));
}

#[test]
fn variables_in_conditions() {
    let c = r#"{"StringEquals":{"s3:prefix":"home/${aws:username}/"}}"#;
    assert!(allows(c, &one("s3:prefix", "home/alice/")));
    assert!(!allows(c, &one("s3:prefix", "home/bob/")));
    // Variable names are case-insensitive.
    assert!(allows(
        r#"{"StringEquals":{"s3:prefix":"${AWS:UserName}"}}"#,
        &one("s3:prefix", "alice")
    ));
    // In StringLike a variable's value is literal, text around it keeps its wildcards.
    let like = r#"{"StringLike":{"s3:prefix":"${aws:PrincipalTag/team}/*"}}"#;
    let team = Context::new()
        .with("aws:PrincipalTag/team", "a*")
        .with("s3:prefix", "a*/x");
    assert!(allows(like, &team));
    let other = Context::new()
        .with("aws:PrincipalTag/team", "a*")
        .with("s3:prefix", "abc/x");
    assert!(!allows(like, &other), "a value's `*` is not a wildcard");
    // Defaults.
    let default = r#"{"StringEquals":{"s3:prefix":"${aws:PrincipalTag/team, 'shared'}"}}"#;
    assert!(allows(default, &one("s3:prefix", "shared")));
    // ${*}, ${?}, ${$}.
    let special = r#"{"StringEquals":{"s3:prefix":"a${*}b${?}c${$}"}}"#;
    assert!(allows(special, &one("s3:prefix", "a*b?c$")));
    // Unresolved: positive operators do not match, negated ones do.
    assert!(!allows(
        r#"{"StringEquals":{"s3:prefix":"${aws:PrincipalTag/none}"}}"#,
        &one("s3:prefix", "")
    ));
    assert!(allows(
        r#"{"StringNotEquals":{"s3:prefix":"${aws:PrincipalTag/none}"}}"#,
        &one("s3:prefix", "x")
    ));
    // Multivalued keys do not resolve.
    let multi = Context::new()
        .with("aws:TagKeys", list(&["a"]))
        .with("s3:prefix", "a");
    assert!(!allows(
        r#"{"StringEquals":{"s3:prefix":"${aws:TagKeys}"}}"#,
        &multi
    ));
    // ARN operators take variables.
    assert!(allows(
        r#"{"ArnLike":{"aws:SourceArn":"arn:aws:sqs:*:*:${aws:username}-*"}}"#,
        &one(
            "aws:SourceArn",
            "arn:aws:sqs:us-east-1:111122223333:alice-q"
        )
    ));
}

#[test]
fn variables_are_text_in_old_versions_and_in_other_operators() {
    let c = r#"{"StringEquals":{"s3:prefix":"${aws:username}"}}"#;
    assert!(!allows_in(c, &one("s3:prefix", "alice"), "2008-10-17"));
    assert!(allows_in(
        c,
        &one("s3:prefix", "${aws:username}"),
        "2008-10-17"
    ));
    // Numeric values never take variables.
    assert!(!allows(
        r#"{"NumericEquals":{"s3:max-keys":"${aws:PrincipalTag/n}"}}"#,
        &Context::new()
            .with("aws:PrincipalTag/n", "1")
            .with("s3:max-keys", "1")
    ));
}

#[test]
fn context_values_given_as_lists_of_one_behave_as_single_values() {
    let c = r#"{"StringEquals":{"aws:PrincipalTag/team":"blue"}}"#;
    let ctx = Context::new().with(
        "aws:PrincipalTag/team",
        ContextValue::Many(vec!["blue".into()]),
    );
    assert!(allows(c, &ctx));
}

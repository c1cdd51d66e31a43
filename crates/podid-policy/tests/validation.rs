//! Validation per policy kind: what is rejected, AWS's code and message for it, and where podid
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers fail loudly"
)]
//! says the problem is. Also bad input of every sort: never a panic, always a located error.

use podid_policy::{ErrorKind, ParseOptions, Policy, PolicyErrors, PolicyKind};

fn errors(kind: PolicyKind, text: &str) -> PolicyErrors {
    match Policy::parse(text, kind) {
        Ok(_) => panic!("{kind} policy accepted but should not be:\n{text}"),
        Err(e) => e,
    }
}

/// The AWS message of the error AWS would report.
fn aws(kind: PolicyKind, text: &str) -> String {
    errors(kind, text).first().aws_message()
}

fn ok(kind: PolicyKind, text: &str) -> Policy {
    Policy::parse(text, kind).unwrap_or_else(|e| panic!("{kind} policy rejected: {e}\n{text}"))
}

fn identity(statement: &str) -> String {
    format!(r#"{{"Version":"2012-10-17","Statement":[{statement}]}}"#)
}

const ID: PolicyKind = PolicyKind::Identity;
const TRUST: PolicyKind = PolicyKind::Trust;

#[test]
fn invalid_json_gets_each_kinds_text() {
    assert_eq!(aws(ID, "{not json"), "Syntax errors in policy.");
    assert_eq!(aws(TRUST, "{not json"), "This policy contains invalid Json");
    assert_eq!(
        aws(PolicyKind::Session, "{not json"),
        "The policy is not in the valid JSON format."
    );
    let e = errors(
        ID,
        "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [,]\n}",
    );
    let first = e.first();
    assert_eq!(first.aws_code(), "MalformedPolicyDocument");
    assert_eq!(first.position().unwrap().line, 3);
    assert!(first.to_string().contains("not valid JSON"), "{first}");
}

#[test]
fn grammar_errors_are_syntax_errors_with_a_location() {
    let cases = [
        ("[]", "$"),
        (r#"{"Version":"2012-10-17"}"#, "$"),
        (r#"{"Version":"2012-10-17","Statement":[]}"#, "$.Statement"),
        (
            r#"{"Version":"2013-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#,
            "$.Version",
        ),
        (
            &identity(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condtion":{}}"#),
            "$.Statement[0].Condtion",
        ),
        (
            &identity(r#"{"Effect":"Permit","Action":"s3:*","Resource":"*"}"#),
            "$.Statement[0].Effect",
        ),
        (
            &identity(r#"{"Action":"s3:*","Resource":"*"}"#),
            "$.Statement[0]",
        ),
        (
            &identity(r#"{"Effect":"Allow","Action":"s3:*","NotAction":"s3:Get*","Resource":"*"}"#),
            "$.Statement[0].NotAction",
        ),
        (
            &identity(r#"{"Effect":"Allow","Action":{},"Resource":"*"}"#),
            "$.Statement[0].Action",
        ),
        (
            &identity(r#"{"Effect":"Allow","Action":["s3:*",1],"Resource":"*"}"#),
            "$.Statement[0].Action[1]",
        ),
        (
            &identity(r#"{"Sid":[],"Effect":"Allow","Action":"s3:*","Resource":"*"}"#),
            "$.Statement[0].Sid",
        ),
        (
            &identity(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":[]}"#),
            "$.Statement[0].Condition",
        ),
        (
            &identity(
                r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEqualz":{"a:b":"c"}}}"#,
            ),
            "$.Statement[0].Condition.StringEqualz",
        ),
        (
            &identity(
                r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"a:b":{}}}}"#,
            ),
            "$.Statement[0].Condition.StringEquals.a:b",
        ),
        (
            &identity(
                r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"a:b":[null]}}}"#,
            ),
            "$.Statement[0].Condition.StringEquals.a:b[0]",
        ),
        (
            &identity(
                r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"ForAnyValue::StringEquals":{"a:b":"c"}}}"#,
            ),
            "$.Statement[0].Condition.ForAnyValue::StringEquals",
        ),
        (&identity(r#""just a string""#), "$.Statement[0]"),
    ];
    for (text, path) in cases {
        let e = errors(ID, text);
        assert_eq!(
            e.first().aws_message(),
            "Syntax errors in policy.",
            "{text}"
        );
        assert_eq!(e.first().path(), path, "{text}");
        assert!(e.first().position().is_some(), "{text}");
    }
}

#[test]
fn unknown_operators_suggest_the_right_one() {
    let e = errors(
        ID,
        &identity(
            r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEqualz":{"a:b":"c"}}}"#,
        ),
    );
    assert_eq!(
        e.first().kind(),
        &ErrorKind::UnknownOperator {
            operator: "StringEqualz".into(),
            suggestion: Some("StringEquals")
        }
    );
    assert!(
        e.first()
            .to_string()
            .contains("did you mean `StringEquals`?")
    );
    // IAM accepts an unknown operator with no keys.
    ok(
        ID,
        &identity(
            r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"Whatever":{}}}"#,
        ),
    );
}

#[test]
fn identity_policies_need_version_2012() {
    let statement = r#""Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}"#;
    for text in [
        format!("{{{statement}}}"),
        format!(r#"{{"Version":"2008-10-17",{statement}}}"#),
    ] {
        assert_eq!(
            aws(ID, &text),
            "Policy document must be version 2012-10-17 or greater."
        );
        assert_eq!(
            aws(PolicyKind::Boundary, &text),
            "Policy document must be version 2012-10-17 or greater."
        );
        // Trust and resource policies accept the old version and none.
        Policy::parse(
            &text.replace(r#""Resource":"*""#, r#""Principal":"*","Resource":"*""#),
            PolicyKind::Resource,
        )
        .unwrap();
        // Simulations read any version.
        Policy::parse_with(&text, ParseOptions::simulation(ID)).unwrap();
    }
}

#[test]
fn legacy_parser_rejections() {
    let legacy = "The policy failed legacy parsing";
    assert_eq!(
        aws(
            ID,
            &identity(r#"{"Effect":"allow","Action":"s3:*","Resource":"*"}"#)
        ),
        legacy
    );
    assert_eq!(
        aws(
            ID,
            &identity(
                r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"yesterday"}}}"#
            )
        ),
        legacy
    );
    assert_eq!(
        aws(
            ID,
            &identity(
                r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3::example_bucket"}"#
            )
        ),
        legacy
    );
    assert_eq!(
        aws(
            ID,
            &identity(
                r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws::::example_bucket"}"#
            )
        ),
        legacy
    );
    // Fewer than six fields with an empty one (`::`) fails the legacy parser (issue 21); without
    // `::` IAM accepts the short ARN and reads the missing fields as `*`.
    for short in [
        "arn:aws:iam::*",
        "arn:aws:iam::111122223333",
        "arn:aws:s3:::",
    ] {
        let document = identity(&format!(
            r#"{{"Effect":"Allow","Action":"iam:*","Resource":"{short}"}}"#
        ));
        let expected = if short.matches(':').count() < 5 {
            Some(legacy)
        } else {
            None
        };
        assert_eq!(
            Policy::parse(&document, PolicyKind::Identity)
                .err()
                .map(|e| e.first().aws_message()),
            expected.map(str::to_owned),
            "{short}"
        );
    }
    for short in ["arn:aws:sns:us-east-1:*", "arn:aws:sns:*", "arn:aws:sns"] {
        ok(
            ID,
            &identity(&format!(
                r#"{{"Effect":"Allow","Action":"sns:*","Resource":"{short}"}}"#
            )),
        );
    }
    let before =
        r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"},"Version":"2012-10-17"}"#;
    assert_eq!(aws(ID, before), legacy);
    // An array of statements before Version is fine.
    ok(
        ID,
        r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}],"Version":"2012-10-17"}"#,
    );
}

#[test]
fn statement_ids() {
    let dup = identity(
        r#"{"Sid":"A","Effect":"Allow","Action":"s3:*","Resource":"*"},{"Sid":"A","Effect":"Deny","Action":"s3:*","Resource":"*"}"#,
    );
    let e = errors(ID, &dup);
    assert_eq!(
        e.first().aws_message(),
        "Statement IDs (SID) in a single policy must be unique."
    );
    assert_eq!(e.first().statement(), Some((1, Some("A"))));
    assert_eq!(
        aws(
            ID,
            &identity(r#"{"Sid":"allow-s3","Effect":"Allow","Action":"s3:*","Resource":"*"}"#)
        ),
        "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular expression [0-9A-Za-z]*"
    );
    // Empty Sids may repeat; resource policies may use any characters.
    ok(
        ID,
        &identity(
            r#"{"Sid":"","Effect":"Allow","Action":"s3:*","Resource":"*"},{"Sid":"","Effect":"Allow","Action":"s3:*","Resource":"*"}"#,
        ),
    );
    ok(
        PolicyKind::Resource,
        &identity(
            r#"{"Sid":"allow read-only","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}"#,
        ),
    );
}

#[test]
fn missing_elements() {
    assert_eq!(
        aws(ID, &identity(r#"{"Effect":"Allow","Resource":"*"}"#)),
        "Policy statement must contain actions."
    );
    assert_eq!(
        aws(
            ID,
            &identity(r#"{"Effect":"Allow","Action":[],"Resource":"*"}"#)
        ),
        "Policy statement must contain actions."
    );
    assert_eq!(
        aws(ID, &identity(r#"{"Effect":"Allow","Action":"s3:*"}"#)),
        "Policy statement must contain resources."
    );
    assert_eq!(
        aws(
            ID,
            &identity(r#"{"Effect":"Allow","Action":"s3:*","Resource":[]}"#)
        ),
        "Policy statement must contain resources."
    );
    assert_eq!(
        aws(
            PolicyKind::Resource,
            &identity(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*"}"#)
        ),
        "Missing required field Principal"
    );
}

#[test]
fn principals_only_where_they_belong() {
    let with_principal =
        identity(r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}"#);
    for kind in [ID, PolicyKind::Boundary, PolicyKind::Session] {
        assert_eq!(
            aws(kind, &with_principal),
            "Policy document should not specify a principal."
        );
    }
    let not_principal = identity(
        r#"{"Effect":"Deny","NotPrincipal":{"AWS":"111122223333"},"Action":"s3:*","Resource":"*"}"#,
    );
    assert_eq!(
        aws(ID, &not_principal),
        "Policy document should not specify a principal."
    );
}

#[test]
fn trust_policy_rules() {
    let t = |statement: &str| format!(r#"{{"Version":"2012-10-17","Statement":[{statement}]}}"#);
    assert_eq!(
        aws(
            TRUST,
            &t(
                r#"{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole","Resource":"*"}"#
            )
        ),
        "Has prohibited field Resource"
    );
    assert_eq!(
        aws(
            TRUST,
            &t(
                r#"{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole","NotResource":"*"}"#
            )
        ),
        "Has prohibited field NotResource"
    );
    assert_eq!(
        aws(TRUST, &t(r#"{"Effect":"Allow","Action":"sts:AssumeRole"}"#)),
        "The passed in policy has a statement with no principals!"
    );
    assert_eq!(
        aws(
            TRUST,
            &t(r#"{"Effect":"Allow","Principal":{"AWS":[]},"Action":"sts:AssumeRole"}"#)
        ),
        "The passed in policy has a statement with no principals!"
    );
    assert_eq!(
        aws(
            TRUST,
            &t(
                r#"{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"s3:GetObject"}"#
            )
        ),
        "AssumeRole policy may only specify STS AssumeRole actions."
    );
    // A bare `*` is accepted (the one observation of a rejection is old and unverified); the
    // linter warns about it.
    ok(
        TRUST,
        &t(r#"{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole"}"#),
    );
    assert_eq!(
        aws(
            TRUST,
            &t(
                r#"{"Effect":"Deny","NotPrincipal":{"AWS":"111122223333"},"Action":"sts:AssumeRole"}"#
            )
        ),
        "AssumeRole policy must not contain NotPrincipal field."
    );
    assert_eq!(
        aws(TRUST, r#"{"Version":"2012-10-17","statement":[]}"#),
        "Unknown field statement"
    );
    // Every assume-role action and wildcards that cover one are accepted.
    for action in [
        "sts:AssumeRole",
        "sts:AssumeRoleWithWebIdentity",
        "sts:AssumeRoleWithSAML",
        "sts:TagSession",
        "sts:SetSourceIdentity",
        "sts:SetContext",
        "sts:*",
        "sts:Assume*",
        "*",
    ] {
        ok(
            TRUST,
            &t(&format!(
                r#"{{"Effect":"Allow","Principal":{{"Service":"ec2.amazonaws.com"}},"Action":"{action}"}}"#
            )),
        );
    }
    // The Pod Identity trust policy, and Version-less or 2008 trust policies.
    ok(
        TRUST,
        r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#,
    );
    ok(
        TRUST,
        r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"sts:ExternalId":"x"}}}]}"#,
    );
}

#[test]
fn action_format() {
    let with_action = |a: &str| {
        identity(&format!(
            r#"{{"Effect":"Allow","Action":"{a}","Resource":"*"}}"#
        ))
    };
    let vendor = "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.";
    assert_eq!(aws(ID, &with_action("GetObject")), vendor);
    assert_eq!(aws(ID, &with_action("")), vendor);
    assert_eq!(aws(ID, &with_action(":GetObject")), vendor);
    assert_eq!(
        aws(ID, &with_action("s3:List:Bucket")),
        "Actions/Condition can contain only one colon."
    );
    assert_eq!(
        aws(ID, &with_action("a a:ListBucket")),
        "Vendor a a is not valid"
    );
    for accepted in [
        "*",
        "s3:*",
        "iam: asdf safdsf af ",
        "s3-s:x",
        "s3*:Get*",
        "s3.s:x",
        "fsx:ListBucket",
    ] {
        ok(ID, &with_action(accepted));
    }
}

#[test]
fn resource_format() {
    let with_resource = |r: &str| {
        identity(&format!(
            r#"{{"Effect":"Allow","Action":"s3:*","Resource":"{r}"}}"#
        ))
    };
    assert_eq!(
        aws(ID, &with_resource("invalid resource")),
        r#"Resource invalid resource must be in ARN format or "*"."#
    );
    assert_eq!(
        aws(ID, &with_resource("")),
        r#"Resource  must be in ARN format or "*"."#
    );
    assert_eq!(
        aws(ID, &with_resource("a:b:cadfsdf")),
        r#"Partition "b" is not valid for resource "arn:b:cadfsdf:*:*:*"."#
    );
    assert_eq!(
        aws(ID, &with_resource("aws:s3:::example_bucket")),
        r#"Partition "s3" is not valid for resource "arn:s3:::example_bucket:*"."#
    );
    assert_eq!(
        aws(ID, &with_resource("arn:aws")),
        "Resource vendor must be fully qualified and cannot contain regexes."
    );
    assert_eq!(
        aws(ID, &with_resource("arn:aws:*:*:*:*")),
        "Resource vendor must be fully qualified and cannot contain regexes."
    );
    assert_eq!(
        aws(ID, &with_resource("arn:aws:iam:us-east-1::role/x")),
        "IAM resource arn:aws:iam:us-east-1::role/x cannot contain region information."
    );
    assert_eq!(
        aws(ID, &with_resource("arn:aws:s3:us-east-1::example_bucket")),
        "Resource arn:aws:s3:us-east-1::example_bucket can not contain region information."
    );
    assert!(
        aws(ID, &with_resource("arn:aws:iam:::example_bucket"))
            .starts_with("IAM resource path must either be")
    );
    for accepted in [
        "*",
        "arn:aws:s3:::b/*",
        "arn:aws:fdsasf",
        "arn:aws:ec2:region:account-id:instance/*",
        "arn:aws:iam::*:role/*",
        "arn:aws:iam::123456789012:root",
        "arn:aws:iam::123456789012:r*",
        "arn:aws-cn:s3:::b",
        "arn:*:s3:::b",
        "arn:aws:s3:us-west-2:123456789012:accesspoint/ap",
        "arn:aws:s3:::${aws:username}/*",
    ] {
        ok(ID, &with_resource(accepted));
    }
}

#[test]
fn principal_values() {
    let with = |p: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{p},"Action":"sts:AssumeRole"}}]}}"#
        )
    };
    for (principal, message) in [
        (
            r#"{"AWS":"arn:aws:iam::123456789012:role/*"}"#,
            r#"Invalid principal in policy: "AWS":"arn:aws:iam::123456789012:role/*""#,
        ),
        (
            r#"{"AWS":"arn:aws:iam::*:root"}"#,
            r#"Invalid principal in policy: "AWS":"arn:aws:iam::*:root""#,
        ),
        (
            r#"{"AWS":"alice"}"#,
            r#"Invalid principal in policy: "AWS":"alice""#,
        ),
        (
            r#"{"AWS":"arn:aws:s3:::bucket"}"#,
            r#"Invalid principal in policy: "AWS":"arn:aws:s3:::bucket""#,
        ),
        (
            r#"{"AWS":"arn:aws:sts::123456789012:assumed-role/r"}"#,
            r#"Invalid principal in policy: "AWS":"arn:aws:sts::123456789012:assumed-role/r""#,
        ),
        (
            r#"{"Service":"not a service"}"#,
            r#"Invalid principal in policy: "SERVICE":"not a service""#,
        ),
        (
            r#"{"Federated":"arn:aws:iam::123456789012:role/r"}"#,
            r#"Invalid principal in policy: "FEDERATED":"arn:aws:iam::123456789012:role/r""#,
        ),
        (
            r#"{"CanonicalUser":"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"}"#,
            r#"Invalid principal in policy: "CANONICALUSER":"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be""#,
        ),
    ] {
        assert_eq!(aws(TRUST, &with(principal)), message, "{principal}");
    }
    assert_eq!(
        aws(TRUST, &with(r#"{"service":"ec2.amazonaws.com"}"#)),
        "Syntax errors in policy."
    );
    assert_eq!(
        aws(TRUST, &with(r#""ec2.amazonaws.com""#)),
        "Syntax errors in policy."
    );
    for accepted in [
        r#"{"AWS":"123456789012"}"#,
        r#"{"AWS":["arn:aws:iam::123456789012:root","arn:aws:iam::123456789012:user/path/alice"]}"#,
        r#"{"AWS":"arn:aws:iam::123456789012:role/team/app"}"#,
        r#"{"AWS":"arn:aws:sts::123456789012:assumed-role/app/session"}"#,
        r#"{"AWS":"arn:aws:sts::123456789012:federated-user/bob"}"#,
        r#"{"AWS":"AROAEXAMPLEAPPROLE001"}"#,
        r#"{"Service":["pods.eks.amazonaws.com","ec2.amazonaws.com"]}"#,
        r#"{"Federated":"arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC"}"#,
        r#"{"Federated":"arn:aws:iam::123456789012:saml-provider/corp"}"#,
        r#"{"Federated":"accounts.google.com"}"#,
    ] {
        ok(TRUST, &with(accepted));
    }
}

#[test]
fn size_limits_count_characters_other_than_whitespace() {
    let statement = r#"{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}"#;
    let many = vec![statement; 30].join(",");
    let text = format!(r#"{{"Version":"2012-10-17","Statement":[{many}]}}"#);
    let e = errors(TRUST, &text);
    assert_eq!(e.first().aws_code(), "LimitExceeded");
    assert_eq!(
        e.first().aws_message(),
        "Cannot exceed quota for ACLSizePerRole: 2048"
    );
    // Whitespace does not count.
    let spaced = format!(
        r#"{{"Version":"2012-10-17",{}"Statement":[{statement}]}}"#,
        " ".repeat(5000)
    );
    ok(TRUST, &spaced);
    // Identity: 6144.
    let s = r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::a-long-bucket-name-for-the-size-test/*"}"#;
    let text = identity(&vec![s; 70].join(","));
    assert_eq!(
        errors(ID, &text).first().aws_message(),
        "Cannot exceed quota for PolicySize: 6144"
    );
    assert!(Policy::parse_with(&text, ParseOptions::simulation(ID)).is_ok());
}

#[test]
fn characters_outside_latin1_are_a_validation_error() {
    let e = errors(
        ID,
        &identity(r#"{"Sid":"é","Effect":"Allow","Action":"s3:*","Resource":"*"}"#),
    );
    assert_eq!(
        e.first().aws_message(),
        "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular expression [0-9A-Za-z]*"
    );
    let e = errors(
        ID,
        &identity(r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/😀"}"#),
    );
    assert_eq!(e.first().aws_code(), "ValidationError");
    assert!(e.first().to_string().contains("U+1F600"), "{}", e.first());
}

#[test]
fn duplicate_keys_are_rejected_with_their_position() {
    let text = "{\n \"Version\": \"2012-10-17\",\n \"Statement\": {\"Effect\": \"Allow\", \"Action\": \"s3:*\", \"Action\": \"ec2:*\", \"Resource\": \"*\"}\n}";
    let e = errors(ID, text);
    let first = e.first();
    assert!(matches!(first.kind(), ErrorKind::Json(_)));
    assert_eq!(first.position().map(|p| (p.line, p.column)), Some((3, 53)));
    assert!(
        first.to_string().contains("duplicate key `Action`"),
        "{first}"
    );
}

#[test]
fn deep_large_and_non_utf8_input_is_refused_quickly() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let e = errors(ID, &deep);
    assert!(
        e.first()
            .to_string()
            .contains("nested deeper than 32 levels")
    );
    let huge = format!(
        r#"{{"Version":"2012-10-17","Id":"{}"}}"#,
        "x".repeat(600_000)
    );
    assert!(
        errors(ID, &huge)
            .first()
            .to_string()
            .contains("larger than")
    );
    let (_, node) = (
        0,
        podid_policy::json::parse_bytes(
            b"{\"a\":\"\xc3\x28\"}",
            podid_policy::json::Limits::POLICY,
        ),
    );
    let err = node.unwrap_err();
    assert_eq!(err.offset, 6);
}

#[test]
fn every_problem_is_reported_first_the_one_aws_reports() {
    let text = identity(
        r#"{"Sid":"a-b","Effect":"Allow","Action":"GetObject","Resource":"bucket"},{"Effect":"Allow","Action":"s3:*"}"#,
    );
    let e = errors(ID, &text);
    let messages: Vec<String> = e.iter().map(|e| e.aws_message()).collect();
    assert_eq!(
        messages,
        [
            "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular expression [0-9A-Za-z]*",
            "Policy statement must contain resources.",
            "Resource bucket must be in ARN format or \"*\".",
            "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.",
        ]
    );
    assert_eq!(e.len(), 4);
    assert!(
        e.first().to_string().starts_with("statement 0 (`a-b`): "),
        "{}",
        e.first()
    );
}

#[test]
fn accepted_oddities() {
    // Keys without a vendor, unknown aws: keys, empty value lists, booleans and numbers.
    ok(
        ID,
        &identity(
            r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"a":"b","aws:Foo":"c"},"DateGreaterThan":{"aws:CurrentTime":[]},"Bool":{"aws:SecureTransport":false},"NumericLessThan":{"s3:max-keys":10}}}"#,
        ),
    );
    // A single statement object, an Id.
    ok(
        ID,
        r#"{"Version":"2012-10-17","Id":"p1","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#,
    );
}

#[test]
fn accepted_forms_that_aws_accepts() {
    // The CloudFront origin access identity principal of S3 bucket policies.
    ok(
        PolicyKind::Resource,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::cloudfront:user/CloudFront Origin Access Identity E2QWRUHAPOMQZL"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::site/*"}]}"#,
    );
    // A resource policy without Resource applies to its own resource (ECR repository policies).
    ok(
        PolicyKind::Resource,
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"pull","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"]}]}"#,
    );
    // A wildcard region in an IAM ARN.
    ok(
        ID,
        &identity(
            r#"{"Effect":"Allow","Action":"iam:GetRole","Resource":"arn:aws:iam:*:111122223333:role/*"}"#,
        ),
    );
    // Sids with other characters in trust, session and resource policies.
    ok(
        TRUST,
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"eks-pods","Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
    );
    ok(
        PolicyKind::Session,
        &identity(r#"{"Sid":"read-only","Effect":"Allow","Action":"s3:Get*","Resource":"*"}"#),
    );
}

/// Inputs that would take minutes with a quadratic step (duplicate-key checks, positions on one
/// long line, repeated `${`, many errors); they must be handled in linear time. There is no time
/// assertion: a regression shows as a test that takes minutes instead of milliseconds.
#[test]
fn large_inputs_are_handled_in_linear_time() {
    // 35,000 keys in one object, on one line (about 400 KB).
    let keys: Vec<String> = (0..35_000).map(|i| format!(r#""k{i}":"v""#)).collect();
    let text = format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{{"StringEquals":{{{}}}}}}}}}"#,
        keys.join(",")
    );
    assert!(Policy::parse_with(&text, ParseOptions::simulation(ID)).is_ok());
    // 5,000 statements on one line, each with an error.
    let statements =
        vec![r#"{"Effect":"Allow","Action":"GetObject","Resource":"*"}"#; 5_000].join(",");
    let e = Policy::parse_with(&identity(&statements), ParseOptions::simulation(ID)).unwrap_err();
    assert_eq!(e.len(), 100, "reports are capped");
    // 100,000 unclosed `${ ` before one `}`.
    let resource = format!("arn:aws:s3:::b/{}}}", "${ ".repeat(100_000));
    let text = identity(&format!(
        r#"{{"Effect":"Allow","Action":"s3:*","Resource":"{resource}"}}"#
    ));
    assert!(Policy::parse_with(&text, ParseOptions::simulation(ID)).is_ok());
}

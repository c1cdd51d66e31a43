//! Property tests: printing a policy and parsing it back gives the same policy; arbitrary JSON and
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers fail loudly"
)]
//! arbitrary bytes never panic the parser, the linter, the evaluator or the explainer.

use podid_policy::{
    Context, NamedPolicy, ParseOptions, Policy, PolicyKind, PolicySet, Principal, Request,
};
use proptest::prelude::*;

fn quoted(s: &str) -> String {
    let mut out = String::new();
    podid_policy::json::write_string(&mut out, s);
    out
}

fn one_or_list(items: Vec<String>) -> String {
    if items.len() == 1 {
        quoted(&items[0])
    } else {
        format!(
            "[{}]",
            items
                .iter()
                .map(|i| quoted(i))
                .collect::<Vec<_>>()
                .join(",")
        )
    }
}

fn action() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_owned()),
        Just("s3:GetObject".to_owned()),
        Just("s3:*".to_owned()),
        Just("iam:*AccessKey*".to_owned()),
        Just("ec2:Describe?nstances".to_owned()),
        "[a-z0-9]{1,6}:[A-Za-z*?]{1,10}",
    ]
}

fn trust_action() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("sts:AssumeRole".to_owned()),
        Just("sts:TagSession".to_owned()),
        Just("sts:AssumeRoleWithWebIdentity".to_owned()),
        Just("sts:*".to_owned()),
    ]
}

fn resource() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_owned()),
        Just("arn:aws:s3:::bucket/*".to_owned()),
        Just("arn:aws:s3:::home/${aws:username}/*".to_owned()),
        Just("arn:aws:s3:::x-${aws:PrincipalTag/team, 'all'}/*".to_owned()),
        Just("arn:aws:iam::111122223333:role/app".to_owned()),
        "arn:aws:(sqs|dynamodb|ec2):[a-z0-9*-]{0,9}:[0-9*]{0,12}:[a-zA-Z0-9/*?:_${}.-]{0,20}",
    ]
}

fn principal() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(r#"{"AWS":"111122223333"}"#.to_owned()),
        Just(r#"{"AWS":["arn:aws:iam::111122223333:root","arn:aws:iam::111122223333:user/alice"]}"#.to_owned()),
        Just(r#"{"AWS":"arn:aws:sts::111122223333:assumed-role/app/s1"}"#.to_owned()),
        Just(r#"{"Service":"pods.eks.amazonaws.com"}"#.to_owned()),
        Just(r#"{"Federated":"arn:aws:iam::111122223333:oidc-provider/oidc.example.com/id/X","AWS":"*"}"#.to_owned()),
        Just(r#"{"AWS":"AROAEXAMPLEAPPROLE001"}"#.to_owned()),
    ]
}

/// An operator and values valid for it.
fn condition() -> impl Strategy<Value = (String, String, Vec<String>)> {
    let key = prop_oneof![
        Just("aws:PrincipalTag/team".to_owned()),
        Just("aws:TagKeys".to_owned()),
        Just("aws:SourceIp".to_owned()),
        Just("s3:prefix".to_owned()),
        Just("aws:CurrentTime".to_owned()),
        "[a-z]{1,5}:[A-Za-z/]{1,8}",
    ];
    let qualifier = prop_oneof![Just(""), Just("ForAllValues:"), Just("ForAnyValue:")];
    let if_exists = prop_oneof![Just(""), Just("IfExists")];
    let family = prop_oneof![
        (
            prop_oneof![
                Just("StringEquals"),
                Just("StringNotEquals"),
                Just("StringLike"),
                Just("StringNotLike"),
                Just("StringEqualsIgnoreCase")
            ],
            prop::collection::vec("[a-z*?${}:/ ]{0,8}", 0..3)
        ),
        (
            prop_oneof![
                Just("NumericEquals"),
                Just("NumericLessThan"),
                Just("NumericGreaterThanEquals")
            ],
            prop::collection::vec("-?[0-9]{1,4}(\\.[0-9]{1,2})?", 1..3)
        ),
        (
            prop_oneof![
                Just("DateLessThan"),
                Just("DateGreaterThan"),
                Just("DateEquals")
            ],
            prop::collection::vec(
                prop_oneof![
                    Just("2024-05-01T12:00:00Z".to_owned()),
                    Just("2020-01-01".to_owned()),
                    "[0-9]{9,10}"
                ],
                1..3
            )
        ),
        (
            Just("Bool"),
            prop::collection::vec(
                prop_oneof![Just("true".to_owned()), Just("false".to_owned())],
                1..2
            )
        ),
        (
            prop_oneof![Just("IpAddress"), Just("NotIpAddress")],
            prop::collection::vec(
                prop_oneof![
                    Just("10.0.0.0/8".to_owned()),
                    Just("2001:db8::/32".to_owned()),
                    Just("192.0.2.1".to_owned())
                ],
                1..3
            )
        ),
        (
            prop_oneof![Just("ArnLike"), Just("ArnNotEquals")],
            prop::collection::vec(
                prop_oneof![
                    Just("arn:aws:iam::*:role/*".to_owned()),
                    Just("arn:aws:sqs:*:111122223333:${aws:username}".to_owned())
                ],
                1..3
            )
        ),
        (
            Just("BinaryEquals"),
            prop::collection::vec(Just("aGVsbG8=".to_owned()), 1..2)
        ),
    ];
    (qualifier, family, if_exists, key)
        .prop_map(|(q, (op, values), suffix, key)| (format!("{q}{op}{suffix}"), key, values))
}

fn statement(kind: PolicyKind) -> impl Strategy<Value = String> {
    let actions = if kind == PolicyKind::Trust {
        prop::collection::vec(trust_action(), 1..3).boxed()
    } else {
        prop::collection::vec(action(), 1..4).boxed()
    };
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        actions,
        prop::collection::vec(resource(), 1..3),
        any::<bool>(),
        principal(),
        prop::collection::vec(condition(), 0..4),
    )
        .prop_map(
            move |(
                sid,
                allow,
                not_action,
                actions,
                resources,
                not_resource,
                principal,
                conditions,
            )| {
                let mut fields = Vec::new();
                if sid {
                    // Numbered by `document`, so that Sids are unique.
                    fields.push(r#""Sid":"@SID@""#.to_owned());
                }
                fields.push(format!(
                    r#""Effect":"{}""#,
                    if allow { "Allow" } else { "Deny" }
                ));
                if kind.names_principals() {
                    fields.push(format!(r#""Principal":{principal}"#));
                }
                let action_name = if not_action && kind != PolicyKind::Trust {
                    "NotAction"
                } else {
                    "Action"
                };
                fields.push(format!(r#""{action_name}":{}"#, one_or_list(actions)));
                if kind != PolicyKind::Trust {
                    let name = if not_resource {
                        "NotResource"
                    } else {
                        "Resource"
                    };
                    fields.push(format!(r#""{name}":{}"#, one_or_list(resources)));
                }
                if !conditions.is_empty() {
                    // One key per operator, so that no operator appears twice.
                    let mut seen = Vec::new();
                    let mut ops = Vec::new();
                    for (op, key, values) in conditions {
                        if seen.contains(&op) {
                            continue;
                        }
                        seen.push(op.clone());
                        let values: Vec<String> = values.iter().map(|v| quoted(v)).collect();
                        ops.push(format!(
                            "{}:{{{}:[{}]}}",
                            quoted(&op),
                            quoted(&key),
                            values.join(",")
                        ));
                    }
                    fields.push(format!(r#""Condition":{{{}}}"#, ops.join(",")));
                }
                format!("{{{}}}", fields.join(","))
            },
        )
}

fn document() -> impl Strategy<Value = (PolicyKind, String)> {
    let kind = prop_oneof![
        Just(PolicyKind::Identity),
        Just(PolicyKind::Trust),
        Just(PolicyKind::Resource),
        Just(PolicyKind::Session)
    ];
    kind.prop_flat_map(|kind| {
        let version = prop_oneof![
            Just(r#""Version":"2012-10-17","#),
            Just(r#""Version":"2008-10-17","#),
            Just("")
        ];
        (
            Just(kind),
            version,
            prop::collection::vec(statement(kind), 1..5),
            proptest::option::of("[a-z0-9-]{1,10}"),
        )
    })
    .prop_map(|(kind, version, statements, id)| {
        let id = id
            .map(|i| format!(r#""Id":{},"#, quoted(&i)))
            .unwrap_or_default();
        let statements: Vec<String> = statements
            .into_iter()
            .enumerate()
            .map(|(i, s)| s.replace("@SID@", &format!("S{i}")))
            .collect();
        (
            kind,
            format!(r#"{{{version}{id}"Statement":[{}]}}"#, statements.join(",")),
        )
    })
}

/// A JSON value whose keys are mostly policy vocabulary, to reach deep into the validator.
fn arbitrary_json() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("Version"),
        Just("Statement"),
        Just("Sid"),
        Just("Effect"),
        Just("Principal"),
        Just("NotPrincipal"),
        Just("Action"),
        Just("NotAction"),
        Just("Resource"),
        Just("NotResource"),
        Just("Condition"),
        Just("AWS"),
        Just("Service"),
        Just("Federated"),
        Just("StringEquals"),
        Just("ForAllValues:StringLike"),
        Just("Null"),
        Just("DateLessThan"),
        Just("IpAddress"),
        Just("aws:TagKeys"),
        Just("Id"),
    ]
    .prop_map(str::to_owned);
    let leaf = prop_oneof![
        Just("null".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        prop_oneof![
            Just("Allow".to_owned()),
            Just("Deny".to_owned()),
            Just("2012-10-17".to_owned()),
            Just("*".to_owned()),
            Just("s3:Get*".to_owned()),
            Just("arn:aws:s3:::b/${aws:username}".to_owned()),
            ".{0,12}"
        ]
        .prop_map(|s| quoted(&s)),
    ];
    leaf.prop_recursive(6, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5)
                .prop_map(|items| format!("[{}]", items.join(","))),
            prop::collection::vec((key.clone(), inner), 0..5).prop_map(|members| {
                let mut seen = Vec::new();
                let body: Vec<String> = members
                    .into_iter()
                    .filter(|(k, _)| {
                        let fresh = !seen.contains(k);
                        seen.push(k.clone());
                        fresh
                    })
                    .map(|(k, v)| format!("{}:{v}", quoted(&k)))
                    .collect();
                format!("{{{}}}", body.join(","))
            }),
        ]
    })
}

fn exercise(policy: Policy) {
    let _ = policy.lint();
    let _ = policy.to_json();
    let kind = policy.kind();
    let named = NamedPolicy::new("p", policy);
    let set = PolicySet::new().with(kind, named);
    let callers = [
        Principal::user(
            "arn:aws:iam::111122223333:user/alice",
            "AIDAEXAMPLEALICE00001",
        )
        .unwrap(),
        Principal::assumed_role(
            "arn:aws:sts::111122223333:assumed-role/app/s1",
            "arn:aws:iam::111122223333:role/app",
            "AROAEXAMPLEAPPROLE001",
        )
        .unwrap(),
        Principal::service("pods.eks.amazonaws.com"),
        Principal::anonymous(),
    ];
    let context = Context::new()
        .with("aws:PrincipalTag/team", "blue")
        .with("aws:TagKeys", vec!["a".to_owned(), "team".to_owned()])
        .with("aws:SourceIp", "10.1.2.3")
        .with("aws:CurrentTime", "2024-05-01T12:00:00Z")
        .with("s3:prefix", "home/alice/");
    for caller in &callers {
        for (action, resource) in [
            ("s3:GetObject", "arn:aws:s3:::bucket/k"),
            ("sts:AssumeRole", "arn:aws:iam::444455556666:role/app"),
        ] {
            let request = Request::new(caller, action, resource, &context);
            let decision = set.evaluate(&request);
            let _ = decision.explain(&set, &request).to_string();
            let _ = decision.access_denied_message(&request, true);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// parse → print → parse is the identity, and printing is stable.
    #[test]
    fn print_then_parse_is_the_identity((kind, text) in document()) {
        let options = ParseOptions::simulation(kind);
        let policy = Policy::parse_with(&text, options).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let printed = policy.to_json();
        let again = Policy::parse_with(&printed, options).map_err(|e| TestCaseError::fail(format!("{e}\n{printed}")))?;
        prop_assert_eq!(&policy, &again, "{}", printed);
        prop_assert_eq!(printed, again.to_json());
        exercise(policy);
    }

    /// Arbitrary JSON never panics anything, whatever the kind.
    #[test]
    fn arbitrary_json_never_panics(text in arbitrary_json()) {
        for kind in PolicyKind::ALL {
            for options in [ParseOptions::new(kind), ParseOptions::simulation(kind)] {
                if let Ok(policy) = Policy::parse_with(&text, options) {
                    exercise(policy);
                } else if let Err(errors) = Policy::parse_with(&text, options) {
                    for e in errors.iter() {
                        let _ = (e.to_string(), e.aws_message(), e.aws_code());
                    }
                }
            }
        }
    }

    /// Arbitrary bytes never panic the JSON reader, the policy parser or the case-file reader.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = podid_policy::json::parse_bytes(&bytes, podid_policy::json::Limits::POLICY);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            for kind in PolicyKind::ALL {
                if let Ok(policy) = Policy::parse(text, kind) {
                    exercise(policy);
                }
            }
        }
        let _ = podid_policy::Case::load(&bytes);
    }
}

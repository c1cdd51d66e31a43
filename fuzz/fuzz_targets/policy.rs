//! Any bytes, as a policy of every kind: parsing must never panic, and a policy that parses must
//! print to JSON that parses back to an equal policy and must evaluate without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podid_policy::{Context, NamedPolicy, Policy, PolicyKind, PolicySet, Principal, Request};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for kind in PolicyKind::ALL {
        let Ok(policy) = Policy::parse(text, kind) else { continue };
        let printed = policy.to_json();
        let reparsed = Policy::parse_with(&printed, podid_policy::ParseOptions::simulation(kind))
            .unwrap_or_else(|e| panic!("printed policy does not parse: {e}\n{printed}"));
        assert_eq!(policy, reparsed, "print then parse changed the policy:\n{printed}");
        let _ = policy.lint();
        let principal = Principal::user("arn:aws:iam::111122223333:user/fuzz", "AIDAFUZZ0000000000001")
            .expect("a valid user");
        let context = Context::new()
            .with("aws:PrincipalTag/team", "blue")
            .with("aws:TagKeys", vec!["a".to_owned(), "b".to_owned()])
            .with("aws:SourceIp", "10.1.2.3")
            .with("aws:CurrentTime", "2026-01-01T00:00:00Z");
        let named = NamedPolicy::new("fuzz", policy);
        let set = PolicySet::new().with(kind, named);
        for action in ["s3:GetObject", "sts:AssumeRole", "iam:PassRole"] {
            let request = Request::new(&principal, action, "arn:aws:s3:::bucket/key", &context);
            let decision = set.evaluate(&request);
            let _ = decision.explain(&set, &request);
            let _ = decision.access_denied_message(&request, true);
        }
    }
});

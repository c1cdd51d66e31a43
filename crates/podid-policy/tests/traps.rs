//! The traps of iam-semantics §9, one test each (the policy ones; §9.33's STS traps belong to
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers fail loudly"
)]
//! STS), plus the decision rules of §1 that they rest on.

mod common;

use common::*;
use podid_policy::{
    AllowPath, Context, Grant, Outcome, Ownership, PolicyKind, PolicySet, Principal,
};

const ROLE: &str = "arn:aws:iam::111111111111:role/target";
const XROLE: &str = "arn:aws:iam::222222222222:role/target";
const ASSUME_ANY: &str = r#"{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}"#;

fn trust_naming(principal: &str) -> NamedPolicyAlias {
    trust(&doc(&format!(
        r#"{{"Effect":"Allow","Principal":{{"AWS":"{principal}"}},"Action":"sts:AssumeRole"}}"#
    )))
}

type NamedPolicyAlias = podid_policy::NamedPolicy;

fn ctx() -> Context {
    Context::new()
}

#[test]
fn t01_account_principal_is_not_a_grant() {
    let set = PolicySet::new().resource(trust_naming("111111111111"));
    let d = decide(&set, &alice(), "sts:AssumeRole", ROLE, &ctx());
    assert_eq!(d.outcome(), Outcome::ImplicitDeny);
    assert_eq!(d.missing(), Some(PolicyKind::Identity));
    // With an identity policy it is allowed: the account delegates.
    let set = set.identity(identity(&doc(ASSUME_ANY)));
    let d = decide(&set, &alice(), "sts:AssumeRole", ROLE, &ctx());
    assert_eq!(d.allow_path(), Some(AllowPath::Identity));
}

#[test]
fn t02_identity_allow_without_trust_is_denied() {
    let other = trust_naming("arn:aws:iam::111111111111:user/bob");
    let set = PolicySet::new()
        .resource(other)
        .identity(identity(&doc(ASSUME_ANY)));
    let d = decide(&set, &alice(), "sts:AssumeRole", ROLE, &ctx());
    assert_eq!(d.missing(), Some(PolicyKind::Trust));
    assert_eq!(
        d.access_denied_message(
            &podid_policy::Request::new(&alice(), "sts:AssumeRole", ROLE, &ctx()),
            true
        )
        .unwrap(),
        "User: arn:aws:iam::111111111111:user/alice is not authorized to perform: sts:AssumeRole on resource: \
         arn:aws:iam::111111111111:role/target because no role trust policy allows the sts:AssumeRole action"
    );
    // A trust kind with no policy at all is denied too.
    let empty = PolicySet::new()
        .resource_kind(PolicyKind::Trust)
        .identity(identity(&doc(ASSUME_ANY)));
    assert_eq!(
        decide(&empty, &alice(), "sts:AssumeRole", ROLE, &ctx()).missing(),
        Some(PolicyKind::Trust)
    );
}

#[test]
fn t03_direct_naming_needs_no_identity_policy() {
    let set = PolicySet::new().resource(trust_naming(ALICE));
    let d = decide(&set, &alice(), "sts:AssumeRole", ROLE, &ctx());
    assert_eq!(
        d.allow_path(),
        Some(AllowPath::ResourceGrant(Grant::Direct))
    );
}

#[test]
fn t04_self_assumption_needs_a_trust_grant() {
    let me = session(ROLE, "AROAEXAMPLETARGET0001");
    let set = PolicySet::new()
        .resource(trust_naming("arn:aws:iam::111111111111:user/bob"))
        .identity(identity(&doc(ASSUME_ANY)));
    assert_eq!(
        decide(&set, &me, "sts:AssumeRole", ROLE, &ctx()).outcome(),
        Outcome::ImplicitDeny
    );
    let set = PolicySet::new().resource(trust_naming(ROLE));
    assert!(decide(&set, &me, "sts:AssumeRole", ROLE, &ctx()).is_allowed());
}

#[test]
fn t05_boundary_blocks_assume_role_even_when_trust_names_the_user() {
    let set = PolicySet::new()
        .resource(trust_naming(ALICE))
        .boundary(boundary(&doc(
            r#"{"Effect":"Allow","Action":"s3:*","Resource":"*"}"#,
        )));
    let d = decide(&set, &alice(), "sts:AssumeRole", ROLE, &ctx());
    assert_eq!(d.missing(), Some(PolicyKind::Boundary));
    // Outside trust policies a user-ARN grant is not limited by the boundary.
    let bucket = PolicySet::new()
        .resource(resource(&doc(&format!(
            r#"{{"Effect":"Allow","Principal":{{"AWS":"{ALICE}"}},"Action":"s3:GetObject","Resource":"*"}}"#
        ))))
        .boundary(boundary(&doc(r#"{"Effect":"Allow","Action":"ec2:*","Resource":"*"}"#)));
    assert!(
        decide(
            &bucket,
            &alice(),
            "s3:GetObject",
            "arn:aws:s3:::b/k",
            &ctx()
        )
        .is_allowed()
    );
}

#[test]
fn t06_cross_account_needs_both_sides() {
    let me = session(
        "arn:aws:iam::111111111111:role/app",
        "AROAEXAMPLEAPPROLE001",
    );
    let grant = format!(
        r#"{{"Effect":"Allow","Principal":{{"AWS":"{}"}},"Action":"s3:GetObject","Resource":"*"}}"#,
        me.display_arn()
    );
    let set = PolicySet::new().resource(resource(&doc(&grant)));
    let d = decide_owned(
        &set,
        &me,
        "s3:GetObject",
        "arn:aws:s3:::b/k",
        &ctx(),
        Ownership::CrossAccount,
    );
    assert_eq!(d.missing(), Some(PolicyKind::Identity));
    let set = set.identity(identity(&doc(
        r#"{"Effect":"Allow","Action":"s3:*","Resource":"*"}"#,
    )));
    let d = decide_owned(
        &set,
        &me,
        "s3:GetObject",
        "arn:aws:s3:::b/k",
        &ctx(),
        Ownership::CrossAccount,
    );
    assert_eq!(d.allow_path(), Some(AllowPath::BothAccounts));
    // And the resource side must allow: an identity policy alone does not reach another account.
    let alone = PolicySet::new().identity(identity(&doc(
        r#"{"Effect":"Allow","Action":"s3:*","Resource":"*"}"#,
    )));
    let d = decide_owned(
        &alone,
        &me,
        "s3:GetObject",
        "arn:aws:s3:::b/k",
        &ctx(),
        Ownership::CrossAccount,
    );
    assert_eq!(d.missing(), Some(PolicyKind::Resource));
    // Cross-account trust: the trust names the account, the identity policy allows.
    let set = PolicySet::new()
        .resource(trust_naming("111111111111"))
        .identity(identity(&doc(ASSUME_ANY)));
    assert!(decide(&set, &alice(), "sts:AssumeRole", XROLE, &ctx()).is_allowed());
}

#[test]
fn t07_role_arn_grant_is_limited_by_session_policy_session_arn_grant_is_not() {
    let me = session(
        "arn:aws:iam::111111111111:role/app",
        "AROAEXAMPLEAPPROLE001",
    );
    let narrow = session_policy(&doc(
        r#"{"Effect":"Allow","Action":"ec2:*","Resource":"*"}"#,
    ));
    let by_role = PolicySet::new()
        .resource(resource(&doc(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:role/app"},"Action":"s3:GetObject","Resource":"*"}"#,
        )))
        .session(narrow.clone());
    let d = decide(&by_role, &me, "s3:GetObject", "arn:aws:s3:::b/k", &ctx());
    assert_eq!(d.missing(), Some(PolicyKind::Session));
    let by_session = PolicySet::new()
        .resource(resource(&doc(&format!(
            r#"{{"Effect":"Allow","Principal":{{"AWS":"{}"}},"Action":"s3:GetObject","Resource":"*"}}"#,
            me.display_arn()
        ))))
        .session(narrow);
    assert!(decide(&by_session, &me, "s3:GetObject", "arn:aws:s3:::b/k", &ctx()).is_allowed());
}

#[test]
fn t08_role_arn_grant_ignores_missing_identity_policy_but_not_the_boundary() {
    let me = session(
        "arn:aws:iam::111111111111:role/app",
        "AROAEXAMPLEAPPROLE001",
    );
    let grant = resource(&doc(
        r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:role/app"},"Action":"s3:GetObject","Resource":"*"}"#,
    ));
    let set = PolicySet::new().resource(grant.clone());
    assert_eq!(
        decide(&set, &me, "s3:GetObject", "arn:aws:s3:::b/k", &ctx()).allow_path(),
        Some(AllowPath::ResourceGrant(Grant::Role))
    );
    let set = PolicySet::new().resource(grant).boundary(boundary(&doc(
        r#"{"Effect":"Allow","Action":"ec2:*","Resource":"*"}"#,
    )));
    assert_eq!(
        decide(&set, &me, "s3:GetObject", "arn:aws:s3:::b/k", &ctx()).missing(),
        Some(PolicyKind::Boundary)
    );
}

#[test]
fn t09_recreated_role_no_longer_matches_its_arn_but_matches_principal_arn() {
    let old_id = "AROAOLDEXAMPLEID00001";
    let new_id = "AROANEWEXAMPLEID00001";
    let deployer = "arn:aws:iam::111111111111:role/deployer";
    // The trust policy was saved while the old role existed: its ARN is bound to the old id.
    let mut saved = policy(
        PolicyKind::Trust,
        &doc(&format!(
            r#"{{"Effect":"Allow","Principal":{{"AWS":"{deployer}"}},"Action":"sts:AssumeRole"}}"#
        )),
    );
    saved
        .bind_principals(&|arn| (arn == deployer).then(|| old_id.to_owned()))
        .unwrap();
    let set = PolicySet::new().resource(podid_policy::NamedPolicy::new("trust", saved.clone()));
    let old_session = session(deployer, old_id);
    let new_session = session(deployer, new_id);
    assert_eq!(
        decide_owned(
            &set,
            &old_session,
            "sts:AssumeRole",
            ROLE,
            &ctx(),
            Ownership::SameAccount
        )
        .outcome(),
        Outcome::Allow
    );
    assert_eq!(
        decide_owned(
            &set,
            &new_session,
            "sts:AssumeRole",
            ROLE,
            &ctx(),
            Ownership::SameAccount
        )
        .outcome(),
        Outcome::ImplicitDeny
    );
    // A policy showing the raw id of the deleted role matches nothing either.
    let raw = PolicySet::new().resource(trust_naming(old_id));
    assert_eq!(
        decide(&raw, &new_session, "sts:AssumeRole", ROLE, &ctx()).outcome(),
        Outcome::ImplicitDeny
    );
    // aws:PrincipalArn is not converted to an id, so it survives re-creation.
    let by_condition = PolicySet::new()
        .resource(trust(&doc(&format!(
            r#"{{"Effect":"Allow","Principal":{{"AWS":"111111111111"}},"Action":"sts:AssumeRole","Condition":{{"ArnEquals":{{"aws:PrincipalArn":"{deployer}"}}}}}}"#
        ))))
        .identity(identity(&doc(ASSUME_ANY)));
    assert!(decide(&by_condition, &new_session, "sts:AssumeRole", XROLE, &ctx()).is_allowed());
    // Saving names a principal that does not exist: `Invalid principal in policy`.
    let mut missing = saved;
    let err = missing.bind_principals(&|_| None).unwrap_err();
    assert_eq!(
        err.first().aws_message(),
        format!(r#"Invalid principal in policy: "AWS":"{deployer}""#)
    );
}

#[test]
fn t10_principal_arn_is_the_role_arn_not_the_session_arn() {
    let me = session(
        "arn:aws:iam::111111111111:role/app",
        "AROAEXAMPLEAPPROLE001",
    );
    let by_session = PolicySet::new().identity(identity(&doc(&format!(
        r#"{{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{{"ArnEquals":{{"aws:PrincipalArn":"{}"}}}}}}"#,
        me.display_arn()
    ))));
    assert!(!decide(&by_session, &me, "s3:GetObject", "*", &ctx()).is_allowed());
    let by_role = PolicySet::new().identity(identity(&doc(
        r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::111111111111:role/app"}}}"#,
    )));
    assert!(decide(&by_role, &me, "s3:GetObject", "*", &ctx()).is_allowed());
}

#[test]
fn t11_role_path_matters_in_resources_and_is_dropped_from_session_arns() {
    let set = PolicySet::new().identity(identity(&doc(
        r#"{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"arn:aws:iam::222222222222:role/deployer"}"#,
    )));
    let set = set.resource(trust_naming("111111111111"));
    let d = decide(
        &set,
        &alice(),
        "sts:AssumeRole",
        "arn:aws:iam::222222222222:role/team/deployer",
        &ctx(),
    );
    assert_eq!(d.missing(), Some(PolicyKind::Identity));
    let with_path = Principal::assumed_role(
        "arn:aws:sts::111111111111:assumed-role/deployer/s1",
        "arn:aws:iam::111111111111:role/team/deployer",
        "AROAEXAMPLEDEPLOYER01",
    )
    .unwrap();
    // A trust policy naming the role with its path matches the session (whose ARN has no path).
    let set =
        PolicySet::new().resource(trust_naming("arn:aws:iam::111111111111:role/team/deployer"));
    assert!(decide(&set, &with_path, "sts:AssumeRole", ROLE, &ctx()).is_allowed());
    let set = PolicySet::new().resource(trust_naming("arn:aws:iam::111111111111:role/deployer"));
    assert!(!decide(&set, &with_path, "sts:AssumeRole", ROLE, &ctx()).is_allowed());
}

fn allow_all_deny_when(condition: &str) -> PolicySet {
    PolicySet::new().identity(identity(&doc(&format!(
        r#"{{"Effect":"Allow","Action":"s3:*","Resource":"*"}},{{"Effect":"Deny","Action":"s3:*","Resource":"*","Condition":{condition}}}"#
    ))))
}

#[test]
fn t12_negated_operator_on_a_missing_key_is_true() {
    let set = allow_all_deny_when(r#"{"StringNotEquals":{"aws:ResourceTag/env":"dev"}}"#);
    assert_eq!(
        decide(&set, &alice(), "s3:GetObject", "*", &ctx()).outcome(),
        Outcome::ExplicitDeny
    );
}

#[test]
fn t13_if_exists_does_not_rescue_a_deny_with_a_negated_operator() {
    let set = allow_all_deny_when(r#"{"StringNotEqualsIfExists":{"aws:ResourceTag/env":"dev"}}"#);
    assert_eq!(
        decide(&set, &alice(), "s3:GetObject", "*", &ctx()).outcome(),
        Outcome::ExplicitDeny
    );
    let tagged = Context::new().with("aws:ResourceTag/env", "dev");
    assert!(decide(&set, &alice(), "s3:GetObject", "*", &tagged).is_allowed());
}

#[test]
fn t14_negated_operator_with_several_values_is_nor() {
    let set = allow_all_deny_when(
        r#"{"StringNotEquals":{"aws:PrincipalAccount":["111111111111","222222222222"]}}"#,
    );
    assert!(decide(&set, &alice(), "s3:GetObject", "*", &ctx()).is_allowed());
    let stranger = user("arn:aws:iam::333333333333:user/alice");
    assert_eq!(
        decide(&set, &stranger, "s3:GetObject", "*", &ctx()).outcome(),
        Outcome::ExplicitDeny
    );
}

#[test]
fn t15_t16_set_operators_on_missing_keys() {
    let all = PolicySet::new().identity(identity(&doc(
        r#"{"Effect":"Allow","Action":"ec2:CreateTags","Resource":"*","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["env"]}}}"#,
    )));
    assert!(decide(&all, &alice(), "ec2:CreateTags", "*", &ctx()).is_allowed());
    let any = PolicySet::new().identity(identity(&doc(
        r#"{"Effect":"Allow","Action":"ec2:CreateTags","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":["env"]}}}"#,
    )));
    assert!(!decide(&any, &alice(), "ec2:CreateTags", "*", &ctx()).is_allowed());
}

#[test]
fn t17_for_all_values_string_not_like_in_a_deny() {
    let set = PolicySet::new().identity(identity(&doc(
        r#"{"Effect":"Allow","Action":"iam:TagUser","Resource":"*"},{"Effect":"Deny","Action":["iam:Tag*","iam:UnTag*"],"Resource":"*","Condition":{"ForAllValues:StringNotLike":{"aws:TagKeys":"key1*"}}}"#,
    )));
    let keys = |values: &[&str]| Context::new().with("aws:TagKeys", list(values));
    assert!(
        decide(
            &set,
            &alice(),
            "iam:TagUser",
            "*",
            &keys(&["key1:hr", "key1:personnel"])
        )
        .is_allowed()
    );
    assert_eq!(
        decide(&set, &alice(), "iam:TagUser", "*", &keys(&["key2:audit"])).outcome(),
        Outcome::ExplicitDeny
    );
    assert_eq!(
        decide(&set, &alice(), "iam:TagUser", "*", &ctx()).outcome(),
        Outcome::ExplicitDeny
    );
}

#[test]
fn t18_string_equals_has_no_wildcards() {
    let provider = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
    let federated = format!("arn:aws:iam::111111111111:oidc-provider/{provider}");
    let trust_with = |op: &str| {
        PolicySet::new().resource(trust(&doc(&format!(
            r#"{{"Effect":"Allow","Principal":{{"Federated":"{federated}"}},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{{"{op}":{{"{provider}:sub":"system:serviceaccount:prod:*"}}}}}}"#
        ))))
    };
    let caller = Principal::web_identity(&federated);
    let c = Context::new().with(&format!("{provider}:sub"), "system:serviceaccount:prod:api");
    assert!(
        !decide(
            &trust_with("StringEquals"),
            &caller,
            "sts:AssumeRoleWithWebIdentity",
            ROLE,
            &c
        )
        .is_allowed()
    );
    assert!(
        decide(
            &trust_with("StringLike"),
            &caller,
            "sts:AssumeRoleWithWebIdentity",
            ROLE,
            &c
        )
        .is_allowed()
    );
}

#[test]
fn t19_arn_like_is_per_component_string_like_is_not() {
    let value =
        "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt";
    let with = |op: &str| {
        PolicySet::new().identity(identity(&doc(&format!(
            r#"{{"Effect":"Allow","Action":"sqs:SendMessage","Resource":"*","Condition":{{"{op}":{{"aws:SourceArn":"arn:aws:someservice:*:111122223333:finance/*"}}}}}}"#
        ))))
    };
    let c = Context::new().with("aws:SourceArn", value);
    assert!(!decide(&with("ArnLike"), &alice(), "sqs:SendMessage", "*", &c).is_allowed());
    assert!(decide(&with("StringLike"), &alice(), "sqs:SendMessage", "*", &c).is_allowed());
}

#[test]
fn t20_star_in_resource_crosses_slashes() {
    let set = PolicySet::new().identity(identity(&doc(
        r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*/test/*"}"#,
    )));
    assert!(
        decide(
            &set,
            &alice(),
            "s3:GetObject",
            "arn:aws:s3:::b/1/2/test/object.jpg",
            &ctx()
        )
        .is_allowed()
    );
    assert!(
        !decide(
            &set,
            &alice(),
            "s3:GetObject",
            "arn:aws:s3:::b/test/object.jpg",
            &ctx()
        )
        .is_allowed()
    );
    // A `*` in the first five components does not cross a colon.
    let set = PolicySet::new().identity(identity(&doc(
        r#"{"Effect":"Allow","Action":"sqs:*","Resource":"arn:aws:sqs:*:111111111111:q"}"#,
    )));
    assert!(
        decide(
            &set,
            &alice(),
            "sqs:SendMessage",
            "arn:aws:sqs:us-east-1:111111111111:q",
            &ctx()
        )
        .is_allowed()
    );
    assert!(
        !decide(
            &set,
            &alice(),
            "sqs:SendMessage",
            "arn:aws:sqs:us-east-1:x:111111111111:q",
            &ctx()
        )
        .is_allowed()
    );
}

#[test]
fn t21_key_names_case_insensitive_values_not() {
    let set = PolicySet::new().identity(identity(&doc(
        r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/Team":"blue"}}}"#,
    )));
    assert!(
        decide(
            &set,
            &alice(),
            "s3:GetObject",
            "*",
            &Context::new().with("aws:principaltag/TEAM", "blue")
        )
        .is_allowed()
    );
    assert!(
        !decide(
            &set,
            &alice(),
            "s3:GetObject",
            "*",
            &Context::new().with("aws:PrincipalTag/team", "Blue")
        )
        .is_allowed()
    );
}

#[test]
fn t22_action_names_case_insensitive() {
    let set = PolicySet::new().identity(identity(&doc(
        r#"{"Effect":"Allow","Action":"IAM:listaccesskeys","Resource":"*"}"#,
    )));
    assert!(decide(&set, &alice(), "iam:ListAccessKeys", "*", &ctx()).is_allowed());
    assert!(decide(&set, &alice(), "Iam:LISTACCESSKEYS", "*", &ctx()).is_allowed());
    let wild = PolicySet::new().identity(identity(&doc(
        r#"{"Effect":"Allow","Action":"iam:*AccessKey*","Resource":"*"}"#,
    )));
    assert!(decide(&wild, &alice(), "iam:UpdateAccessKey", "*", &ctx()).is_allowed());
    assert!(!decide(&wild, &alice(), "iam:ListUsers", "*", &ctx()).is_allowed());
}

#[test]
fn t23_variables_need_version_2012() {
    for version in [r#""Version":"2008-10-17","#, ""] {
        let text = format!(
            r#"{{{version}"Statement":[{{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/${{aws:username}}/*"}}]}}"#
        );
        let set = PolicySet::new().identity(identity(&text));
        assert!(
            !decide(
                &set,
                &alice(),
                "s3:GetObject",
                "arn:aws:s3:::b/alice/f",
                &ctx()
            )
            .is_allowed(),
            "{text}"
        );
        assert!(
            decide(
                &set,
                &alice(),
                "s3:GetObject",
                "arn:aws:s3:::b/${aws:username}/f",
                &ctx()
            )
            .is_allowed(),
            "{text}"
        );
    }
}

#[test]
fn t24_unresolved_variable_in_resource_matches_nothing_unless_defaulted() {
    let set = PolicySet::new().identity(identity(&doc(
        r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::team-${aws:PrincipalTag/team}/*"}"#,
    )));
    assert!(
        !decide(
            &set,
            &alice(),
            "s3:GetObject",
            "arn:aws:s3:::team-/x",
            &ctx()
        )
        .is_allowed()
    );
    let tagged = Context::new().with("aws:PrincipalTag/team", "blue");
    assert!(
        decide(
            &set,
            &alice(),
            "s3:GetObject",
            "arn:aws:s3:::team-blue/x",
            &tagged
        )
        .is_allowed()
    );
    let defaulted = PolicySet::new().identity(identity(&doc(
        r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::bucket-${aws:PrincipalTag/team, 'company-wide'}/*"}"#,
    )));
    assert!(
        decide(
            &defaulted,
            &alice(),
            "s3:GetObject",
            "arn:aws:s3:::bucket-company-wide/x",
            &ctx()
        )
        .is_allowed()
    );
    // In NotResource an unresolved entry matches nothing, so NotResource covers everything.
    let not = PolicySet::new().identity(identity(&doc(
        r#"{"Effect":"Allow","Action":"s3:GetObject","NotResource":"arn:aws:s3:::private-${aws:PrincipalTag/team}/*"}"#,
    )));
    assert!(
        decide(
            &not,
            &alice(),
            "s3:GetObject",
            "arn:aws:s3:::private-/x",
            &ctx()
        )
        .is_allowed()
    );
}

#[test]
fn t25_username_is_absent_for_role_sessions() {
    let set = PolicySet::new()
        .resource(trust(&doc(
            r#"{"Effect":"Allow","Principal":{"AWS":"111111111111"},"Action":"sts:AssumeRole","Condition":{"StringLike":{"sts:RoleSessionName":"${aws:username}"}}}"#,
        )))
        .identity(identity(&doc(ASSUME_ANY)));
    let c = Context::new().with("sts:RoleSessionName", "alice");
    assert!(decide(&set, &alice(), "sts:AssumeRole", ROLE, &c).is_allowed());
    let me = session(
        "arn:aws:iam::111111111111:role/app",
        "AROAEXAMPLEAPPROLE001",
    );
    assert!(!decide(&set, &me, "sts:AssumeRole", ROLE, &c).is_allowed());
}

#[test]
fn t26_mfa_conditions_on_long_term_keys() {
    let needs_mfa = PolicySet::new().identity(identity(&doc(
        r#"{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*","Condition":{"Bool":{"aws:MultiFactorAuthPresent":"true"}}}"#,
    )));
    assert!(!decide(&needs_mfa, &alice(), "s3:ListBucket", "*", &ctx()).is_allowed());
    let deny_if_exists =
        allow_all_deny_when(r#"{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}"#);
    assert_eq!(
        decide(&deny_if_exists, &alice(), "s3:ListBucket", "*", &ctx()).outcome(),
        Outcome::ExplicitDeny
    );
    let deny_plain = allow_all_deny_when(r#"{"Bool":{"aws:MultiFactorAuthPresent":"false"}}"#);
    assert!(decide(&deny_plain, &alice(), "s3:ListBucket", "*", &ctx()).is_allowed());
    let with_mfa = Context::new().with("aws:MultiFactorAuthPresent", "true");
    assert!(decide(&deny_if_exists, &alice(), "s3:ListBucket", "*", &with_mfa).is_allowed());
}

#[test]
fn t27_external_id_missing_wrong_case_right() {
    let set = PolicySet::new()
        .resource(trust(&doc(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"sts:ExternalId":"Example987"}}}"#,
        )))
        .identity(identity(&doc(ASSUME_ANY)));
    assert!(!decide(&set, &alice(), "sts:AssumeRole", XROLE, &ctx()).is_allowed());
    assert!(
        !decide(
            &set,
            &alice(),
            "sts:AssumeRole",
            XROLE,
            &Context::new().with("sts:ExternalId", "example987")
        )
        .is_allowed()
    );
    assert!(
        decide(
            &set,
            &alice(),
            "sts:AssumeRole",
            XROLE,
            &Context::new().with("sts:ExternalId", "Example987")
        )
        .is_allowed()
    );
}

#[test]
fn t28_tag_session_and_set_source_identity_are_separate_actions() {
    let set = PolicySet::new().resource(trust_naming(ALICE));
    assert!(decide(&set, &alice(), "sts:AssumeRole", ROLE, &ctx()).is_allowed());
    for action in ["sts:TagSession", "sts:SetSourceIdentity"] {
        let d = decide(&set, &alice(), action, ROLE, &ctx());
        assert_eq!(d.missing(), Some(PolicyKind::Trust), "{action}");
        let message = d
            .access_denied_message(
                &podid_policy::Request::new(&alice(), action, ROLE, &ctx()),
                false,
            )
            .unwrap();
        assert_eq!(
            message,
            format!("User: {ALICE} is not authorized to perform: {action} on resource: {ROLE}")
        );
    }
}

#[test]
fn t29_pod_identity_tags_are_request_tags_in_the_trust_and_principal_tags_afterwards() {
    let eks = Principal::service("pods.eks.amazonaws.com");
    let set = PolicySet::new().resource(trust(&doc(
        r#"{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"],"Condition":{"StringEquals":{"aws:RequestTag/kubernetes-namespace":"prod"}}}"#,
    )));
    let tags = Context::new().with("aws:RequestTag/kubernetes-namespace", "prod");
    assert!(decide(&set, &eks, "sts:AssumeRole", ROLE, &tags).is_allowed());
    assert!(decide(&set, &eks, "sts:TagSession", ROLE, &tags).is_allowed());
    assert!(
        !decide(&set, &eks, "sts:AssumeRole", ROLE, &ctx()).is_allowed(),
        "disableSessionTags"
    );
    assert!(
        !decide(
            &set,
            &Principal::service("ec2.amazonaws.com"),
            "sts:AssumeRole",
            ROLE,
            &tags
        )
        .is_allowed()
    );
    // Afterwards the session's tags are principal tags.
    let pod = session(
        "arn:aws:iam::111111111111:role/pod-role",
        "AROAEXAMPLEPODROLE001",
    );
    let abac = PolicySet::new().identity(identity(&doc(
        r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::data/${aws:PrincipalTag/kubernetes-namespace}/*"}"#,
    )));
    let principal_tags = Context::new().with("aws:PrincipalTag/kubernetes-namespace", "prod");
    assert!(
        decide(
            &abac,
            &pod,
            "s3:GetObject",
            "arn:aws:s3:::data/prod/x",
            &principal_tags
        )
        .is_allowed()
    );
    assert!(
        !decide(
            &abac,
            &pod,
            "s3:GetObject",
            "arn:aws:s3:::data/dev/x",
            &principal_tags
        )
        .is_allowed()
    );
}

#[test]
fn t30_not_action_allow_grants_other_services_not_resource_deny_denies_everything_else() {
    let set = PolicySet::new().identity(identity(&doc(
        r#"{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}"#,
    )));
    assert!(decide(&set, &alice(), "s3:GetObject", "*", &ctx()).is_allowed());
    assert!(!decide(&set, &alice(), "iam:CreateUser", "*", &ctx()).is_allowed());
    let set = PolicySet::new().identity(identity(&doc(
        r#"{"Effect":"Allow","Action":"s3:*","Resource":"*"},{"Effect":"Deny","Action":"s3:*","NotResource":["arn:aws:s3:::mine","arn:aws:s3:::mine/*"]}"#,
    )));
    assert!(
        decide(
            &set,
            &alice(),
            "s3:GetObject",
            "arn:aws:s3:::mine/k",
            &ctx()
        )
        .is_allowed()
    );
    assert_eq!(
        decide(
            &set,
            &alice(),
            "s3:GetObject",
            "arn:aws:s3:::theirs/k",
            &ctx()
        )
        .outcome(),
        Outcome::ExplicitDeny
    );
}

#[test]
fn t31_not_principal_deny_must_list_the_account_and_for_sessions_the_role() {
    let bucket_policy = |listed: &str| {
        PolicySet::new()
            .resource(resource(&doc(&format!(
                r#"{{"Effect":"Deny","NotPrincipal":{{"AWS":[{listed}]}},"Action":"s3:*","Resource":"*"}},{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}}"#
            ))))
            .identity(identity(&doc(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*"}"#)))
    };
    let bob = user("arn:aws:iam::111111111111:user/bob");
    let listed = r#""arn:aws:iam::111111111111:user/bob","arn:aws:iam::111111111111:root""#;
    let x = Ownership::CrossAccount;
    assert!(
        decide_owned(&bucket_policy(listed), &bob, "s3:GetObject", "*", &ctx(), x).is_allowed()
    );
    assert_eq!(
        decide_owned(
            &bucket_policy(listed),
            &alice(),
            "s3:GetObject",
            "*",
            &ctx(),
            x
        )
        .outcome(),
        Outcome::ExplicitDeny
    );
    // Without the account, the account (and so bob) is denied.
    let only_bob = r#""arn:aws:iam::111111111111:user/bob""#;
    assert_eq!(
        decide_owned(
            &bucket_policy(only_bob),
            &bob,
            "s3:GetObject",
            "*",
            &ctx(),
            x
        )
        .outcome(),
        Outcome::ExplicitDeny
    );
    // A role session is spared only if its session, its role and its account are all listed.
    let me = session(
        "arn:aws:iam::111111111111:role/app",
        "AROAEXAMPLEAPPROLE001",
    );
    let all_three = format!(
        r#""{}","arn:aws:iam::111111111111:role/app","111111111111""#,
        me.display_arn()
    );
    assert!(
        decide_owned(
            &bucket_policy(&all_three),
            &me,
            "s3:GetObject",
            "*",
            &ctx(),
            x
        )
        .is_allowed()
    );
    let no_session = r#""arn:aws:iam::111111111111:role/app","111111111111""#;
    assert_eq!(
        decide_owned(
            &bucket_policy(no_session),
            &me,
            "s3:GetObject",
            "*",
            &ctx(),
            x
        )
        .outcome(),
        Outcome::ExplicitDeny
    );
}

#[test]
fn t32_star_with_principal_arn_condition_escapes_the_boundary() {
    let me = session(
        "arn:aws:iam::111111111111:role/app",
        "AROAEXAMPLEAPPROLE001",
    );
    let set = PolicySet::new()
        .resource(resource(&doc(
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*","Condition":{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::111111111111:role/app"}}}"#,
        )))
        .boundary(boundary(&doc(r#"{"Effect":"Allow","Action":"ec2:*","Resource":"*"}"#)))
        .session(session_policy(&doc(r#"{"Effect":"Allow","Action":"ec2:*","Resource":"*"}"#)));
    let d = decide(&set, &me, "s3:GetObject", "arn:aws:s3:::b/k", &ctx());
    assert_eq!(
        d.allow_path(),
        Some(AllowPath::ResourceGrant(Grant::Everyone))
    );
    let stranger = session(
        "arn:aws:iam::111111111111:role/other",
        "AROAEXAMPLEOTHER00001",
    );
    assert!(!decide(&set, &stranger, "s3:GetObject", "arn:aws:s3:::b/k", &ctx()).is_allowed());
}

#[test]
fn explicit_deny_wins_everywhere() {
    let deny = r#"{"Effect":"Deny","Action":"s3:GetObject","Resource":"*"}"#;
    let allow = r#"{"Effect":"Allow","Action":"s3:*","Resource":"*"}"#;
    let bucket_allow = format!(
        r#"{{"Effect":"Allow","Principal":{{"AWS":"{ALICE}"}},"Action":"s3:*","Resource":"*"}}"#
    );
    let bucket_deny = format!(
        r#"{{"Effect":"Deny","Principal":{{"AWS":"{ALICE}"}},"Action":"s3:GetObject","Resource":"*"}}"#
    );
    let base = || {
        PolicySet::new()
            .identity(identity(&doc(allow)))
            .resource(resource(&doc(&bucket_allow)))
    };
    let sets = [
        ("identity", base().identity(identity(&doc(deny)))),
        (
            "boundary",
            base().boundary(boundary(&doc(&format!("{allow},{deny}")))),
        ),
        (
            "session",
            base().session(session_policy(&doc(&format!("{allow},{deny}")))),
        ),
        ("resource", base().resource(resource(&doc(&bucket_deny)))),
    ];
    for (kind, set) in sets {
        let d = decide(&set, &alice(), "s3:GetObject", "arn:aws:s3:::b/k", &ctx());
        assert_eq!(d.outcome(), Outcome::ExplicitDeny, "{kind}");
        let message = d
            .access_denied_message(
                &podid_policy::Request::new(&alice(), "s3:GetObject", "arn:aws:s3:::b/k", &ctx()),
                true,
            )
            .unwrap();
        let expected_tail = match kind {
            "identity" => "with an explicit deny in an identity-based policy",
            "boundary" => "with an explicit deny in a permissions boundary",
            "session" => "with an explicit deny in a session policy",
            _ => "with an explicit deny in a resource-based policy",
        };
        assert!(message.ends_with(expected_tail), "{message}");
    }
}

#[test]
fn services_and_web_identities_are_decided_by_the_trust_policy_alone() {
    let eks = Principal::service("pods.eks.amazonaws.com");
    let set = PolicySet::new()
        .resource(trust(&doc(r#"{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:AssumeRole"}"#)))
        .identity(identity(&doc(r#"{"Effect":"Deny","Action":"*","Resource":"*"}"#)));
    // Identity policies are the caller's; a service has none, so they do not apply.
    assert!(decide(&set, &eks, "sts:AssumeRole", ROLE, &ctx()).is_allowed());
    // `AWS: "*"` does not name services.
    let star = PolicySet::new().resource(trust(&doc(
        r#"{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}"#,
    )));
    assert!(!decide(&star, &eks, "sts:AssumeRole", ROLE, &ctx()).is_allowed());
}

#[test]
fn the_root_user_has_every_identity_permission_of_its_account() {
    let root = Principal::root("111111111111".parse().unwrap());
    let set = PolicySet::new().resource(trust_naming("111111111111"));
    assert!(decide(&set, &root, "sts:AssumeRole", ROLE, &ctx()).is_allowed());
    let nothing = PolicySet::new();
    assert!(decide(&nothing, &root, "s3:ListAllMyBuckets", "*", &ctx()).is_allowed());
    let denied = PolicySet::new().identity(identity(&doc(
        r#"{"Effect":"Deny","Action":"s3:*","Resource":"*"}"#,
    )));
    assert!(!decide(&denied, &root, "s3:ListAllMyBuckets", "*", &ctx()).is_allowed());
}

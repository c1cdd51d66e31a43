//! Findings about policies that IAM accepts but that probably do not do what their author meant,
//! in the spirit of IAM Access Analyzer's policy checks.

use std::fmt;

use crate::ast::{AwsPrincipal, Effect, EntryKind, Policy, PolicyKind, Principals, Statement};
use crate::condition::{Compiled, Condition, Operator, SetQualifier};

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Probably a mistake with a security effect, or a value that can never match.
    Error,
    /// Legal but suspicious.
    Warning,
}

/// Something worth a second look in an accepted policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// How serious it is.
    pub severity: Severity,
    /// The statement's index.
    pub statement: usize,
    /// The statement's `Sid`.
    pub sid: Option<String>,
    /// The statement's first line.
    pub line: usize,
    /// What was found and what to do.
    pub message: String,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Error => "error",
            Self::Warning => "warning",
        })
    }
}

/// The global condition keys AWS documents (lower case), and whether each is multivalued.
const GLOBAL_KEYS: &[(&str, bool)] = &[
    ("aws:assumedroot", false),
    ("aws:calledvia", true),
    ("aws:calledviaawsmcp", false),
    ("aws:calledviafirst", false),
    ("aws:calledvialast", false),
    ("aws:chatbotsourcearn", false),
    ("aws:currenttime", false),
    ("aws:ec2instancesourceprivateipv4", false),
    ("aws:ec2instancesourcevpc", false),
    ("aws:epochtime", false),
    ("aws:federatedprovider", false),
    ("aws:ismcpserviceaction", false),
    ("aws:multifactorauthage", false),
    ("aws:multifactorauthpresent", false),
    ("aws:principalaccount", false),
    ("aws:principalarn", false),
    ("aws:principalisawsservice", false),
    ("aws:principalorgid", false),
    ("aws:principalorgpaths", true),
    ("aws:principalservicename", false),
    ("aws:principalservicenameslist", true),
    ("aws:principaltype", false),
    ("aws:referer", false),
    ("aws:requestedregion", false),
    ("aws:resourceaccount", false),
    ("aws:resourceorgid", false),
    ("aws:resourceorgpaths", true),
    ("aws:securetransport", false),
    ("aws:signinsessionarn", false),
    ("aws:sourceaccount", false),
    ("aws:sourcearn", false),
    ("aws:sourceidentity", false),
    ("aws:sourceip", false),
    ("aws:sourceorgid", false),
    ("aws:sourceorgpaths", true),
    ("aws:sourcevpc", false),
    ("aws:sourcevpcarn", false),
    ("aws:sourcevpce", false),
    ("aws:tagkeys", true),
    ("aws:tokenissuetime", false),
    ("aws:useragent", false),
    ("aws:userid", false),
    ("aws:username", false),
    ("aws:viaawsmcpservice", false),
    ("aws:viaawsservice", false),
    ("aws:vpceaccount", false),
    ("aws:vpceorgid", false),
    ("aws:vpceorgpaths", true),
    ("aws:vpcsourceip", false),
];

/// Global keys with a tag key after the slash.
const TAG_PREFIXES: [&str; 3] = ["aws:principaltag/", "aws:requesttag/", "aws:resourcetag/"];

/// Multivalued keys of other services that policies about roles use.
const MULTIVALUED_SERVICE_KEYS: [&str; 2] = ["sts:transitivetagkeys", "sts:identitytokenaudience"];

impl Policy {
    /// Findings about this policy, in statement order.
    pub fn lint(&self) -> Vec<Finding> {
        let mut findings = Vec::new();
        for (index, statement) in self.statements.iter().enumerate() {
            let mut push = |severity: Severity, message: String| {
                findings.push(Finding {
                    severity,
                    statement: index,
                    sid: statement.sid.clone(),
                    line: statement.position.start.0,
                    message,
                });
            };
            for condition in &statement.conditions {
                lint_condition(condition, self.version.has_variables(), &mut push);
            }
            lint_resources(statement, &mut push);
            let everyone = statement.principal.as_ref().is_some_and(|p| {
                !p.negated
                    && match &p.principals {
                        Principals::Star => true,
                        Principals::Entries(entries) => entries
                            .iter()
                            .any(|e| matches!(e.kind, EntryKind::Aws(AwsPrincipal::Everyone))),
                    }
            });
            if everyone && statement.effect == Effect::Allow && statement.conditions.is_empty() {
                let whom = if self.kind == PolicyKind::Trust {
                    "any AWS principal in any account may assume this role"
                } else {
                    "anyone, anonymous callers included, is allowed"
                };
                push(
                    Severity::Warning,
                    format!(
                        "`*` as the principal with no condition: {whom}; name the principals, or add a condition such as `aws:PrincipalOrgID` or `aws:PrincipalArn`"
                    ),
                );
            }
            if self.kind == PolicyKind::Trust && statement.effect == Effect::Allow {
                lint_trust(statement, &mut push);
            }
            if !self.version.has_variables() && mentions_variable(statement) {
                push(
                    Severity::Warning,
                    "`${...}` is literal text here, because policy variables need `\"Version\": \"2012-10-17\"`".into(),
                );
            }
        }
        findings
    }
}

/// The principals a trust statement allows, when it names them.
fn trust_entries(statement: &Statement) -> &[crate::ast::PrincipalEntry] {
    match &statement.principal {
        Some(p) if !p.negated => match &p.principals {
            Principals::Entries(entries) => entries,
            Principals::Star => &[],
        },
        _ => &[],
    }
}

/// Seed 001's warnings: a web identity trust that any subject of the provider meets, and an
/// account root trusted where a role would do.
fn lint_trust(statement: &Statement, push: &mut dyn FnMut(Severity, String)) {
    let has_key = |key: &str| {
        statement
            .conditions
            .iter()
            .any(|c| c.key_lower.eq_ignore_ascii_case(key))
    };
    for entry in trust_entries(statement) {
        match &entry.kind {
            EntryKind::Federated if statement.action.matches("sts:assumerolewithwebidentity") => {
                let Some(provider) = entry.text.split_once(":oidc-provider/").map(|(_, p)| p)
                else {
                    continue;
                };
                if !has_key(&format!("{provider}:sub")) {
                    push(
                        Severity::Warning,
                        format!(
                            "no condition on `{provider}:sub`: any identity the provider vouches for (for a cluster issuer, any service account of the cluster) may assume this role; add `\"StringEquals\": {{\"{provider}:sub\": \"system:serviceaccount:NAMESPACE:NAME\"}}`"
                        ),
                    );
                }
            }
            EntryKind::Aws(AwsPrincipal::Account(account)) if !has_key("aws:principalarn") => {
                push(
                    Severity::Warning,
                    format!(
                        "`{}` trusts account {account}: every user and role of that account whose own policies allow `sts:AssumeRole` on this role may assume it; name the role that should (`arn:aws:iam::{account}:role/NAME`), or add a condition on `aws:PrincipalArn`",
                        entry.text
                    ),
                );
            }
            _ => {}
        }
    }
}

fn mentions_variable(statement: &Statement) -> bool {
    let in_resources = statement
        .resource
        .as_ref()
        .is_some_and(|r| r.items.iter().any(|i| i.text.contains("${")));
    let in_conditions = statement
        .conditions
        .iter()
        .any(|c| c.spec.operator.takes_variables() && c.values().any(|v| v.contains("${")));
    in_resources || in_conditions
}

/// IAM Access Analyzer's "Missing ARN field" error: a resource ARN with fewer than six
/// components, which IAM reads with the missing ones as `*`.
fn lint_resources(statement: &Statement, push: &mut dyn FnMut(Severity, String)) {
    let Some(block) = &statement.resource else {
        return;
    };
    let element = if block.negated {
        "NotResource"
    } else {
        "Resource"
    };
    for entry in &block.items {
        let text = &*entry.text;
        let fields = crate::condition::arn_components(text, false);
        if text == "*" || fields >= 6 {
            continue;
        }
        let padded = pad_arn(text, fields);
        push(
            Severity::Error,
            format!(
                "missing ARN field: the {element} `{text}` has {fields} of the six fields of `arn:partition:service:region:account:resource`, and IAM reads the missing ones as `*`, so it means `{padded}`: write all six"
            ),
        );
    }
}

/// `text` with `:*` added until it has six fields.
fn pad_arn(text: &str, fields: usize) -> String {
    let mut padded = text.to_owned();
    for _ in fields..6 {
        padded.push_str(":*");
    }
    padded
}

fn lint_condition(condition: &Condition, variables: bool, push: &mut dyn FnMut(Severity, String)) {
    let key = &*condition.key_lower;
    let shown = condition.key();
    let multivalued = if let Some(&(_, multi)) = GLOBAL_KEYS.iter().find(|(k, _)| *k == key) {
        Some(multi)
    } else if TAG_PREFIXES
        .iter()
        .any(|p| key.strip_prefix(p).is_some_and(|tag| !tag.is_empty()))
    {
        Some(false)
    } else if key.starts_with("aws:") {
        push(
            Severity::Error,
            format!(
                "`{shown}` is not a global condition key, so requests never have it: check its spelling against the AWS list of global condition keys"
            ),
        );
        None
    } else if MULTIVALUED_SERVICE_KEYS.contains(&key) {
        Some(true)
    } else {
        if !key.contains(':') {
            push(
                Severity::Error,
                format!(
                    "condition key `{shown}` has no service prefix, so requests never have it: write `service:key`, such as `aws:SourceIp`"
                ),
            );
        }
        None
    };
    let operator = condition.spec.operator;
    match (multivalued, condition.spec.qualifier) {
        (Some(false), Some(q)) => push(
            Severity::Warning,
            format!(
                "`{}` on the single-valued key `{shown}`: set operators are for multivalued keys; {}",
                condition.spec.name(),
                match q {
                    SetQualifier::ForAllValues =>
                        "`ForAllValues` is true when the key is missing, which is rarely what is meant",
                    SetQualifier::ForAnyValue => "use the operator without `ForAnyValue:`",
                }
            ),
        ),
        (Some(true), None) if operator != Operator::Null => push(
            Severity::Warning,
            format!(
                "`{shown}` is multivalued: say `ForAllValues:` or `ForAnyValue:` before `{}`",
                operator.name()
            ),
        ),
        _ => {}
    }
    for value in &condition.values {
        let never = match &value.compiled {
            Compiled::Number(None) => Some("a number"),
            Compiled::Bool(None) => Some("`true` or `false`"),
            Compiled::Binary(None) => Some("base64"),
            Compiled::Ip(None) => Some("an IP address or CIDR block"),
            _ => None,
        };
        if let Compiled::Arn(crate::condition::ArnMatcher::Short) = &value.compiled {
            let fields = crate::condition::arn_components(&value.text, variables);
            let effect = if operator.is_negated() {
                "is true for every ARN"
            } else {
                "never matches"
            };
            push(
                Severity::Error,
                format!(
                    "`{}` for `{shown}` has {fields} of the six ARN fields, and `{}` compares each of the six on its own, so it {effect}: write all six, such as `{}`",
                    value.text,
                    operator.name(),
                    pad_arn(&value.text, fields)
                ),
            );
        }
        if let Some(expected) = never {
            push(
                Severity::Error,
                format!(
                    "`{}` for `{shown}` is not {expected}, so `{}` never matches it",
                    value.text,
                    operator.name()
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Policy, PolicyKind};

    fn lint(condition: &str) -> Vec<String> {
        let text = format!(
            r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{condition}}}}}"#
        );
        Policy::parse(&text, PolicyKind::Identity)
            .unwrap()
            .lint()
            .into_iter()
            .map(|f| format!("{}: {}", f.severity, f.message))
            .collect()
    }

    fn lint_trust(statement: &str) -> Vec<String> {
        let text = format!(r#"{{"Version":"2012-10-17","Statement":[{statement}]}}"#);
        Policy::parse(&text, PolicyKind::Trust)
            .unwrap()
            .lint()
            .into_iter()
            .map(|f| format!("{}: {}", f.severity, f.message))
            .collect()
    }

    #[test]
    fn flags_seed_001s_trusts_any_subject_and_an_account_root() {
        let host = "oidc.eks.us-west-2.amazonaws.com/id/ABC";
        let web = |condition: &str| {
            format!(
                r#"{{"Effect":"Allow","Principal":{{"Federated":"arn:aws:iam::444455556666:oidc-provider/{host}"}},"Action":"sts:AssumeRoleWithWebIdentity"{condition}}}"#
            )
        };
        let any_subject = lint_trust(&web(&format!(
            r#","Condition":{{"StringEquals":{{"{host}:aud":"sts.amazonaws.com"}}}}"#
        )));
        assert_eq!(any_subject.len(), 1, "{any_subject:?}");
        assert!(any_subject[0].starts_with(&format!("warning: no condition on `{host}:sub`")));
        assert!(any_subject[0].contains("system:serviceaccount:NAMESPACE:NAME"));
        for condition in ["StringEquals", "StringLike"] {
            let scoped = lint_trust(&web(&format!(
                r#","Condition":{{"{condition}":{{"{host}:sub":"system:serviceaccount:default:*","{host}:aud":"sts.amazonaws.com"}}}}"#
            )));
            assert!(scoped.is_empty(), "{scoped:?}");
        }
        let root = lint_trust(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"sts:AssumeRole"}"#,
        );
        assert_eq!(root.len(), 1, "{root:?}");
        assert!(
            root[0].starts_with(
                "warning: `arn:aws:iam::111122223333:root` trusts account 111122223333"
            )
        );
        assert!(root[0].contains("arn:aws:iam::111122223333:role/NAME"));
        let role = lint_trust(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/account-a-role"},"Action":"sts:AssumeRole"}"#,
        );
        assert!(role.is_empty(), "{role:?}");
        let pinned = lint_trust(
            r#"{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"sts:AssumeRole","Condition":{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/a"}}}"#,
        );
        assert!(pinned.is_empty(), "{pinned:?}");
    }

    #[test]
    fn flags_arn_patterns_with_fewer_than_six_fields() {
        let findings = lint(
            r#"{"ArnLike":{"aws:SourceArn":["arn:aws:sns:us-east-1:*","arn:aws:sns:*:*:t"]},"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::${aws:PrincipalAccount}"}}"#,
        );
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert_eq!(
            findings[0],
            "error: `arn:aws:sns:us-east-1:*` for `aws:SourceArn` has 5 of the six ARN fields, and `ArnLike` compares each of the six on its own, so it never matches: write all six, such as `arn:aws:sns:us-east-1:*:*`"
        );
        assert!(
            findings[1].contains("has 5 of the six ARN fields, and `ArnNotEquals` compares each of the six on its own, so it is true for every ARN"),
            "{findings:?}"
        );
        let text = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"sns:*","NotResource":["arn:aws:sns:us-east-1","arn:aws:sns:us-east-1:1:t","*"]}]}"#;
        let findings: Vec<String> = Policy::parse(text, PolicyKind::Identity)
            .unwrap()
            .lint()
            .into_iter()
            .map(|f| format!("{}: {}", f.severity, f.message))
            .collect();
        assert_eq!(
            findings,
            [
                "error: missing ARN field: the NotResource `arn:aws:sns:us-east-1` has 4 of the six fields of `arn:partition:service:region:account:resource`, and IAM reads the missing ones as `*`, so it means `arn:aws:sns:us-east-1:*:*`: write all six"
            ]
        );
    }

    #[test]
    fn flags_unknown_global_keys_but_not_service_keys() {
        let findings = lint(
            r#"{"StringEquals":{"aws:SourceIpp":"1.2.3.4","s3:prefix":"a","aws:PrincipalTag/team":"x"}}"#,
        );
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].starts_with("error: `aws:SourceIpp` is not a global condition key"));
    }

    #[test]
    fn flags_set_operators_on_the_wrong_kind_of_key() {
        let findings = lint(
            r#"{"ForAllValues:StringEquals":{"aws:PrincipalTag/team":"x"},"StringEquals":{"aws:TagKeys":"a"}}"#,
        );
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert!(findings[0].contains("single-valued"));
        assert!(findings[1].contains("multivalued"));
    }

    #[test]
    fn flags_values_that_never_match() {
        let findings = lint(
            r#"{"NumericLessThan":{"s3:max-keys":"ten"},"IpAddress":{"aws:SourceIp":"10.0.0.0/40"},"Bool":{"aws:SecureTransport":"yes"}}"#,
        );
        assert_eq!(findings.len(), 3, "{findings:?}");
        assert!(findings.iter().all(|f| f.contains("never matches")));
    }

    #[test]
    fn flags_everyone_without_conditions() {
        let text = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole"},{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"aws:PrincipalOrgID":"o-1"}}}]}"#;
        let findings = Policy::parse(text, PolicyKind::Trust).unwrap().lint();
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].statement, 0);
        assert!(findings[0].message.contains("may assume this role"));
    }

    #[test]
    fn flags_variables_in_old_versions() {
        let text = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/${aws:username}/*"}}"#;
        let findings = Policy::parse(text, PolicyKind::Resource).unwrap().lint();
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert!(findings[0].message.contains("anonymous callers included"));
        assert!(findings[1].message.contains("literal text"));
    }
}

//! Names and parameters as EKS checks them, with EKS's `InvalidParameterException` texts.

use crate::error::Error;

/// A cluster name: 1–100 characters, `^[0-9A-Za-z][A-Za-z0-9-_]*`.
pub(crate) fn cluster_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::InvalidParameter(
            "The parameter name should not be empty.".into(),
        ));
    }
    if name.chars().count() > 100 {
        return Err(Error::InvalidParameter(
            "The parameter name should not be greater than 100 characters.".into(),
        ));
    }
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(Error::InvalidParameter(
            "The parameter name contains invalid characters. It should conform to the regular expression \"^[0-9A-Za-z][A-Za-z0-9-_]*\"In other words, it should start with a number or letter, and can contain numbers, letters, dashes, and underscores.".into(),
        ));
    }
    Ok(())
}

/// A Kubernetes namespace: a DNS-1123 label (1–63 lower-case alphanumerics and `-`, starting
/// and ending with an alphanumeric).
pub(crate) fn namespace(name: &str) -> Result<(), Error> {
    k8s_name("namespace", name, 63, false)
}

/// A Kubernetes service account: a DNS-1123 subdomain (1–253 lower-case alphanumerics, `-`
/// and `.`, starting and ending with an alphanumeric).
pub(crate) fn service_account(name: &str) -> Result<(), Error> {
    k8s_name("serviceAccount", name, 253, true)
}

fn k8s_name(parameter: &str, name: &str, max: usize, dots: bool) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::InvalidParameter(format!(
            "The parameter {parameter} should not be empty."
        )));
    }
    if name.len() > max {
        return Err(Error::InvalidParameter(format!(
            "The parameter {parameter} should not be greater than {max} characters."
        )));
    }
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ends_ok = name.starts_with(alnum) && name.ends_with(alnum);
    let all_ok = name
        .chars()
        .all(|c| alnum(c) || c == '-' || (dots && c == '.'));
    if !ends_ok || !all_ok {
        let (pattern, words) = if dots {
            (
                "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
                "lower-case letters, numbers, dashes and dots",
            )
        } else {
            (
                "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                "lower-case letters, numbers and dashes",
            )
        };
        return Err(Error::InvalidParameter(format!(
            "The parameter {parameter} contains invalid characters. It should conform to the regular expression \"{pattern}\"In other words, it should start and end with a number or lower-case letter, and can contain {words}."
        )));
    }
    Ok(())
}

/// An association id: `a-` and 17 lower-case alphanumerics.
pub(crate) fn association_id(id: &str) -> Result<(), Error> {
    if id.len() != 19 {
        return Err(Error::InvalidParameter(
            "The parameter associationId should be 19 characters long.".into(),
        ));
    }
    Ok(())
}

/// The account of an IAM role ARN (`arn:aws:iam::ACCOUNT:role/...`), if it is one.
pub(crate) fn role_account(arn: &str) -> Option<&str> {
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let name = resource.strip_prefix("role/")?.rsplit('/').next()?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty())
        .then_some(account)
}

/// Tags: at most 50; keys 1–128 and values at most 256 characters; no `aws:` prefix.
pub(crate) fn tags(tags: &std::collections::BTreeMap<String, String>) -> Result<(), Error> {
    if tags.len() > 50 {
        return Err(Error::InvalidParameter(
            "The parameter tags should not have more than 50 entries.".into(),
        ));
    }
    for (key, value) in tags {
        if key.is_empty() || key.chars().count() > 128 {
            return Err(Error::InvalidParameter(
                "Tag keys must be between 1 and 128 characters long.".into(),
            ));
        }
        if value.chars().count() > 256 {
            return Err(Error::InvalidParameter(
                "Tag values must be at most 256 characters long.".into(),
            ));
        }
        if key.to_ascii_lowercase().starts_with("aws:")
            || value.to_ascii_lowercase().starts_with("aws:")
        {
            return Err(Error::InvalidParameter(format!(
                "Tag keys and values cannot start with 'aws:': `{key}` is reserved for AWS use."
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_names() {
        assert!(namespace("default").is_ok());
        assert!(namespace("kube-system").is_ok());
        assert!(namespace(&"a".repeat(63)).is_ok());
        assert!(namespace(&"a".repeat(64)).is_err());
        for bad in ["", "Default", "-a", "a-", "a.b", "a_b"] {
            assert!(namespace(bad).is_err(), "{bad}");
        }
        assert!(service_account("my-sa.v1").is_ok());
        assert!(service_account(&"a".repeat(253)).is_ok());
        assert!(service_account(&"a".repeat(254)).is_err());
        assert!(service_account("Bad").is_err());
    }

    #[test]
    fn cluster_names_and_role_arns() {
        assert!(cluster_name("my-cluster_1").is_ok());
        assert!(cluster_name("-x").is_err());
        assert!(cluster_name(&"c".repeat(101)).is_err());
        assert_eq!(
            role_account("arn:aws:iam::111122223333:role/a/b"),
            Some("111122223333")
        );
        assert_eq!(role_account("arn:aws:iam::111122223333:user/a"), None);
        assert_eq!(role_account("arn:aws:iam::1111:role/a"), None);
        assert_eq!(role_account(""), None);
    }
}

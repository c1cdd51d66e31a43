//! Names, paths, ARNs and store keys.

use crate::error::Error;

/// The store key of a named entity: names are unique case-insensitively within an account.
pub(crate) fn entity_key(account: &str, name: &str) -> String {
    format!("{account}/{}", name.to_lowercase())
}

/// `arn:aws:iam::ACCOUNT:KIND{path}{name}`.
pub(crate) fn arn(account: &str, kind: &str, path: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:{kind}{path}{name}")
}

/// A managed policy ARN's parts: (account or `aws`, path, name).
pub(crate) fn policy_arn_parts(arn: &str) -> Option<(&str, &str, &str)> {
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let path_and_name = resource.strip_prefix("policy")?;
    if !path_and_name.starts_with('/') {
        return None;
    }
    let split = path_and_name.rfind('/')?;
    let (path, name) = (
        path_and_name.get(..=split)?,
        path_and_name.get(split + 1..)?,
    );
    (!name.is_empty()
        && (account == "aws"
            || (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))))
    .then_some((account, path, name))
}

/// Checks an ARN parameter that must name a managed policy.
pub(crate) fn parse_policy_arn(arn: &str) -> Result<(&str, &str, &str), Error> {
    policy_arn_parts(arn).ok_or_else(|| Error::InvalidInput(format!("ARN {arn} is not valid.")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_arns() {
        assert_eq!(
            policy_arn_parts("arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"),
            Some(("aws", "/service-role/", "AmazonEBSCSIDriverPolicy"))
        );
        assert_eq!(
            policy_arn_parts("arn:aws:iam::111122223333:policy/p"),
            Some(("111122223333", "/", "p"))
        );
        assert_eq!(policy_arn_parts("arn:aws:iam::111122223333:role/p"), None);
        assert_eq!(policy_arn_parts("longpolicynamebutnoarn"), None);
        assert_eq!(policy_arn_parts("arn:aws:iam::111122223333:policy/"), None);
    }
}

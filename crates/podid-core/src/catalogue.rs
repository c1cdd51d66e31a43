//! AWS managed policies that podid ships (`catalogue/catalogue.json`, built from the files in
//! `catalogue/`; sources in `catalogue/SOURCES.md`).

use std::sync::OnceLock;

use serde::Deserialize;

/// An AWS managed policy of the catalogue.
#[derive(Clone, Debug)]
pub struct AwsManagedPolicy {
    /// `PolicyName`.
    pub name: &'static str,
    /// `Path`.
    pub path: &'static str,
    /// `arn:aws:iam::aws:policy/...`.
    pub arn: &'static str,
    /// AWS's description.
    pub description: &'static str,
    /// The version shipped.
    pub default_version: &'static str,
    /// Created, epoch milliseconds.
    pub created: i64,
    /// Updated, epoch milliseconds.
    pub updated: i64,
    /// The document (JSON).
    pub document: &'static str,
}

impl AwsManagedPolicy {
    /// A stable `ANPA…` id derived from the ARN.
    pub fn id(&self) -> String {
        const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let mut hash: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
        for b in self.arn.bytes() {
            hash ^= u128::from(b);
            hash = hash.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013B);
        }
        let suffix: String = (0..17)
            .map(|i| {
                let index = usize::try_from((hash >> (i * 5)) & 31).unwrap_or(0);
                char::from(ALPHABET.get(index).copied().unwrap_or(b'A'))
            })
            .collect();
        format!("ANPA{suffix}")
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    policy_name: String,
    path: String,
    arn: String,
    description: String,
    default_version_id: String,
    create_date: String,
    update_date: String,
    document: serde_json::Value,
}

/// Every policy of the catalogue.
pub(crate) fn all() -> &'static [AwsManagedPolicy] {
    static CATALOGUE: OnceLock<Vec<AwsManagedPolicy>> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        let entries: Vec<Entry> =
            serde_json::from_str(include_str!("../catalogue/catalogue.json")).unwrap_or_default();
        entries
            .into_iter()
            .map(|e| AwsManagedPolicy {
                name: leak(e.policy_name),
                path: leak(e.path),
                arn: leak(e.arn),
                description: leak(e.description),
                default_version: leak(e.default_version_id),
                created: millis(&e.create_date),
                updated: millis(&e.update_date),
                document: leak(serde_json::to_string_pretty(&e.document).unwrap_or_default()),
            })
            .collect()
    })
}

/// The catalogue policy with this ARN.
pub(crate) fn find(arn: &str) -> Option<&'static AwsManagedPolicy> {
    all().iter().find(|p| p.arn == arn)
}

/// The catalogue lives for the whole process; its strings are leaked once.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// `2015-02-06T18:39:46Z` → epoch milliseconds (0 if unreadable).
fn millis(text: &str) -> i64 {
    let digits: Vec<i64> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    let [y, m, d, hh, mm, ss, ..] = digits.as_slice() else {
        return 0;
    };
    let yy = if *m <= 2 { y - 1 } else { *y };
    let era = yy.div_euclid(400);
    let yoe = yy.rem_euclid(400);
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    (days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_json_matches_the_policy_files() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("catalogue");
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.ends_with(".json") || name == "catalogue.json" {
                continue;
            }
            files += 1;
            let file: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let arn = file["Arn"].as_str().unwrap();
            let shipped = find(arn).unwrap_or_else(|| {
                panic!("{name} is not in catalogue.json: run catalogue/combine.py")
            });
            let document: serde_json::Value = serde_json::from_str(shipped.document).unwrap();
            assert_eq!(
                document, file["Document"],
                "{name} differs from catalogue.json: run catalogue/combine.py"
            );
        }
        assert_eq!(
            files,
            all().len(),
            "catalogue.json has policies without a file, or the reverse"
        );
    }

    #[test]
    fn the_catalogue_has_valid_identity_policies() {
        assert!(!all().is_empty());
        for policy in all() {
            assert!(
                policy.arn.starts_with("arn:aws:iam::aws:policy/"),
                "{}",
                policy.arn
            );
            assert!(policy.arn.ends_with(policy.name));
            podid_policy::Policy::parse_with(
                policy.document,
                podid_policy::ParseOptions::simulation(podid_policy::PolicyKind::Identity),
            )
            .unwrap_or_else(|e| panic!("{}: {e}", policy.name));
            assert_eq!(policy.id().len(), 21);
        }
        for required in [
            "AdministratorAccess",
            "PowerUserAccess",
            "ReadOnlyAccess",
            "AmazonS3ReadOnlyAccess",
            "AmazonS3FullAccess",
            "AmazonEC2ContainerRegistryReadOnly",
            "AmazonEC2ContainerRegistryPowerUser",
            "AmazonEKSClusterPolicy",
            "AmazonEKSWorkerNodePolicy",
            "AmazonEKS_CNI_Policy",
            "service-role/AmazonEBSCSIDriverPolicy",
        ] {
            assert!(
                find(&format!("arn:aws:iam::aws:policy/{required}")).is_some(),
                "{required}"
            );
        }
        assert_eq!(millis("2015-02-06T18:39:46Z"), 1_423_247_986_000);
    }
}

//! The EKS add-ons podid knows: what DescribeAddonVersions and DescribeAddonConfiguration
//! answer, and what CreateAddon accepts. Versions, namespaces, service accounts and recommended
//! policies are from AWS's documentation (EKS user guide, "AWS add-ons" and "Retrieve IAM
//! information about an Amazon EKS add-on"); versions are examples of real ones, not a live list. podid runs none of them; an add-on matters here for the
//! Pod Identity associations it owns and, for `eks-pod-identity-agent`, for telling eksctl-style
//! tools that the agent is installed.

/// An add-on of the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddonSpec {
    /// Its name.
    pub name: &'static str,
    /// Its type (`networking`, `storage`, `observability`, `security`, ...).
    pub kind: &'static str,
    /// Who publishes it (`eks` for most, `s3` for Mountpoint).
    pub publisher: &'static str,
    /// Who owns it (`aws`, or `community` for EKS's community add-ons).
    pub owner: &'static str,
    /// The namespace it installs into unless `namespaceConfig` says otherwise.
    pub namespace: &'static str,
    /// Its versions, newest first; the first is the default.
    pub versions: &'static [&'static str],
    /// The service accounts that may be given a role through Pod Identity, with the managed
    /// policies AWS recommends for each.
    pub pod_identity: &'static [(&'static str, &'static [&'static str])],
}

/// The Kubernetes versions every add-on version here is offered for.
pub const CLUSTER_VERSIONS: &[&str] = &["1.28", "1.29", "1.30", "1.31", "1.32", "1.33", "1.34"];

/// The add-ons, in name order.
pub const ADDONS: &[AddonSpec] = &[
    AddonSpec {
        name: "adot",
        kind: "observability",
        publisher: "eks",
        owner: "aws",
        namespace: "opentelemetry-operator-system",
        versions: &["v0.117.0-eksbuild.1", "v0.94.1-eksbuild.1"],
        pod_identity: &[
            (
                "adot-col-prom-metrics",
                &["arn:aws:iam::aws:policy/AmazonPrometheusRemoteWriteAccess"],
            ),
            (
                "adot-col-otlp-ingest",
                &["arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"],
            ),
            (
                "adot-col-container-logs",
                &["arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy"],
            ),
        ],
    },
    AddonSpec {
        name: "amazon-cloudwatch-observability",
        kind: "observability",
        publisher: "eks",
        owner: "aws",
        namespace: "amazon-cloudwatch",
        versions: &["v5.3.0-eksbuild.1", "v3.1.0-eksbuild.1"],
        pod_identity: &[(
            "cloudwatch-agent",
            &["arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy"],
        )],
    },
    AddonSpec {
        name: "aws-ebs-csi-driver",
        kind: "storage",
        publisher: "eks",
        owner: "aws",
        namespace: "kube-system",
        versions: &["v1.48.0-eksbuild.1", "v1.31.0-eksbuild.1"],
        pod_identity: &[(
            "ebs-csi-controller-sa",
            &["arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"],
        )],
    },
    AddonSpec {
        name: "aws-efs-csi-driver",
        kind: "storage",
        publisher: "eks",
        owner: "aws",
        namespace: "kube-system",
        versions: &["v2.1.10-eksbuild.1", "v2.1.7-eksbuild.1"],
        pod_identity: &[(
            "efs-csi-controller-sa",
            &["arn:aws:iam::aws:policy/service-role/AmazonEFSCSIDriverPolicy"],
        )],
    },
    AddonSpec {
        name: "aws-guardduty-agent",
        kind: "security",
        publisher: "eks",
        owner: "aws",
        namespace: "amazon-guardduty",
        versions: &["v1.16.0-eksbuild.2", "v1.12.1-eksbuild.2"],
        pod_identity: &[],
    },
    AddonSpec {
        name: "aws-mountpoint-s3-csi-driver",
        kind: "storage",
        publisher: "s3",
        owner: "aws",
        namespace: "kube-system",
        versions: &["v1.15.0-eksbuild.1", "v1.5.1-eksbuild.1"],
        pod_identity: &[],
    },
    AddonSpec {
        name: "coredns",
        kind: "networking",
        publisher: "eks",
        owner: "aws",
        namespace: "kube-system",
        versions: &["v1.12.3-eksbuild.1", "v1.11.4-eksbuild.10"],
        pod_identity: &[],
    },
    AddonSpec {
        name: "eks-pod-identity-agent",
        kind: "security",
        publisher: "eks",
        owner: "aws",
        namespace: "kube-system",
        versions: &[
            "v1.3.8-eksbuild.2",
            "v1.3.7-eksbuild.2",
            "v1.3.4-eksbuild.1",
        ],
        pod_identity: &[],
    },
    AddonSpec {
        name: "kube-proxy",
        kind: "networking",
        publisher: "eks",
        owner: "aws",
        namespace: "kube-system",
        versions: &["v1.33.3-eksbuild.4", "v1.32.3-eksbuild.7"],
        pod_identity: &[],
    },
    AddonSpec {
        name: "metrics-server",
        kind: "observability",
        publisher: "eks",
        owner: "community",
        namespace: "kube-system",
        versions: &["v0.9.0-eksbuild.11", "v0.8.0-eksbuild.2"],
        pod_identity: &[],
    },
    AddonSpec {
        name: "snapshot-controller",
        kind: "storage",
        publisher: "eks",
        owner: "aws",
        namespace: "kube-system",
        versions: &["v8.3.0-eksbuild.1", "v8.2.0-eksbuild.1"],
        pod_identity: &[],
    },
    AddonSpec {
        name: "vpc-cni",
        kind: "networking",
        publisher: "eks",
        owner: "aws",
        namespace: "kube-system",
        versions: &["v1.20.1-eksbuild.3", "v1.19.2-eksbuild.5"],
        pod_identity: &[(
            "aws-node",
            &["arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"],
        )],
    },
];

/// The add-on named `name`.
pub fn addon(name: &str) -> Option<&'static AddonSpec> {
    ADDONS.iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_is_in_name_order_with_a_default_version_each() {
        // DescribeAddonVersions pages by name.
        assert!(
            ADDONS
                .windows(2)
                .all(|w| matches!(w, [a, b] if a.name < b.name))
        );
        assert!(ADDONS.iter().all(|a| !a.versions.is_empty()));
        assert_eq!(addon("vpc-cni").map(|a| a.pod_identity.len()), Some(1));
        assert_eq!(addon("no-such-addon"), None);
    }
}

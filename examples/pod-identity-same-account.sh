#!/usr/bin/env bash
# Seed 003, "Configure a Kubernetes service account to assume an IAM role with EKS Pod
# Identity", with the AWS CLI against podid: a policy, a role that trusts EKS Pod Identity, an
# association for default/my-service-account in cluster `local`, and a pod of that service
# account that gets the role's credentials through the agent.
source "$(dirname "$0")/lib.sh"

step "start podid (server, local cluster \`local\`, agent)"
start_podid
aws sts get-caller-identity --query Arn --output text

step "create the IAM policy (read one S3 bucket)"
cat >"$work/my-policy.json" <<'JSON'
{
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::my-pod-secrets-bucket"}
    ]
}
JSON
aws iam create-policy --policy-name my-policy --policy-document "file://$work/my-policy.json" \
    --query Policy.Arn --output text

step "create the role EKS Pod Identity may assume, and attach the policy"
cat >"$work/trust-relationship.json" <<'JSON'
{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "AllowEksAuthToAssumeRoleForPodIdentity",
            "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"]
        }
    ]
}
JSON
aws iam create-role --role-name my-role --assume-role-policy-document "file://$work/trust-relationship.json" \
    --description "my-role-description" --query Role.Arn --output text
aws iam attach-role-policy --role-name my-role --policy-arn arn:aws:iam::111122223333:policy/my-policy

step "associate the role with the service account default/my-service-account"
aws eks create-pod-identity-association --cluster-name local --role-arn arn:aws:iam::111122223333:role/my-role \
    --namespace default --service-account my-service-account
expect_equal "the role's trust policy principal" \
    "$(aws iam get-role --role-name my-role --query 'Role.AssumeRolePolicyDocument.Statement[0].Principal.Service' --output text)" \
    "pods.eks.amazonaws.com"

step "run a pod of default/my-service-account: its AWS CLI gets the role's credentials from the agent"
pod() { "$PODID" exec --cluster local --namespace default --service-account my-service-account --pod-name my-app -- "$@"; }
arn="$(pod aws sts get-caller-identity --query Arn --output text)"
case "$arn" in
arn:aws:sts::111122223333:assumed-role/my-role/eks-local-my-app-*) echo "   ok: the pod is $arn" ;;
*) echo "FAIL: the pod is $arn, not a session of my-role" >&2; exit 1 ;;
esac
expect_equal "s3:GetObject on my-pod-secrets-bucket for my-role (policy simulation)" \
    "$(aws iam simulate-principal-policy --policy-source-arn arn:aws:iam::111122223333:role/my-role \
        --action-names s3:GetObject --resource-arns arn:aws:s3:::my-pod-secrets-bucket \
        --query 'EvaluationResults[0].EvalDecision' --output text)" \
    "allowed"
expect_denied "iam:ListRoles for the pod (the role grants s3:GetObject only)" pod aws iam list-roles

step "another service account has no association"
if out="$("$PODID" exec --cluster local --namespace default --service-account other -- aws sts get-caller-identity 2>&1)"; then
    echo "FAIL: a pod without an association got credentials: $out" >&2
    exit 1
fi
echo "   ok: a pod of default/other gets no credentials"

echo
echo "example passed: same-account EKS Pod Identity (seed 003)"

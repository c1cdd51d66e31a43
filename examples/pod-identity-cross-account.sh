#!/usr/bin/env bash
# Seed 000, "Access AWS Resources using EKS Pod Identity Target IAM Roles", with the AWS CLI
# against podid: the cluster and the EKS Pod Identity role in account 111122223333, a target
# role in account 444455556666, and a pod whose credentials are a session of the target role,
# reached by role chaining with the association's external id and the pod's session tags.
source "$(dirname "$0")/lib.sh"
A=111122223333
B=444455556666

step "start podid (accounts $A and $B, cluster \`local\` in $A, agent)"
start_podid

step "account $A: the EKS Pod Identity role, which may assume the target role and tag the session"
cat >"$work/pod-trust.json" <<'JSON'
{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"]
        }
    ]
}
JSON
aws iam create-role --role-name eks-pod-identity-role --assume-role-policy-document "file://$work/pod-trust.json" \
    --query Role.Arn --output text
aws iam put-role-policy --role-name eks-pod-identity-role --policy-name assume-target --policy-document \
    "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":[\"sts:AssumeRole\",\"sts:TagSession\"],\"Resource\":\"arn:aws:iam::$B:role/target-role\"}]}"

step "associate default/reporting with the EKS Pod Identity role and the target role"
external_id="$(aws eks create-pod-identity-association --cluster-name local --namespace default \
    --service-account reporting --role-arn "arn:aws:iam::$A:role/eks-pod-identity-role" \
    --target-role-arn "arn:aws:iam::$B:role/target-role" --query association.externalId --output text)"
echo "   the association's external id: $external_id"

step "account $B: the target role trusts the EKS Pod Identity role with that external id"
cat >"$work/target-trust.json" <<JSON
{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::$A:role/eks-pod-identity-role"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {"StringEquals": {"sts:ExternalId": "$external_id"}}
        }
    ]
}
JSON
aws iam create-role --profile "$B" --role-name target-role --assume-role-policy-document "file://$work/target-trust.json" \
    --query Role.Arn --output text
# Pods of namespace `default` may list roles; reading one needs namespace `finance`.
aws iam put-role-policy --profile "$B" --role-name target-role --policy-name abac --policy-document '{
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "iam:ListRoles", "Resource": "*",
         "Condition": {"StringEquals": {"aws:PrincipalTag/kubernetes-namespace": "default"}}},
        {"Effect": "Allow", "Action": "iam:GetRole", "Resource": "*",
         "Condition": {"StringEquals": {"aws:PrincipalTag/kubernetes-namespace": "finance"}}}
    ]
}'

step "run a pod of default/reporting: its credentials are a session of the target role in $B"
pod() { "$PODID" exec --cluster local --namespace default --service-account reporting --pod-name reporting-0 -- "$@"; }
arn="$(pod aws sts get-caller-identity --query Arn --output text)"
case "$arn" in
"arn:aws:sts::$B:assumed-role/target-role/eks-local-reporting-0-"*) echo "   ok: the pod is $arn" ;;
*) echo "FAIL: the pod is $arn, not a session of $B's target-role" >&2; exit 1 ;;
esac
expect_equal "roles the pod lists in $B (allowed by its kubernetes-namespace tag)" \
    "$(pod aws iam list-roles --query 'Roles[].RoleName' --output text)" "target-role"
expect_denied "iam:GetRole for the pod (the condition wants namespace finance)" \
    pod aws iam get-role --role-name target-role

step "when the target role's trust wants another external id, the chain is refused"
aws iam update-assume-role-policy --profile "$B" --role-name target-role --policy-document \
    "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"arn:aws:iam::$A:role/eks-pod-identity-role\"},\"Action\":[\"sts:AssumeRole\",\"sts:TagSession\"],\"Condition\":{\"StringEquals\":{\"sts:ExternalId\":\"another-id\"}}}]}"
if out="$("$PODID" exec --cluster local --namespace default --service-account reporting --pod-name reporting-1 -- \
    aws sts get-caller-identity 2>&1)"; then
    echo "FAIL: a new pod got credentials although the target role's trust wants another external id: $out" >&2
    exit 1
fi
echo "   ok: a new pod gets no credentials"
echo "   the audit trail says why:"
"$PODID" audit --event-name AssumeRoleForPodIdentity --outcome denied --output table | tee "$work/audit.txt"
grep -q "AccessDeniedException: EKS Pod Identity could not assume the target role.*reporting-1" "$work/audit.txt"

echo
echo "example passed: cross-account target role (seed 000)"

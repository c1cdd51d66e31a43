#!/usr/bin/env bash
# Seed 001, "Authenticate to another account with IRSA", with the AWS CLI against podid: account
# 111122223333 owns cluster `local`; pods of its service accounts get account 444455556666's
# role, by an OIDC provider in account B (option 1) or by chained profiles (option 2).
source "$(dirname "$0")/lib.sh"
A=111122223333
B=444455556666

step "start podid (server, local cluster \`local\`, agent)"
start_podid
issuer="$(aws eks describe-cluster --name local --query cluster.identity.oidc.issuer --output text)"
provider="${issuer#https://}"
echo "   the cluster's issuer: $issuer"

step "option 1: account B registers the cluster's issuer as an OIDC provider"
aws iam create-open-id-connect-provider --profile "$B" --url "$issuer" --client-id-list sts.amazonaws.com \
    --query OpenIDConnectProviderArn --output text

step "option 1: account B's role trusts the provider for default/my-service-account"
cat >"$work/b-trust.json" <<JSON
{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::$B:oidc-provider/$provider"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                "$provider:sub": "system:serviceaccount:default:my-service-account",
                "$provider:aud": "sts.amazonaws.com"
            }}
        }
    ]
}
JSON
"$PODID" policy validate --kind trust "$work/b-trust.json"
aws iam create-role --profile "$B" --role-name account-b-role --assume-role-policy-document "file://$work/b-trust.json" \
    --query Role.Arn --output text
aws iam put-role-policy --profile "$B" --role-name account-b-role --policy-name read-roles --policy-document \
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:GetRole","Resource":"*"}]}'

step "option 1: the service account is annotated with account B's role"
"$PODID" serviceaccount create my-service-account --cluster local \
    --role-arn "arn:aws:iam::$B:role/account-b-role" --output table

step "option 1: a pod of the service account is account B's role"
pod() { "$PODID" exec --cluster local --namespace default --service-account "$1" --pod-name my-app -- "${@:2}"; }
arn="$(pod my-service-account aws sts get-caller-identity --query Arn --output text)"
case "$arn" in
arn:aws:sts::$B:assumed-role/account-b-role/*) echo "   ok: the pod is $arn" ;;
*) echo "FAIL: the pod is $arn, not a session of account B's role" >&2; exit 1 ;;
esac
expect_denied "iam:ListRoles for the pod (the role grants iam:GetRole only)" pod my-service-account aws iam list-roles
if out="$(pod other aws sts get-caller-identity 2>&1)"; then
    echo "FAIL: a pod of default/other got credentials: $out" >&2
    exit 1
fi
echo "   ok: a pod of default/other (no annotation, no association) gets no credentials"

step "option 2: account A's IRSA role, trusted by the cluster's provider in account A"
"$PODID" cluster associate-oidc-provider local --output table
cat >"$work/a-trust.json" <<JSON
{ "Version":"2012-10-17", "Statement": [ { "Effect": "Allow", "Principal": { "Federated": "arn:aws:iam::$A:oidc-provider/$provider" }, "Action": "sts:AssumeRoleWithWebIdentity", "Condition": { "StringEquals": { "$provider:aud": "sts.amazonaws.com", "$provider:sub": "system:serviceaccount:default:chained" } } } ] }
JSON
aws iam create-role --role-name account-a-role --assume-role-policy-document "file://$work/a-trust.json" \
    --query Role.Arn --output text
aws iam put-role-policy --role-name account-a-role --policy-name chain --policy-document \
    "{ \"Version\":\"2012-10-17\", \"Statement\": [ { \"Effect\": \"Allow\", \"Action\": \"sts:AssumeRole\", \"Resource\": \"arn:aws:iam::$B:role/account-b-target\" } ] }"

step "option 2: account B's target role trusts account A (the seed's policy; the lint warns)"
cat >"$work/b-root-trust.json" <<JSON
{ "Version":"2012-10-17", "Statement": [ { "Effect": "Allow", "Principal": { "AWS": "arn:aws:iam::$A:root" }, "Action": "sts:AssumeRole", "Condition": {} } ] }
JSON
"$PODID" policy validate --kind trust "$work/b-root-trust.json"
aws iam create-role --profile "$B" --role-name account-b-target \
    --assume-role-policy-document "file://$work/b-root-trust.json" --query Role.Arn --output text

step "option 2: a pod chains the two roles with the seed's profiles"
"$PODID" serviceaccount create chained --cluster local --role-arn "arn:aws:iam::$A:role/account-a-role" --output table
arn="$(pod chained sh -c '
    printf "[profile account_b_role]\nsource_profile = account_a_role\nrole_arn=arn:aws:iam::'"$B"':role/account-b-target\n[profile account_a_role]\nweb_identity_token_file = %s\nrole_arn=arn:aws:iam::'"$A"':role/account-a-role\n" \
        "$AWS_WEB_IDENTITY_TOKEN_FILE" >"$(dirname "$AWS_CONFIG_FILE")/chained-config"
    # The pod'"'"'s own HOME: the AWS CLI caches assumed-role credentials in ~/.aws/cli/cache, keyed
    # by the role, and a cache left by an earlier podid would hand this pod its dead sessions.
    HOME="$(dirname "$AWS_CONFIG_FILE")" AWS_CONFIG_FILE="$(dirname "$AWS_CONFIG_FILE")/chained-config" \
        aws sts get-caller-identity --profile account_b_role --query Arn --output text')"
case "$arn" in
arn:aws:sts::$B:assumed-role/account-b-target/*) echo "   ok: the chained pod is $arn" ;;
*) echo "FAIL: the chained pod is $arn, not a session of account B's target role" >&2; exit 1 ;;
esac

echo
echo "example passed: IRSA across accounts (seed 001)"

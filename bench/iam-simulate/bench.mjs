// Case (a) of `cargo bench -p podid-policy --bench decisions` (the Pod Identity trust policy with
// a tag condition), run through iam-simulate, the best-known open-source IAM evaluator
// (TypeScript, AGPL; installed from npm, not part of podid). Its API takes policy JSON on every
// call, so each decision includes parsing. Run: npm ci && npm run bench

import { runSimulation } from '@cloud-copilot/iam-simulate'

const trust = {
  Version: '2012-10-17',
  Statement: [{
    Sid: 'AllowEksAuthToAssumeRoleForPodIdentity',
    Effect: 'Allow',
    Principal: { Service: 'pods.eks.amazonaws.com' },
    Action: ['sts:AssumeRole', 'sts:TagSession'],
    Condition: { StringEquals: { 'aws:RequestTag/kubernetes-namespace': 'prod', 'aws:RequestTag/kubernetes-service-account': 'api' } }
  }]
}
const simulation = {
  request: {
    principal: 'pods.eks.amazonaws.com',
    action: 'sts:AssumeRole',
    resource: { resource: 'arn:aws:iam::111122223333:role/app', accountId: '111122223333' },
    contextVariables: {
      'aws:RequestTag/eks-cluster-arn': 'arn:aws:eks:us-east-1:111122223333:cluster/prod',
      'aws:RequestTag/eks-cluster-name': 'prod',
      'aws:RequestTag/kubernetes-namespace': 'prod',
      'aws:RequestTag/kubernetes-service-account': 'api',
      'aws:RequestTag/kubernetes-pod-name': 'api-7d9f-abcde',
      'aws:RequestTag/kubernetes-pod-uid': '0d3c2a4e-1111-2222-3333-444455556666',
      'aws:TagKeys': ['eks-cluster-arn', 'eks-cluster-name', 'kubernetes-namespace', 'kubernetes-service-account', 'kubernetes-pod-name', 'kubernetes-pod-uid']
    }
  },
  identityPolicies: [],
  serviceControlPolicies: [],
  resourceControlPolicies: [],
  resourcePolicy: trust
}
const first = await runSimulation(simulation, {})
console.log(JSON.stringify(first.errors ?? first.result?.analysis?.result ?? first, null, 0).slice(0, 300))
for (const seconds of [2, 5]) {
  let n = 0
  const start = performance.now()
  while (performance.now() - start < seconds * 1000) {
    await runSimulation(simulation, {})
    n++
  }
  const elapsed = (performance.now() - start) / 1000
  console.log(`${n} decisions in ${elapsed.toFixed(2)} s: ${(n / elapsed).toFixed(0)} decisions/s`)
}

//! Any bytes as an AdmissionReview, as `podid webhook` reads it: parsing never panics, and a
//! pod's creation is mutated (with and without an association, with the service account the pod
//! itself annotates) into a patch that applies to the pod and whose output mutates to nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podid_webhook::review::{self, Request};
use podid_webhook::{Config, ServiceAccount, apply, mutate};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(Request::CreatePod(pod)) = review::parse(data) else {
        return;
    };
    // The pod's own annotations stand for its service account's (role-arn, audience, ...).
    let account = ServiceAccount {
        annotations: pod
            .pod
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let config = Config {
        fs_group: Some(65534),
        region: Some("eu-west-1".into()),
        ..Config::default()
    };
    for associated in [false, true] {
        let mutation = mutate(&pod.pod, Some(&account), associated, &config, &mut |low, _| low);
        let _ = review::allow(&pod.uid, &pod.api_version, &mutation, &[]);
        let mut out = pod.pod.clone();
        if apply(&mut out, &mutation.patch).is_err() {
            // A patch that does not apply would be refused by the API server: only pods with
            // shapes Kubernetes rejects anyway (a `containers` that is not a list of objects,
            // say) may get one.
            continue;
        }
        let again = mutate(&out, Some(&account), associated, &config, &mut |low, _| low);
        assert!(again.patch.is_empty(), "not idempotent: {:?}", again.patch);
    }
});

//! Any bytes as a query-protocol form (`Action=...&...`), decoded against every IAM and STS
//! operation of AWS's models: decoding and the model's checks must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podid_protocol::{QueryRequest, Service};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(params) = podid_sigv4::query_params(text) else { return };
    for service in [Service::Iam, Service::Sts] {
        let model = service.model();
        let names: Vec<String> = model.operation_names().map(str::to_owned).collect();
        let wanted = params.get("Action").cloned();
        for name in names.iter().filter(|n| wanted.as_deref().is_none_or(|w| w == n.as_str())) {
            if let Some(operation) = model.operation(name) {
                let _ = QueryRequest::decode(model, operation, &params);
            }
        }
    }
});

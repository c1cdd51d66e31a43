//! Any bytes, as a policy case file: loading must never panic, and every case must run.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podid_policy::Case;

fuzz_target!(|data: &[u8]| {
    if let Ok(cases) = Case::load(data) {
        for case in cases {
            let _ = case.run();
        }
    }
});

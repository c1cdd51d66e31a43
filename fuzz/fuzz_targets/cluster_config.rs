//! Any bytes as an eksctl ClusterConfig file: the strict YAML reading, the error description
//! (line, column, the key meant) and the metadata checks must never panic.
#![no_main]

// The parser lives in the `podid` binary crate; it depends only on serde, so the fuzz crate
// compiles the same file.
#[allow(dead_code, unreachable_pub, reason = "the binary's module, compiled here for its parser")]
#[path = "../../crates/podid/src/eksctl/config.rs"]
mod config;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match config::ClusterConfig::parse(text) {
        Ok(parsed) => {
            let _ = parsed.checked_metadata();
            let _ = parsed.ignored_sections();
            let _ = (parsed.name(), parsed.region());
        }
        Err(message) => assert!(!message.is_empty()),
    }
});

#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(s) = freshen_apt::sources::parse_list(text, "sources.list", "amd64") {
            for e in s {
                let _ = e.dist_url();
            }
        }
        let _ = freshen_apt::sources::parse_sources(text, "x.sources", "amd64");
    }
});

#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(mut pkgs) = freshen_apt::status::parse_status(text, "status") {
            freshen_apt::status::attribute_layers(&mut pkgs, &[(0, data), (1, data)]);
        }
    }
});

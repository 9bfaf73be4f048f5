#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for p in freshen_apt::deb822::paragraphs(text) {
            let Ok(p) = p else { break };
            for f in &p.fields {
                assert!(f.line >= p.line);
                let _ = f.value();
            }
        }
        let _ = freshen_apt::preferences::parse_preferences(text, "prefs");
    }
});

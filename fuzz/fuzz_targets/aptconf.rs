#![no_main]
use libfuzzer_sys::fuzz_target;

// apt.conf syntax, preferences (pins) and auth.conf: all come from images
// freshen did not build.
fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = freshen_apt::aptconf::AptConf::parse(text, "apt.conf") {
            let _ = c.find("APT::Default-Release");
            let _ = c.find_bool("Acquire::Check-Valid-Until", true);
        }
        if let Ok(p) = freshen_apt::preferences::parse_preferences(text, "preferences") {
            for pin in p.pins {
                let _ = pin.applies_to("libc6", "glibc", "amd64", "amd64");
            }
        }
        let mut auth = freshen_apt::auth::AuthTable::default();
        auth.parse(text);
        let _ = auth.lookup("https://deb.example.org/debian/dists/x/InRelease");
    }
});

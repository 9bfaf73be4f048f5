#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(r) = freshen_apt::release::Release::parse(text) {
            let _ = r.check_dates(chrono::Utc::now(), true, true);
            let _ = r.index_path("main", "binary-amd64/Packages");
            let _ = r.is_security();
        }
        let _ = freshen_apt::release::parse_date(text);
        let _ = freshen_apt::changelog::parse_changelog(text);
    }
});

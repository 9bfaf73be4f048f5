#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Want every package the input names, so every stanza is parsed.
    let text = String::from_utf8_lossy(data);
    let wanted: std::collections::HashSet<String> =
        text.lines().filter_map(|l| l.strip_prefix("Package:")).map(|n| n.trim().to_string()).collect();
    let _ = freshen_apt::packages::scan_reader(data, "Packages", &wanted, 0);
    let _ = freshen_apt::relation::parse(&text, "amd64");
});

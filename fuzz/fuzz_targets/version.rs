#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (a, b) = text.split_once('\n').unwrap_or((text, "0"));
    let (Ok(va), Ok(vb)) = (freshen_apt::version::parse(a), freshen_apt::version::parse(b)) else { return };
    // A total order: antisymmetric and reflexive.
    assert_eq!(va.cmp(&vb), vb.cmp(&va).reverse());
    assert_eq!(va.cmp(&va), std::cmp::Ordering::Equal);
});

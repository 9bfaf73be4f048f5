//! Running `freshen` on a host and reading `status --format json`.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use super::freshen;

/// `freshen ARGS` with `cache`, asserting the exit code.
pub fn expect(args: &[&str], cache: &Path, code: i32) -> Output {
    let out = freshen(args, cache);
    assert_eq!(out.status.code(), Some(code), "freshen {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

/// `freshen status --format json` of a state directory.
pub fn status(state: &Path) -> Value {
    let out = expect(&["status", "--state", state.to_str().unwrap(), "--format", "json"], Path::new("/nonexistent"), 0);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The target named `name` in a status.
pub fn target<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["targets"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("no target {name}: {status:#}"))
}

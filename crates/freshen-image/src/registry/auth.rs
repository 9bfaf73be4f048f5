//! Registry authentication: `WWW-Authenticate` challenges and credentials
//! from `--creds` or Docker's `config.json` (and its credential helpers).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::Value;

/// A user name and password (or secret).
pub(super) type Creds = (String, String);

/// Runs a credential helper: `(name, server URL)` to what it knows.
pub(super) type Helper<'a> = &'a dyn Fn(&str, &str) -> Result<Option<Creds>, String>;

/// What a registry's `WWW-Authenticate` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Challenge {
    /// Send the credentials with every request.
    Basic,
    /// Fetch a token from `realm` (for `service`) and send it as a bearer.
    Bearer { realm: String, service: Option<String> },
}

/// Parses a `WWW-Authenticate` header: `Bearer realm="…",service="…",
/// scope="…"` or `Basic realm="…"`. With several challenges, Bearer wins.
pub(super) fn parse_challenge(header: &str) -> Option<Challenge> {
    let mut found = None;
    for (scheme, params) in split_challenges(header) {
        let param = |k: &str| params.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
        if scheme.eq_ignore_ascii_case("bearer") {
            if let Some(realm) = param("realm").filter(|r| !r.is_empty()) {
                return Some(Challenge::Bearer { realm, service: param("service") });
            }
        } else if scheme.eq_ignore_ascii_case("basic") {
            found = Some(Challenge::Basic);
        }
    }
    found
}

/// Splits a header into (scheme, [(name, value)]) challenges.
fn split_challenges(header: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut rest = header.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches([',', ' ', '\t']);
        let end = rest.find(|c: char| c == '=' || c == ',' || c.is_whitespace()).unwrap_or(rest.len());
        let token = &rest[..end];
        let after = rest[end..].trim_start();
        if token.is_empty() {
            break;
        }
        match after.strip_prefix('=').filter(|_| !out.is_empty()) {
            // `name=value` belongs to the current challenge.
            Some(value) => {
                let (value, tail) = parse_value(value.trim_start());
                if let Some(last) = out.last_mut() {
                    last.1.push((token.to_string(), value));
                }
                rest = tail;
            }
            // A new scheme.
            None => {
                out.push((token.to_string(), Vec::new()));
                rest = after;
            }
        }
    }
    out
}

/// A quoted string (with `\` escapes) or a token, and what follows it.
fn parse_value(s: &str) -> (String, &str) {
    let Some(quoted) = s.strip_prefix('"') else {
        let end = s.find([',', ' ', '\t']).unwrap_or(s.len());
        return (s[..end].to_string(), &s[end..]);
    };
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, n)) = chars.next() {
                    value.push(n);
                }
            }
            '"' => return (value, &quoted[i + 1..]),
            c => value.push(c),
        }
    }
    (value, "")
}

/// The `Authorization` value for basic credentials.
pub(super) fn basic(creds: &Creds) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", creds.0, creds.1)))
}

/// The names Docker's `config.json` may file a registry under are compared
/// by host: `https://host/v1/` is `host`, and Docker Hub has aliases.
fn host_key(s: &str) -> String {
    let s = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")).unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io".into(),
        h => h.to_string(),
    }
}

/// The server URL Docker's credential helpers know a registry by.
fn helper_server(registry: &str) -> String {
    if host_key(registry) == "docker.io" {
        "https://index.docker.io/v1/".into()
    } else {
        registry.to_string()
    }
}

/// Credentials for `registry` from Docker's config: `credHelpers[host]`,
/// else `credsStore`, else `auths` (`auth` = base64 `user:pass`, or
/// `username`/`password`). `helper(name, server)` runs a credential helper.
pub(super) fn from_config(
    config: &Value,
    registry: &str,
    helper: Helper<'_>,
) -> Result<Option<Creds>, String> {
    let key = host_key(registry);
    let server = helper_server(registry);
    let named_helper = config["credHelpers"].as_object().and_then(|h| h.iter().find(|(k, _)| host_key(k) == key)).and_then(|(_, v)| v.as_str());
    if let Some(name) = named_helper {
        return helper(name, &server);
    }
    if let Some(name) = config["credsStore"].as_str().filter(|n| !n.is_empty()) {
        if let Some(c) = helper(name, &server)? {
            return Ok(Some(c));
        }
    }
    let Some(auths) = config["auths"].as_object() else { return Ok(None) };
    for (k, entry) in auths.iter().filter(|(k, _)| host_key(k) == key) {
        if let Some(auth) = entry["auth"].as_str().filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| format!("config.json: auths[\"{k}\"].auth is not base64 of USER:PASS"))?;
            let (u, p) = decoded.split_once(':').ok_or_else(|| format!("config.json: auths[\"{k}\"].auth is not USER:PASS"))?;
            return Ok(Some((u.to_string(), p.to_string())));
        }
        if let (Some(u), Some(p)) = (entry["username"].as_str(), entry["password"].as_str()) {
            return Ok(Some((u.to_string(), p.to_string())));
        }
    }
    Ok(None)
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn config_path() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(d) => Some(PathBuf::from(d).join("config.json")),
        None => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json")),
    }
}

/// Credentials for `registry` from Docker's config file, if it has any.
pub(super) fn lookup(registry: &str) -> Result<Option<Creds>, String> {
    let Some(path) = config_path() else { return Ok(None) };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let config: Value = serde_json::from_slice(&bytes).map_err(|e| format!("{}: invalid JSON: {e}", path.display()))?;
    from_config(&config, registry, &run_helper).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs `docker-credential-NAME get` with the server on stdin.
fn run_helper(name: &str, server: &str) -> Result<Option<Creds>, String> {
    let program = format!("docker-credential-{name}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("credential helper {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is reported by its status.
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| format!("credential helper {program}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let msg = format!("{text} {}", String::from_utf8_lossy(&out.stderr));
        if msg.contains("credentials not found") {
            return Ok(None);
        }
        return Err(format!("credential helper {program} failed for {server}: {}", msg.split_whitespace().collect::<Vec<_>>().join(" ")));
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("credential helper {program}: invalid JSON: {e}"))?;
    let user = v["Username"].as_str().unwrap_or_default();
    let secret = v["Secret"].as_str().unwrap_or_default();
    if user == "<token>" {
        return Err(format!("credential helper {program} returned an identity token for {server}, which freshen does not support; use --creds"));
    }
    Ok(Some((user.to_string(), secret.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_challenges() {
        assert_eq!(
            parse_challenge(r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull""#),
            Some(Challenge::Bearer { realm: "https://auth.docker.io/token".into(), service: Some("registry.docker.io".into()) })
        );
        assert_eq!(parse_challenge(r#"Basic realm="Registry Realm""#), Some(Challenge::Basic));
        assert_eq!(parse_challenge("basic realm=x"), Some(Challenge::Basic));
        assert_eq!(
            parse_challenge(r#"Basic realm="a, b", Bearer realm="https://x/t\"q\"", error="invalid_token""#),
            Some(Challenge::Bearer { realm: "https://x/t\"q\"".into(), service: None })
        );
        assert_eq!(parse_challenge(r#"Bearer service="s""#), None, "a bearer challenge needs a realm");
        assert_eq!(parse_challenge(""), None);
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge(r#"Bearer realm="unterminated"#), Some(Challenge::Bearer { realm: "unterminated".into(), service: None }));
    }

    fn no_helper(_: &str, _: &str) -> Result<Option<Creds>, String> {
        Err("no helper expected".into())
    }

    #[test]
    fn config_auths() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3:cret");
        let config = json!({"auths": {
            "https://index.docker.io/v1/": {"auth": auth},
            "reg.example:5000": {"username": "bob", "password": "pw"},
            "https://other.example/v2/": {"auth": base64::engine::general_purpose::STANDARD.encode("carol:x")},
            "empty.example": {},
        }});
        let get = |r: &str| from_config(&config, r, &no_helper).unwrap();
        assert_eq!(get("docker.io"), Some(("alice".into(), "s3:cret".into())));
        assert_eq!(get("reg.example:5000"), Some(("bob".into(), "pw".into())));
        assert_eq!(get("other.example"), Some(("carol".into(), "x".into())));
        assert_eq!(get("reg.example"), None, "the port is part of the name");
        assert_eq!(get("empty.example"), None);
        let bad = json!({"auths": {"x.example": {"auth": "%%%"}}});
        assert!(from_config(&bad, "x.example", &no_helper).is_err());
    }

    #[test]
    fn config_helpers() {
        let config = json!({
            "credsStore": "store",
            "credHelpers": {"gcr.io": "gcloud"},
            "auths": {"plain.example": {"auth": base64::engine::general_purpose::STANDARD.encode("u:p")}},
        });
        let helper = |name: &str, server: &str| -> Result<Option<Creds>, String> {
            match (name, server) {
                ("gcloud", "gcr.io") => Ok(Some(("oauth2".into(), "tok".into()))),
                ("store", "https://index.docker.io/v1/") => Ok(Some(("hub".into(), "pw".into()))),
                ("store", _) => Ok(None),
                _ => Err(format!("unexpected {name} {server}")),
            }
        };
        let get = |r: &str| from_config(&config, r, &helper).unwrap();
        assert_eq!(get("gcr.io"), Some(("oauth2".into(), "tok".into())));
        assert_eq!(get("docker.io"), Some(("hub".into(), "pw".into())));
        assert_eq!(get("plain.example"), Some(("u".into(), "p".into())), "the store has nothing: fall back to auths");
        assert_eq!(get("none.example"), None);
    }
}

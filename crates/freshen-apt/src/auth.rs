//! Login information for private mirrors: `/etc/apt/auth.conf` and
//! `/etc/apt/auth.conf.d/*.conf` of the image (apt_auth.conf(5), a
//! netrc-like format), and `user:password@` in a source's URI. Credentials
//! are only ever sent as HTTP basic authentication to matching URLs and
//! never shown: their `Debug` hides the password, and sources keep their
//! URI without them.

use freshen_http::percent_decode;

use crate::system::RootView;

/// A login and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub login: String,
    password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "Credentials {{ login: {:?}, password: <hidden> }}", self.login)
    }
}

impl Credentials {
    pub fn new(login: &str, password: &str) -> Credentials {
        Credentials { login: login.to_string(), password: password.to_string() }
    }

    /// The `Authorization` header value.
    pub fn basic(&self) -> String {
        use base64::Engine as _;
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.login, self.password)))
    }
}

/// One `machine [scheme://]host[:port][/path]` entry.
#[derive(Clone, Debug)]
struct Machine {
    scheme: Option<String>,
    host: String,
    port: Option<String>,
    path: String,
    creds: Credentials,
}

/// Credentials for URLs, looked up as apt does: the first matching entry.
#[derive(Clone, Debug, Default)]
pub struct AuthTable {
    machines: Vec<Machine>,
}

/// Splits `user:password@` off a URI: (URI without them, credentials).
pub fn split_userinfo(uri: &str) -> (String, Option<Credentials>) {
    let Some((scheme, rest)) = uri.split_once("://") else { return (uri.to_string(), None) };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => {
            let (login, password) = rest[..at].split_once(':').unwrap_or((&rest[..at], ""));
            (format!("{scheme}://{}", &rest[at + 1..]), Some(Credentials::new(&percent_decode(login), &percent_decode(password))))
        }
        None => (uri.to_string(), None),
    }
}

impl AuthTable {
    /// Reads the image's auth.conf.d parts (sorted) and then auth.conf, as apt does.
    pub fn read(view: &dyn RootView) -> AuthTable {
        let mut files: Vec<String> = view.list("etc/apt/auth.conf.d").into_iter().filter(|n| n.ends_with(".conf")).map(|n| format!("etc/apt/auth.conf.d/{n}")).collect();
        files.push("etc/apt/auth.conf".into());
        let mut t = AuthTable::default();
        for f in files {
            if let Some(data) = view.read(&f) {
                t.parse(&String::from_utf8_lossy(data));
            }
        }
        t
    }

    /// Adds the entries of one netrc-like text.
    pub fn parse(&mut self, text: &str) {
        let mut tokens = text.split_whitespace();
        let mut current: Option<(String, Option<String>, Option<String>)> = None;
        let flush = |c: Option<(String, Option<String>, Option<String>)>, out: &mut Vec<Machine>| {
            if let Some((machine, Some(login), password)) = c {
                if let Some(m) = parse_machine(&machine, Credentials::new(&login, password.as_deref().unwrap_or(""))) {
                    out.push(m);
                }
            }
        };
        while let Some(tok) = tokens.next() {
            match tok {
                "machine" => {
                    flush(current.take(), &mut self.machines);
                    current = tokens.next().map(|m| (m.to_string(), None, None));
                }
                "login" => {
                    if let (Some(c), Some(v)) = (current.as_mut(), tokens.next()) {
                        c.1 = Some(v.to_string());
                    }
                }
                "password" => {
                    if let (Some(c), Some(v)) = (current.as_mut(), tokens.next()) {
                        c.2 = Some(v.to_string());
                    }
                }
                _ => {}
            }
        }
        flush(current.take(), &mut self.machines);
    }

    /// The credentials for `url`, if an entry matches it.
    pub fn lookup(&self, url: &str) -> Option<&Credentials> {
        let (scheme, rest) = url.split_once("://")?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        let path = if end < rest.len() { &rest[end..] } else { "/" };
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = split_port(hostport);
        self.machines
            .iter()
            .find(|m| {
                let scheme_ok = match &m.scheme {
                    Some(s) => s.eq_ignore_ascii_case(scheme),
                    None => scheme == "https" || scheme == "tor+https",
                };
                scheme_ok && m.host.eq_ignore_ascii_case(host) && (m.port.is_none() || m.port.as_deref() == port) && path.starts_with(&m.path)
            })
            .map(|m| &m.creds)
    }
}

fn split_port(hostport: &str) -> (&str, Option<&str>) {
    if hostport.starts_with('[') {
        return match hostport.find("]:") {
            Some(i) => (&hostport[..=i], Some(&hostport[i + 2..])),
            None => (hostport, None),
        };
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
        _ => (hostport, None),
    }
}

fn parse_machine(machine: &str, creds: Credentials) -> Option<Machine> {
    let (scheme, rest) = match machine.split_once("://") {
        Some((s, r)) => (Some(s.to_string()), r),
        None => (None, machine),
    };
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, String::new()),
    };
    if hostport.is_empty() {
        return None;
    }
    let (host, port) = split_port(hostport);
    Some(Machine { scheme, host: host.to_string(), port: port.map(str::to_string), path, creds })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_apt_auth_conf_5() {
        // The examples of apt_auth.conf(5).
        for yes in ["machine example.org", "machine example.org/deb", "machine example.org/debian", "machine example.org/debian/"] {
            let mut t = AuthTable::default();
            t.parse(&format!("{yes} login apt password debian"));
            assert!(t.lookup("https://example.org/debian/dists/bookworm/InRelease").is_some(), "{yes}");
        }
        for no in ["machine example.org:443", "machine example.org/deb/", "machine example.org/ubuntu", "machine example.orga", "machine example.net"] {
            let mut t = AuthTable::default();
            t.parse(&format!("{no} login apt password debian"));
            assert!(t.lookup("https://example.org/debian/dists/bookworm/InRelease").is_none(), "{no}");
        }
        let mut t = AuthTable::default();
        t.parse("machine example.org\nlogin a\npassword b\nmachine http://plain.example:8080/repo login c password d\n");
        // https only unless the entry names http://.
        assert!(t.lookup("http://example.org/x").is_none());
        assert_eq!(t.lookup("https://example.org/x").unwrap().basic(), "Basic YTpi");
        assert!(t.lookup("http://plain.example:8080/repo/x").is_some());
        assert!(t.lookup("http://plain.example/repo/x").is_none());
        assert!(!format!("{t:?}").contains("\"d\""));
    }

    #[test]
    fn userinfo_is_split_off() {
        let (uri, c) = split_userinfo("https://me:p%40ss@host/debian");
        assert_eq!(uri, "https://host/debian");
        assert_eq!(c.unwrap().basic(), Credentials::new("me", "p@ss").basic());
        assert_eq!(split_userinfo("http://host/a@b").0, "http://host/a@b");
    }
}

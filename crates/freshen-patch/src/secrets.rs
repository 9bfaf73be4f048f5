//! Per-instance secrets: files a package's maintainer scripts generate the
//! first time they configure it on a machine, when they are missing. An
//! image that ships without them expects each container (or its entrypoint)
//! to make its own; a patch layer that carried the ones made in the sandbox
//! would give every container of the image (and, through recorded patches,
//! every image on the same base) the same private key or identity. They
//! never enter a patch layer: what the image had stays as it was.

/// Root-relative paths; `*` in the last component matches any run of
/// characters.
pub const SECRETS: &[(&str, &str)] = &[
    // openssh-server's postinst runs `ssh-keygen -A`: private host keys
    // (and their public halves, useless without them) identify the host.
    ("etc/ssh/ssh_host_*", "OpenSSH host keys"),
    // dropbear's postinst makes its host keys the same way.
    ("etc/dropbear/dropbear_*_host_key", "Dropbear host keys"),
    // systemd and dbus postinsts create the machine ID: a unique, private
    // identifier (D-Bus, journald, DHCP client IDs derive from it).
    ("etc/machine-id", "systemd machine ID"),
    ("var/lib/dbus/machine-id", "D-Bus machine ID"),
    // Seeds for the kernel's random pool: a shared seed defeats its purpose.
    ("var/lib/systemd/random-seed", "systemd random seed"),
    ("var/lib/urandom/random-seed", "sysvinit random seed"),
    // The key systemd encrypts service credentials with on this host.
    ("var/lib/systemd/credential.secret", "systemd credential key"),
    // ssl-cert's postinst generates a self-signed key and certificate.
    ("etc/ssl/private/ssl-cert-snakeoil.key", "snakeoil TLS key"),
    ("etc/ssl/certs/ssl-cert-snakeoil.pem", "snakeoil TLS certificate"),
];

fn matches(pattern: &str, rel: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == rel,
        Some((pre, post)) => rel.len() >= pre.len() + post.len() && rel.starts_with(pre) && rel.ends_with(post) && !rel[pre.len()..rel.len() - post.len()].contains('/'),
    }
}

/// Whether the root-relative path `rel` is a per-instance secret.
pub fn is_secret(rel: &str) -> bool {
    SECRETS.iter().any(|(p, _)| matches(p, rel))
}

#[cfg(test)]
mod tests {
    use super::is_secret;

    #[test]
    fn secrets_are_recognised() {
        for p in ["etc/ssh/ssh_host_ed25519_key", "etc/ssh/ssh_host_rsa_key.pub", "etc/machine-id", "var/lib/dbus/machine-id", "etc/ssl/private/ssl-cert-snakeoil.key", "etc/dropbear/dropbear_rsa_host_key"] {
            assert!(is_secret(p), "{p}");
        }
        for p in ["etc/ssh/sshd_config", "etc/ssh/ssh_host_x/y", "etc/machine-info", "etc/ssl/certs/ca-certificates.crt", "usr/etc/machine-id"] {
            assert!(!is_secret(p), "{p}");
        }
    }
}

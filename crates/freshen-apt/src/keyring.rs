//! OpenPGP keyrings and signatures (pure Rust, the `pgp` crate): the keys an
//! image trusts, and verification of `InRelease` and `Release.gpg`.

use pgp::composed::{CleartextSignedMessage, Deserializable, DetachedSignature, SignedPublicKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::Signature;
use pgp::types::KeyDetails;

/// A set of public keys.
#[derive(Clone, Default)]
pub struct Keyring {
    pub keys: Vec<SignedPublicKey>,
}

/// Why a signature did not verify: the issuers it named and the keys tried.
#[derive(Clone, Debug)]
pub struct VerifyFailure {
    pub reason: String,
    pub issuers: Vec<String>,
    pub tried: Vec<String>,
}

impl std::fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.reason)?;
        if !self.issuers.is_empty() {
            write!(f, "; signed by key {}", self.issuers.join(", "))?;
        }
        if self.tried.is_empty() {
            write!(f, "; no trusted keys")
        } else {
            write!(f, "; keys tried: {}", self.tried.join(", "))
        }
    }
}

fn key_id_hex(id: &impl AsRef<[u8]>) -> String {
    id.as_ref().iter().map(|b| format!("{b:02X}")).collect()
}

impl Keyring {
    /// Adds the keys of a keyring file: binary (`.gpg`) or armored (`.asc`),
    /// one key or many. Returns how many keys were read.
    pub fn add_file(&mut self, data: &[u8]) -> Result<usize, String> {
        let before = self.keys.len();
        let armored = data.windows(10).take(4096).any(|w| w == b"-----BEGIN");
        if armored {
            let (keys, _) = SignedPublicKey::from_armor_many(data).map_err(|e| e.to_string())?;
            for k in keys {
                self.keys.push(k.map_err(|e| e.to_string())?);
            }
        } else {
            // Keyrings written by gpg can hold packets rpgp skips; keep what parses.
            self.keys.extend(SignedPublicKey::from_bytes_many(data).map_err(|e| e.to_string())?.flatten());
        }
        Ok(self.keys.len() - before)
    }

    /// Keeps only keys whose fingerprint (primary or subkey) is listed.
    pub fn filter_fingerprints(&self, fprs: &[String]) -> Keyring {
        let norm = |s: &str| s.trim_end_matches('!').to_ascii_uppercase();
        let wanted: Vec<String> = fprs.iter().map(|f| norm(f)).collect();
        let keys = self
            .keys
            .iter()
            .filter(|k| {
                let mut fps = vec![format!("{:X}", k.primary_key.fingerprint())];
                fps.extend(k.public_subkeys.iter().map(|s| format!("{:X}", s.key.fingerprint())));
                fps.iter().any(|f| wanted.iter().any(|w| f == w || f.ends_with(w.as_str())))
            })
            .cloned()
            .collect();
        Keyring { keys }
    }

    /// Fingerprints of all primary keys, uppercase hex.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys.iter().map(|k| format!("{:X}", k.primary_key.fingerprint())).collect()
    }

    fn tried(&self) -> Vec<String> {
        let mut out = Vec::new();
        for k in &self.keys {
            out.push(key_id_hex(&k.primary_key.legacy_key_id()));
            for s in &k.public_subkeys {
                out.push(key_id_hex(&s.key.legacy_key_id()));
            }
        }
        out
    }

    /// Whether any key (primary or subkey) verifies any of `sigs` over `data`.
    fn verify_any(&self, sigs: &[&Signature], data: &[u8]) -> Result<(), VerifyFailure> {
        let mut issuers = Vec::new();
        let mut weak = false;
        for sig in sigs {
            issuers.extend(sig.issuer_key_id().iter().map(key_id_hex));
            if matches!(sig.hash_alg(), Some(HashAlgorithm::Md5 | HashAlgorithm::Sha1 | HashAlgorithm::Ripemd160) | None) {
                weak = true;
                continue;
            }
            for k in &self.keys {
                if sig.verify(&k.primary_key, data).is_ok() {
                    return Ok(());
                }
                for s in &k.public_subkeys {
                    if sig.verify(&s.key, data).is_ok() {
                        return Ok(());
                    }
                }
            }
        }
        issuers.sort();
        issuers.dedup();
        let reason = if weak && issuers.is_empty() {
            "signed only with a weak digest (MD5, SHA-1)".to_string()
        } else if sigs.is_empty() {
            "no signature".to_string()
        } else {
            "no valid signature from a trusted key".to_string()
        };
        Err(VerifyFailure { reason, issuers, tried: self.tried() })
    }

    /// Verifies a clearsigned `InRelease` and returns the signed text.
    pub fn verify_cleartext(&self, data: &[u8]) -> Result<String, VerifyFailure> {
        let text = std::str::from_utf8(data).map_err(|_| self.fail("InRelease is not UTF-8"))?;
        let (msg, _) = CleartextSignedMessage::from_string(text).map_err(|e| self.fail(&format!("not a clearsigned message: {e}")))?;
        let sigs: Vec<&Signature> = msg.signatures().iter().collect();
        self.verify_any(&sigs, msg.signed_text().as_bytes())?;
        // The signed text with CRLF normalisation undone.
        Ok(msg.signed_text().replace("\r\n", "\n"))
    }

    /// Verifies a detached `Release.gpg` over `Release`.
    pub fn verify_detached(&self, data: &[u8], sig: &[u8]) -> Result<(), VerifyFailure> {
        let mut sigs = Vec::new();
        let armored = sig.starts_with(b"-----BEGIN");
        if armored {
            let (it, _) = DetachedSignature::from_armor_many(sig).map_err(|e| self.fail(&format!("unreadable signature: {e}")))?;
            for s in it {
                sigs.push(s.map_err(|e| self.fail(&format!("unreadable signature: {e}")))?);
            }
        } else {
            for s in DetachedSignature::from_bytes_many(sig).map_err(|e| self.fail(&format!("unreadable signature: {e}")))? {
                sigs.push(s.map_err(|e| self.fail(&format!("unreadable signature: {e}")))?);
            }
        }
        let refs: Vec<&Signature> = sigs.iter().map(|s| &s.signature).collect();
        self.verify_any(&refs, data)
    }

    fn fail(&self, reason: &str) -> VerifyFailure {
        VerifyFailure { reason: reason.to_string(), issuers: Vec::new(), tried: self.tried() }
    }
}

//! The plain data a pass moves between its steps and into the state
//! database: targets, what a scan found, and what was done.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What freshen looks after.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A plain Docker container.
    Container,
    /// A Dokku app (all its containers).
    DokkuApp,
    /// An image named in the configuration.
    Image,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Container => "container",
            Kind::DokkuApp => "dokku-app",
            Kind::Image => "image",
        }
    }
}

/// One target found by discovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub kind: Kind,
    /// Container name, app name, or the image reference.
    pub name: String,
    /// The image as the container or the configuration names it.
    pub image: String,
    /// The image id, when known before scanning (the Engine's).
    pub image_id: Option<String>,
    /// What to scan (`docker-daemon:sha256:...` for what a container
    /// runs): targets sharing it are scanned once. `None` when the target
    /// is left alone, for [`Target::skip`]'s reason.
    pub source: Option<String>,
    pub skip: Option<String>,
}

/// One pending update of an image, with its changelog facts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub package: String,
    pub arch: String,
    pub installed: String,
    pub candidate: String,
    pub suite: String,
    pub security: bool,
    /// Why `apt-get upgrade` would not install it, if it would not.
    pub held_back: Option<String>,
    /// Held back by choice (a dpkg hold, phasing): not counted as pending.
    pub held: bool,
    pub cves: Vec<String>,
    /// When the oldest fix newer than the installed version was prepared
    /// (its changelog trailer).
    pub fixed_on: Option<DateTime<Utc>>,
}

impl Pending {
    /// A security fix that `apt-get upgrade` would install.
    pub fn counts(&self) -> bool {
        self.security && !self.held
    }
}

/// What the scan of one distinct image found.
#[derive(Clone, Debug)]
pub struct Scanned {
    /// The image's config digest.
    pub image_id: String,
    pub installed: usize,
    pub pending: Vec<Pending>,
    pub seconds: f64,
    /// The image's distribution (os-release `ID`: `debian`, `ubuntu`).
    pub distro: Option<String>,
}

/// Why a scan gave nothing.
#[derive(Clone, Debug)]
pub enum ScanFailure {
    /// Not Debian or Ubuntu based: left alone.
    Unsupported(String),
    /// Unreachable or badly signed sources, an unreadable image, ...
    Failed(String),
}

/// What a pass did with a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Patched,
    RolledBack,
    Failed,
    Unchanged,
    Skipped,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Patched => "patched",
            Action::RolledBack => "rolled-back",
            Action::Failed => "failed",
            Action::Unchanged => "unchanged",
            Action::Skipped => "skipped",
        }
    }
}

/// The plan for (and later the outcome of) one target in one pass.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub target: Target,
    pub action: Action,
    pub reason: Option<String>,
    /// The image id the scan read (else the discovered one); after a
    /// deploy, the patched image's.
    pub image_id: Option<String>,
    /// The pending updates, when the scan succeeded; after a deploy, those
    /// the patch left.
    pub pending: Option<Vec<Pending>>,
    /// The updates a deploy put into service this pass (seen pending by
    /// this pass's scan, resolved when the deploy was accepted).
    pub fixed: Vec<Pending>,
    /// The image's distribution (os-release `ID`), when scanned.
    pub distro: Option<String>,
    /// The plan: patch this target's image and redeploy it.
    pub to_patch: bool,
    /// The patch of the target's image, when one was made this pass.
    pub patch: Option<PatchRecord>,
    /// The redeploy (or rollback) of the target, when one was tried.
    pub deploy: Option<DeployRecord>,
}

/// A patch in place of one image.
#[derive(Clone, Debug)]
pub struct PatchRecord {
    /// The name (or reference) written.
    pub image: String,
    pub from_id: String,
    pub to_id: String,
    /// Where the previous image is kept (`REPO:freshen-rollback-TAG`).
    pub rollback: Option<String>,
    /// `package:arch from to`, one per upgraded package.
    pub upgraded: Vec<String>,
    /// The updates the patch was asked for ([`fix_set`]): a rolled back
    /// set is not tried again on the same image.
    pub fix_set: String,
    pub seconds: f64,
}

/// One redeploy of a target on a patched image.
#[derive(Clone, Debug)]
pub struct DeployRecord {
    /// `Patched` (accepted), `RolledBack` or `Failed` (could not even roll
    /// back, or the patch failed).
    pub result: Action,
    pub reason: Option<String>,
    /// The refused container's (or `dokku ps:restart`'s) last lines.
    pub logs: Option<String>,
    /// When the target was accepted (or rolled back).
    pub at: DateTime<Utc>,
}

/// The identity of a set of updates: `package:arch=candidate`, sorted,
/// space separated.
pub fn fix_set<'a>(updates: impl IntoIterator<Item = &'a Pending>) -> String {
    let mut v: Vec<String> = updates.into_iter().map(|p| format!("{}:{}={}", p.package, p.arch, p.candidate)).collect();
    v.sort();
    v.dedup();
    v.join(" ")
}

impl Outcome {
    /// An outcome with nothing patched or deployed.
    pub fn new(target: Target, action: Action, reason: Option<String>) -> Outcome {
        Outcome { target, action, reason, image_id: None, pending: None, fixed: Vec::new(), distro: None, to_patch: false, patch: None, deploy: None }
    }

    /// Security fixes `apt-get upgrade` would install.
    pub fn pending_security(&self) -> usize {
        self.pending.as_ref().map_or(0, |p| p.iter().filter(|f| f.counts()).count())
    }
}

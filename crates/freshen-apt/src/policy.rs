//! Candidate versions as apt's policy computes them, security updates as
//! apt's `IsSecurityUpdate` decides, and what `apt-get upgrade` would hold
//! back.

use std::collections::{BTreeMap, HashMap};

use crate::packages::Available;
use crate::phasing::Phasing;
use crate::preferences::{ArchiveFacts, Pin, PinKind, NEVER_PIN};
use crate::relation::{self, Clause, Op};
use crate::release::Release;
use crate::sources::SourceEntry;
use crate::status::Installed;
use crate::version::Version;

/// An archive as apt's policy sees it: one component of one source.
#[derive(Clone, Debug)]
pub struct Archive {
    pub source: SourceEntry,
    pub release: Release,
    pub component: String,
}

impl Archive {
    pub fn host(&self) -> &str {
        let rest = self.source.uri.split_once("://").map_or(self.source.uri.as_str(), |(_, r)| r);
        let host = rest.split('/').next().unwrap_or("");
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        host.split(':').next().unwrap_or(host)
    }

    fn facts(&self) -> ArchiveFacts<'_> {
        ArchiveFacts { release: &self.release, host: self.host(), component: &self.component }
    }
}

/// A pending update of one installed package.
#[derive(Clone, Debug)]
pub struct Update {
    pub package: String,
    pub arch: String,
    pub installed: Version,
    pub candidate: Available,
    /// The suite (as the image's sources name it) offering the candidate.
    pub suite: String,
    pub security: bool,
    /// Why `apt-get upgrade` would not install it, if it would not.
    pub held_back: Option<String>,
    /// Index into the installed list.
    pub installed_index: usize,
}

impl Update {
    /// Kept back by a choice rather than a problem: a dpkg hold
    /// (`apt-mark hold`) or apt's phasing. `patch` leaves these alone and
    /// `scan` does not count them as pending for its exit code.
    pub fn deliberately_held(&self) -> bool {
        self.held_back.as_deref().is_some_and(|r| r == HELD_BY_SELECTION || r.starts_with(PHASING_PREFIX))
    }
}

fn arch_compatible(installed: &str, offered: &str, native: &str) -> bool {
    let norm = |a: &'_ str| if a == "all" { native.to_string() } else { a.to_string() };
    norm(installed) == norm(offered)
}

/// Priority of each archive, and of dpkg's status file, from the generic
/// pins (`Package: *`, `APT::Default-Release` first) as apt's
/// `InitDefaults` applies them: the first matching pin fixes a file's
/// priority, except that a `never` pin always wins.
fn file_priorities(archives: &[Archive], pins: &[Pin]) -> (Vec<i32>, i32) {
    let generic = |default: i32, matches: &dyn Fn(&Pin) -> bool| {
        let (mut prio, mut fixed) = (default, false);
        for p in pins.iter().filter(|p| p.packages.is_none()) {
            if (!fixed || p.priority == NEVER_PIN) && prio != NEVER_PIN && matches(p) {
                prio = p.priority;
                fixed = true;
            }
        }
        prio
    };
    let archive_prio = archives.iter().map(|a| generic(a.release.default_priority(), &|p| p.matches_archive(&a.facts()))).collect();
    (archive_prio, generic(100, &|p| p.matches_status_file()))
}

/// The version of one package that a pin may name.
struct VersionFacts<'a> {
    name: &'a str,
    source: &'a str,
    arch: &'a str,
    version: &'a Version,
    /// Archives offering it.
    files: &'a [usize],
    /// It is the installed version (its file list includes the status file).
    installed: bool,
}

/// The priority of the first package pin that names this version, as
/// apt's `GetPriority` takes it (unless every file of the version is
/// pinned `never`).
fn version_pin(input: &PlanInput, file_prio: &[i32], status_prio: i32, v: &VersionFacts) -> Option<i32> {
    let pin = input.pins.iter().filter(|p| p.packages.is_some()).find(|pin| {
        pin.applies_to(v.name, v.source, v.arch, input.native_arch)
            && match &pin.kind {
                PinKind::Version(p) => p.matches(&v.version.to_string()),
                PinKind::Release(_) | PinKind::Origin(_) => {
                    v.files.iter().any(|&f| pin.matches_archive(&input.archives[f].facts())) || (v.installed && pin.matches_status_file())
                }
            }
    })?;
    if pin.priority == NEVER_PIN {
        return Some(NEVER_PIN);
    }
    let any_file = v.files.iter().any(|&f| file_prio[f] != NEVER_PIN) || (v.installed && status_prio != NEVER_PIN);
    any_file.then_some(pin.priority)
}

/// Inputs to the plan.
pub struct PlanInput<'a> {
    pub installed: &'a [Installed],
    pub available: &'a [Available],
    pub archives: &'a [Archive],
    pub pins: &'a [Pin],
    pub native_arch: &'a str,
    pub phasing: &'a Phasing,
}

/// Computes the candidate of every installed package and returns the
/// updates (candidate newer than installed), security first.
pub fn plan(input: &PlanInput) -> Vec<Update> {
    let (prio, status_prio) = file_priorities(input.archives, input.pins);
    let mut by_name: HashMap<&str, Vec<&Available>> = HashMap::new();
    for a in input.available {
        by_name.entry(a.package.as_str()).or_default().push(a);
    }
    let mut updates = Vec::new();
    for (idx, inst) in input.installed.iter().enumerate() {
        let offered: Vec<&Available> = by_name
            .get(inst.name.as_str())
            .map(|v| v.iter().copied().filter(|a| arch_compatible(&inst.arch, &a.arch, input.native_arch)).collect())
            .unwrap_or_default();
        // version → (archives offering it, one stanza)
        let mut versions: BTreeMap<&Version, (Vec<usize>, Option<&Available>)> = BTreeMap::new();
        for a in &offered {
            let e = versions.entry(&a.version).or_default();
            e.0.push(a.archive);
            e.1.get_or_insert(a);
        }
        versions.entry(&inst.version).or_default();
        // apt's GetCandidateVer: versions in descending order; the first
        // with a strictly higher priority wins; 0 never; no downgrade below
        // priority 1000.
        let mut cand: Option<(&Version, i32)> = None;
        for (v, (files, stanza)) in versions.iter().rev() {
            let is_inst = **v == inst.version;
            let facts = VersionFacts {
                name: &inst.name,
                source: stanza.map_or(inst.source.as_str(), |a| a.source.as_str()),
                arch: &inst.arch,
                version: v,
                files,
                installed: is_inst,
            };
            let mut p = version_pin(input, &prio, status_prio, &facts).unwrap_or_else(|| {
                let mut p = files.iter().map(|&f| prio[f]).max().unwrap_or(i32::MIN);
                if is_inst {
                    p = p.max(status_prio);
                }
                if p == i32::MIN {
                    0
                } else {
                    p
                }
            });
            // A phased update this machine is not in gets priority 1 at most.
            if !is_inst && stanza.is_some_and(|a| input.phasing.excluded(a)) {
                p = p.min(1);
            }
            if p == 0 || p <= cand.map_or(-1, |c| c.1) {
                continue;
            }
            if p < 1000 && **v < inst.version {
                continue;
            }
            cand = Some((v, p));
        }
        let Some((cv, _)) = cand else { continue };
        if *cv <= inst.version {
            continue;
        }
        let Some(stanza) = versions[cv].1 else { continue };
        let security = versions
            .range::<Version, _>((std::ops::Bound::Excluded(&inst.version), std::ops::Bound::Included(cv)))
            .any(|(_, (files, _))| files.iter().any(|&f| input.archives[f].release.is_security()));
        let best_archive = versions[cv].0.iter().copied().max_by_key(|&f| (input.archives[f].release.is_security(), prio[f])).unwrap_or(stanza.archive);
        updates.push(Update {
            package: inst.name.clone(),
            arch: inst.arch.clone(),
            installed: inst.version.clone(),
            candidate: stanza.clone(),
            suite: input.archives[best_archive].source.suite.clone(),
            security,
            held_back: first_reason(inst, stanza, security, input.phasing),
            installed_index: idx,
        });
    }
    hold_back(&mut updates, input);
    updates.sort_by(|a, b| b.security.cmp(&a.security).then(a.candidate.source.cmp(&b.candidate.source)).then(a.package.cmp(&b.package)));
    updates
}

/// Why `apt-get upgrade` keeps an update back before looking at
/// dependencies: a dpkg hold, or phasing (security updates never phase).
fn first_reason(inst: &Installed, candidate: &Available, security: bool, phasing: &Phasing) -> Option<String> {
    if inst.held {
        return Some(HELD_BY_SELECTION.to_string());
    }
    (!security && phasing.deferred(candidate)).then(|| format!("{PHASING_PREFIX} ({}% of machines)", candidate.phased))
}

/// The reason of an update held back by `apt-mark hold`.
pub const HELD_BY_SELECTION: &str = "held by the dpkg selection (apt-mark hold)";
/// How the reason of an update deferred by phasing starts.
pub const PHASING_PREFIX: &str = "phasing: deferred on this machine";

/// One package of the system after a (partial) upgrade.
struct State<'a> {
    version: &'a Version,
    provides: &'a str,
    arch: &'a str,
    multi_arch: Option<&'a str>,
}

/// Whether a package of `s` can satisfy a relation with architecture
/// qualifier `qual` of a package of architecture `dep_arch` (Multi-Arch
/// rules: same architecture, `foreign`, `:any` on `allowed`, `:native`).
fn arch_satisfies(qual: Option<&str>, dep_arch: &str, s: &State, native: &str) -> bool {
    let norm = |a: &'_ str| if a == "all" { native.to_string() } else { a.to_string() };
    let (have, want) = (norm(s.arch), norm(dep_arch));
    match qual {
        None => have == want || s.multi_arch == Some("foreign"),
        Some("any") => have == want || matches!(s.multi_arch, Some("allowed") | Some("foreign")),
        Some("native") => have == native,
        Some(a) => have == a,
    }
}

type Provided = HashMap<String, Vec<Option<Version>>>;

fn satisfied(clause: &Clause, dep_arch: &str, state: &HashMap<&str, Vec<State>>, provides: &Provided, native: &str) -> bool {
    clause.iter().any(|rel| {
        let direct = state.get(rel.name.as_str()).is_some_and(|ss| {
            ss.iter().any(|s| arch_satisfies(rel.arch.as_deref(), dep_arch, s, native) && rel.constraint.as_ref().is_none_or(|(op, v)| op.holds(s.version, v)))
        });
        direct
            || provides.get(&rel.name).is_some_and(|pv| {
                pv.iter().any(|p| match (&rel.constraint, p) {
                    (None, _) => true,
                    (Some((op, v)), Some(pv)) => op.holds(pv, v),
                    (Some(_), None) => false,
                })
            })
    })
}

fn build_state<'a>(input: &'a PlanInput, updates: &'a [Update]) -> (HashMap<&'a str, Vec<State<'a>>>, Provided) {
    let mut upgraded: HashMap<usize, &Update> = HashMap::new();
    for u in updates.iter().filter(|u| u.held_back.is_none()) {
        upgraded.insert(u.installed_index, u);
    }
    let mut state: HashMap<&str, Vec<State>> = HashMap::new();
    let mut provides: Provided = HashMap::new();
    for (i, inst) in input.installed.iter().enumerate() {
        let s = match upgraded.get(&i) {
            Some(u) => State { version: &u.candidate.version, provides: &u.candidate.provides, arch: &u.candidate.arch, multi_arch: u.candidate.multi_arch.as_deref() },
            None => State { version: &inst.version, provides: &inst.provides, arch: &inst.arch, multi_arch: inst.multi_arch.as_deref() },
        };
        if let Ok(clauses) = relation::parse(s.provides, input.native_arch) {
            for c in clauses {
                for r in c {
                    provides.entry(r.name).or_default().push(r.constraint.and_then(|(op, v)| (op == Op::Eq).then_some(v)));
                }
            }
        }
        state.entry(inst.name.as_str()).or_default().push(s);
    }
    (state, provides)
}

fn hold_back(updates: &mut [Update], input: &PlanInput) {
    let (orig_state, orig_prov) = build_state(input, &[]);
    // Each pass may hold back more; stop when nothing changes.
    for _ in 0..updates.len() + 1 {
        let mut newly: Vec<(usize, String)> = Vec::new();
        {
            let (state, prov) = build_state(input, updates);
            let by_index: HashMap<usize, usize> = updates.iter().enumerate().filter(|(_, u)| u.held_back.is_none()).map(|(k, u)| (u.installed_index, k)).collect();
            for (i, inst) in input.installed.iter().enumerate() {
                let upgrading = by_index.get(&i).copied();
                let (deps, dep_arch) = match upgrading {
                    Some(k) => (updates[k].candidate.depends.as_str(), updates[k].candidate.arch.as_str()),
                    None => (inst.depends.as_str(), inst.arch.as_str()),
                };
                let rel_arch = if dep_arch == "all" { input.native_arch } else { dep_arch };
                let Ok(clauses) = relation::parse(deps, rel_arch) else { continue };
                for clause in &clauses {
                    if satisfied(clause, dep_arch, &state, &prov, input.native_arch) {
                        continue;
                    }
                    match upgrading {
                        Some(k) => {
                            let alts: Vec<String> = clause.iter().map(|r| r.to_string()).collect();
                            let missing = clause.iter().all(|r| !state.contains_key(r.name.as_str()) && !prov.contains_key(&r.name));
                            let reason = if missing {
                                format!("needs new package {}", alts.join(" | "))
                            } else {
                                format!("needs {}", alts.join(" | "))
                            };
                            newly.push((k, reason));
                        }
                        None => {
                            // An upgrade elsewhere broke a package that stays:
                            // hold back the upgraded packages it names.
                            if !satisfied(clause, dep_arch, &orig_state, &orig_prov, input.native_arch) {
                                continue;
                            }
                            for rel in clause {
                                for (k, u) in updates.iter().enumerate() {
                                    let installed = &input.installed[u.installed_index];
                                    let s = State { version: &installed.version, provides: "", arch: &installed.arch, multi_arch: installed.multi_arch.as_deref() };
                                    if u.held_back.is_none() && u.package == rel.name && arch_satisfies(rel.arch.as_deref(), dep_arch, &s, input.native_arch) {
                                        newly.push((k, format!("would break {} ({})", inst.name, rel)));
                                    }
                                }
                            }
                        }
                    }
                }
                if let Some(k) = upgrading {
                    let c = &updates[k].candidate;
                    for field in [&c.breaks, &c.conflicts] {
                        let Ok(clauses) = relation::parse(field, input.native_arch) else { continue };
                        for rel in clauses.iter().flatten() {
                            if rel.name == inst.name {
                                continue;
                            }
                            let hit = state.get(rel.name.as_str()).is_some_and(|ss| ss.iter().any(|s| rel.constraint.as_ref().is_none_or(|(op, v)| op.holds(s.version, v))));
                            if hit {
                                newly.push((k, format!("breaks installed {rel}")));
                            }
                        }
                    }
                }
            }
        }
        if newly.is_empty() {
            break;
        }
        for (k, reason) in newly {
            if updates[k].held_back.is_none() {
                updates[k].held_back = Some(reason);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::parse as v;

    fn installed(name: &str, arch: &str, version: &str, depends: &str, held: bool) -> Installed {
        Installed {
            name: name.into(),
            arch: arch.into(),
            version: v(version).unwrap(),
            source: name.into(),
            source_version: v(version).unwrap(),
            multi_arch: Some("same".into()),
            provides: String::new(),
            depends: depends.into(),
            essential: false,
            held,
            layer: None,
        }
    }

    fn offered(name: &str, arch: &str, version: &str) -> Available {
        Available {
            package: name.into(),
            arch: arch.into(),
            version: v(version).unwrap(),
            source: name.into(),
            source_version: v(version).unwrap(),
            depends: String::new(),
            breaks: String::new(),
            conflicts: String::new(),
            provides: String::new(),
            multi_arch: Some("same".into()),
            phased: 100,
            filename: format!("pool/{name}.deb"),
            sha256: "0".repeat(64),
            size: 1,
            archive: 0,
        }
    }

    fn archive() -> Archive {
        let source = crate::sources::parse_list("deb http://x/debian stable main\n", "l", "amd64").unwrap().remove(0);
        Archive { source, release: Release { suite: Some("stable".into()), ..Default::default() }, component: "main".into() }
    }

    fn run(installed: &[Installed], available: &[Available]) -> Vec<(String, String, Option<String>)> {
        let archives = [archive()];
        let phasing = Phasing::default();
        let input = PlanInput { installed, available, archives: &archives, pins: &[], native_arch: "amd64", phasing: &phasing };
        plan(&input).into_iter().map(|u| (u.package, u.arch, u.held_back)).collect()
    }

    #[test]
    fn a_foreign_architecture_does_not_satisfy_a_native_dependency() {
        // app:amd64 needs libx (= 1.0); only libx:amd64 has an update. The
        // unchanged libx:i386 1.0 must not count for app:amd64.
        let inst = [installed("app", "amd64", "1", "libx (= 1.0)", false), installed("libx", "amd64", "1.0", "", false), installed("libx", "i386", "1.0", "", false)];
        let got = run(&inst, &[offered("libx", "amd64", "2.0")]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, "amd64");
        assert_eq!(got[0].2.as_deref(), Some("would break app (libx (= 1.0))"));
    }

    #[test]
    fn dpkg_holds_keep_back_the_package_and_what_needs_it() {
        let inst = [installed("lib", "amd64", "1.0", "", true), installed("tool", "amd64", "1.0", "", false), installed("other", "amd64", "1.0", "", false)];
        let mut tool = offered("tool", "amd64", "2.0");
        tool.depends = "lib (>= 2.0)".into();
        let got = run(&inst, &[offered("lib", "amd64", "2.0"), tool, offered("other", "amd64", "2.0")]);
        let reason = |p: &str| got.iter().find(|u| u.0 == p).unwrap().2.clone();
        assert_eq!(reason("lib").as_deref(), Some(HELD_BY_SELECTION));
        assert_eq!(reason("tool").as_deref(), Some("needs lib (>= 2.0)"));
        assert_eq!(reason("other"), None);
    }
}

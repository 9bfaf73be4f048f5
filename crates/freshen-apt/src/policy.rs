//! Candidate versions as apt's policy computes them, security updates as
//! apt's `IsSecurityUpdate` decides, and what `apt-get upgrade` would hold
//! back.

use std::collections::{BTreeMap, HashMap};

use crate::packages::Available;
use crate::preferences::{ArchiveFacts, Pin, PinKind};
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

fn arch_compatible(installed: &str, offered: &str, native: &str) -> bool {
    let norm = |a: &'_ str| if a == "all" { native.to_string() } else { a.to_string() };
    norm(installed) == norm(offered)
}

/// Priorities of archives from generic pins (`Package: *`), else defaults.
fn archive_priorities(archives: &[Archive], pins: &[Pin]) -> Vec<i32> {
    archives
        .iter()
        .map(|a| {
            pins.iter()
                .filter(|p| p.packages.is_none())
                .find(|p| p.matches_archive(&a.facts()))
                .map(|p| p.priority)
                .unwrap_or_else(|| a.release.default_priority())
        })
        .collect()
}

/// The priority of a specific pin for this version, if any.
fn version_pin(pins: &[Pin], name: &str, version: &Version, files: &[usize], archives: &[Archive], installed: bool) -> Option<i32> {
    for pin in pins.iter().filter(|p| p.packages.is_some() && p.applies_to_package(name)) {
        let hit = match &pin.kind {
            PinKind::Version(p) => p.matches(&version.to_string()),
            PinKind::Release(_) | PinKind::Origin(_) => {
                files.iter().any(|&f| pin.matches_archive(&archives[f].facts()))
                    // The installed version's status file matches `origin ""`.
                    || (installed && matches!(&pin.kind, PinKind::Origin(o) if o.matches("")))
            }
        };
        if hit {
            return Some(pin.priority);
        }
    }
    None
}

/// Inputs to the plan.
pub struct PlanInput<'a> {
    pub installed: &'a [Installed],
    pub available: &'a [Available],
    pub archives: &'a [Archive],
    pub pins: &'a [Pin],
    pub native_arch: &'a str,
}

/// Computes the candidate of every installed package and returns the
/// updates (candidate newer than installed), security first.
pub fn plan(input: &PlanInput) -> Vec<Update> {
    let prio = archive_priorities(input.archives, input.pins);
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
        // apt: versions in descending order; the first with a strictly higher
        // priority wins; no downgrade below priority 1000; 0 or less never.
        let mut cand: Option<(&Version, i32)> = None;
        for (v, (files, _)) in versions.iter().rev() {
            let is_inst = **v == inst.version;
            let p = version_pin(input.pins, &inst.name, v, files, input.archives, is_inst).unwrap_or_else(|| {
                let mut p = files.iter().map(|&f| prio[f]).max().unwrap_or(i32::MIN);
                if is_inst {
                    p = p.max(100);
                }
                p
            });
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
            held_back: None,
            installed_index: idx,
        });
    }
    hold_back(&mut updates, input);
    updates.sort_by(|a, b| b.security.cmp(&a.security).then(a.candidate.source.cmp(&b.candidate.source)).then(a.package.cmp(&b.package)));
    updates
}

/// One package of the system after a (partial) upgrade.
struct State<'a> {
    version: &'a Version,
    provides: &'a str,
}

fn satisfied(clause: &Clause, state: &HashMap<&str, Vec<State>>, provides: &HashMap<String, Vec<Option<Version>>>) -> bool {
    clause.iter().any(|rel| {
        let direct = state.get(rel.name.as_str()).is_some_and(|ss| {
            ss.iter().any(|s| rel.constraint.as_ref().is_none_or(|(op, v)| op.holds(s.version, v)))
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

fn build_state<'a>(input: &'a PlanInput, updates: &'a [Update]) -> (HashMap<&'a str, Vec<State<'a>>>, HashMap<String, Vec<Option<Version>>>) {
    let mut upgraded: HashMap<usize, &Update> = HashMap::new();
    for u in updates.iter().filter(|u| u.held_back.is_none()) {
        upgraded.insert(u.installed_index, u);
    }
    let mut state: HashMap<&str, Vec<State>> = HashMap::new();
    let mut provides: HashMap<String, Vec<Option<Version>>> = HashMap::new();
    for (i, inst) in input.installed.iter().enumerate() {
        let s = match upgraded.get(&i) {
            Some(u) => State { version: &u.candidate.version, provides: &u.candidate.provides },
            None => State { version: &inst.version, provides: &inst.provides },
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
                let deps = match upgrading {
                    Some(k) => updates[k].candidate.depends.as_str(),
                    None => inst.depends.as_str(),
                };
                let Ok(clauses) = relation::parse(deps, input.native_arch) else { continue };
                for clause in &clauses {
                    if satisfied(clause, &state, &prov) {
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
                            if !satisfied(clause, &orig_state, &orig_prov) {
                                continue;
                            }
                            for rel in clause {
                                for (k, u) in updates.iter().enumerate() {
                                    if u.held_back.is_none() && u.package == rel.name {
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

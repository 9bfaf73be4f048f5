//! Package relationship fields (`Depends`, `Pre-Depends`, `Breaks`,
//! `Conflicts`, `Provides`): comma-separated clauses of `|` alternatives,
//! each `name[:arch] [(op version)] [[archs]] [<profiles>]`.

use crate::version::{self, Version};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

impl Op {
    pub fn holds(self, have: &Version, want: &Version) -> bool {
        let o = have.cmp(want);
        match self {
            Op::Lt => o.is_lt(),
            Op::Le => o.is_le(),
            Op::Eq => o.is_eq(),
            Op::Ge => o.is_ge(),
            Op::Gt => o.is_gt(),
        }
    }

    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "<<" | "<" => Op::Lt,
            "<=" => Op::Le,
            "=" => Op::Eq,
            ">=" => Op::Ge,
            ">>" | ">" => Op::Gt,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Op::Lt => "<<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Gt => ">>",
        })
    }
}

/// One alternative of a clause.
#[derive(Clone, Debug)]
pub struct Relation {
    pub name: String,
    /// `any`, `native` or an architecture, from `name:arch`.
    pub arch: Option<String>,
    pub constraint: Option<(Op, Version)>,
}

impl std::fmt::Display for Relation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        if let Some(a) = &self.arch {
            write!(f, ":{a}")?;
        }
        if let Some((op, v)) = &self.constraint {
            write!(f, " ({op} {v})")?;
        }
        Ok(())
    }
}

/// A clause: any one alternative satisfies it.
pub type Clause = Vec<Relation>;

/// Parses a relationship field, keeping the alternatives that apply to
/// `arch` (architecture restrictions in `[...]`).
pub fn parse(field: &str, arch: &str) -> Result<Vec<Clause>, String> {
    let mut clauses = Vec::new();
    for clause in field.split(',') {
        let clause = clause.trim();
        if clause.is_empty() {
            continue;
        }
        let mut alts = Vec::new();
        for alt in clause.split('|') {
            if let Some(r) = parse_one(alt.trim(), arch)? {
                alts.push(r);
            }
        }
        if !alts.is_empty() {
            clauses.push(alts);
        }
    }
    Ok(clauses)
}

fn parse_one(s: &str, arch: &str) -> Result<Option<Relation>, String> {
    let bad = || format!("invalid relation `{s}`");
    let mut rest = s;
    // Build profiles never apply to binary packages' metadata; drop them.
    if let Some(i) = rest.find('<') {
        if !rest[..i].contains('(') {
            rest = rest[..i].trim_end();
        } else if let Some(close) = rest.find(')') {
            if let Some(j) = rest[close..].find('<') {
                rest = rest[..close + j].trim_end();
            }
        }
    }
    if let Some(i) = rest.find('[') {
        let j = rest[i..].find(']').ok_or_else(bad)? + i;
        let archs: Vec<&str> = rest[i + 1..j].split_whitespace().collect();
        let negated = archs.iter().all(|a| a.starts_with('!'));
        let listed = archs.iter().any(|a| a.trim_start_matches('!') == arch || *a == "any" || a.trim_start_matches('!') == "any");
        if negated == listed {
            return Ok(None);
        }
        rest = rest[..i].trim_end();
    }
    let (name_part, constraint) = match rest.find('(') {
        Some(i) => {
            let j = rest.rfind(')').ok_or_else(bad)?;
            if j < i {
                return Err(bad());
            }
            let inner = rest[i + 1..j].trim();
            let split = inner.find(|c: char| !matches!(c, '<' | '>' | '=')).ok_or_else(bad)?;
            let op = Op::parse(inner[..split].trim()).ok_or_else(bad)?;
            let v = version::parse(&inner[split..])?;
            (rest[..i].trim(), Some((op, v)))
        }
        None => (rest.trim(), None),
    };
    if name_part.is_empty() || name_part.contains(char::is_whitespace) {
        return Err(bad());
    }
    let (name, arch_q) = match name_part.split_once(':') {
        Some((n, a)) => (n, Some(a.to_string())),
        None => (name_part, None),
    };
    Ok(Some(Relation { name: name.to_string(), arch: arch_q, constraint }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_relations() {
        let c = parse("libc6 (>= 2.34), libfoo:any | libbar (<< 2~) [amd64], x [!amd64], y <!nocheck>", "amd64").unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0][0].name, "libc6");
        assert_eq!(c[0][0].constraint.as_ref().unwrap().0, Op::Ge);
        assert_eq!(c[1].len(), 2);
        assert_eq!(c[1][0].arch.as_deref(), Some("any"));
        assert_eq!(c[2][0].name, "y");
        assert!(parse("a (>= )", "amd64").is_err());
        assert!(parse("a (~ 1)", "amd64").is_err());
    }
}

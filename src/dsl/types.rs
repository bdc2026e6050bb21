//! Type inheritance: node types, relationship types and data types resolved down their
//! `derived_from` chains.
//!
//! Property schemas merge per key down the chain (a child's definition of a key replaces the
//! parent's); operations merge per interface and operation (the child's replaces the parent's,
//! `{}` included). Unknown parents get a "did you mean"; circular chains are reported once with
//! the whole chain.

use crate::maps::IndexMap;

use super::model::{Interfaces, Name, PropertySchema};
use crate::diag::{Diagnostic, Diagnostics, did_you_mean};
use crate::load::source::Loc;

/// What every inheritable definition offers to the resolver.
pub trait Inherits {
    fn parent(&self) -> Option<&Name>;
    fn loc(&self) -> Loc;
}

macro_rules! inherits {
    ($($t:ty),*) => {$(
        impl Inherits for $t {
            fn parent(&self) -> Option<&Name> { self.derived_from.as_ref() }
            fn loc(&self) -> Loc { self.loc }
        }
    )*};
}
inherits!(
    super::model::NodeType,
    super::model::RelationshipType,
    super::model::DataType
);

/// The names from the root of the chain down to `name`, or `None` when the chain is broken
/// (unknown parent or a cycle; reported once per type by [`check_chains`]).
pub fn chain<'m, T: Inherits>(
    name: &'m str,
    defs: &'m IndexMap<String, T>,
) -> Option<Vec<&'m str>> {
    let mut out = vec![name];
    let mut current = defs.get(name)?;
    while let Some(parent) = current.parent() {
        if out.contains(&parent.name.as_str()) {
            return None;
        }
        out.push(parent.name.as_str());
        current = defs.get(&parent.name)?;
    }
    out.reverse();
    Some(out)
}

/// Report unknown parents and circular chains of every definition in `defs`.
pub fn check_chains<T: Inherits>(what: &str, defs: &IndexMap<String, T>, diags: &mut Diagnostics) {
    for (name, def) in defs {
        let Some(parent) = def.parent() else { continue };
        if !defs.contains_key(&parent.name) {
            diags.push(
                Diagnostic::new(
                    parent.loc,
                    format!(
                        "{what} `{name}` derives from the unknown {what} `{}`",
                        parent.name
                    ),
                )
                .with_help_opt(did_you_mean(&parent.name, defs.keys().map(String::as_str))),
            );
            continue;
        }
        // Walk up; a cycle is reported at the type that closes it first in declaration order.
        let mut seen = vec![name.as_str()];
        let mut current = parent;
        loop {
            if let Some(pos) = seen.iter().position(|n| *n == current.name) {
                // Report a cycle once, at its member declared first.
                let first_declared = seen
                    .iter()
                    .all(|n| defs.get_index_of(*n) >= defs.get_index_of(name.as_str()));
                if pos == 0 && first_declared {
                    let mut cycle: Vec<&str> = seen.clone();
                    cycle.push(&current.name);
                    diags.push(Diagnostic::new(
                        parent.loc,
                        format!("circular derived_from: {}", cycle.join(" -> ")),
                    ));
                }
                break;
            }
            seen.push(&current.name);
            match defs.get(&current.name).and_then(Inherits::parent) {
                Some(p) if defs.contains_key(&p.name) => current = p,
                _ => break,
            }
        }
    }
}

/// Merge property schemas down a chain.
pub fn merged_properties<'m, T>(
    chain: &[&str],
    defs: &'m IndexMap<String, T>,
    props: impl Fn(&'m T) -> &'m IndexMap<String, PropertySchema>,
) -> IndexMap<String, PropertySchema> {
    let mut out = IndexMap::default();
    for name in chain {
        if let Some(def) = defs.get(*name) {
            for (k, v) in props(def) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

/// Merge interfaces down a chain: operation by operation, child over parent.
pub fn merged_interfaces<'m, T>(
    chain: &[&str],
    defs: &'m IndexMap<String, T>,
    ifaces: impl Fn(&'m T) -> &'m Interfaces,
) -> Interfaces {
    let mut out = Interfaces::default();
    for name in chain {
        if let Some(def) = defs.get(*name) {
            for (iface, ops) in ifaces(def) {
                let target = out.entry(iface.clone()).or_default();
                for (op, d) in ops {
                    target.insert(op.clone(), d.clone());
                }
            }
        }
    }
    out
}

//! The host-agent rule: an operation that runs on its node's host agent needs a host.
//!
//! Cloudify's parser gives each operation an executor: the one the operation (template over
//! type) names; else, for a script mapped by path or written inline, `auto` (the host's agent
//! when there is a host, the deployment's otherwise); else the executor its plugin declares
//! (Cloudify 7's `script` plugin declares `host_agent`, so `script.script_runner.tasks.run`
//! needs a host where `scripts/x.sh` does not). A node that uses a plugin with the executor
//! `host_agent` and is neither a Compute nor contained, directly or not, in one is refused, for
//! its own operations, the source operations of its relationships and the target operations
//! of relationships that point at it. The rule reads the compiled nodes only; `compile`
//! collects the [`Use`]s while it maps operations.

use super::compiled::CompiledNode;
use crate::diag::{Diagnostic, Diagnostics};
use crate::load::source::Loc;

/// One operation that runs on the host agent of `node`.
#[derive(Debug, Clone)]
pub struct Use {
    /// The node whose host runs it (a relationship operation's source or target).
    pub node: usize,
    /// `interface.operation`.
    pub operation: String,
    pub plugin: String,
    /// Where the `host_agent` executor comes from: the operation or the plugin declaration.
    pub loc: Loc,
}

/// Report every node that has host-agent operations and no host, once, naming its operations.
pub fn check(nodes: &[CompiledNode], uses: &[Use], diags: &mut Diagnostics) {
    // By node, in the order they were found: one pass, however many nodes and uses.
    let mut by_node: Vec<Vec<&Use>> = vec![Vec::new(); nodes.len()];
    for u in uses {
        if let Some(mine) = by_node.get_mut(u.node) {
            mine.push(u);
        }
    }
    for ((idx, node), mine) in nodes.iter().enumerate().zip(by_node) {
        if mine.is_empty() || has_host(nodes, idx) {
            continue;
        }
        let mut operations: Vec<String> = Vec::new();
        let mut plugins: Vec<String> = Vec::new();
        for u in &mine {
            let op = format!("`{}`", u.operation);
            if !operations.contains(&op) {
                operations.push(op);
            }
            let p = format!("`{}`", u.plugin);
            if !plugins.contains(&p) {
                plugins.push(p);
            }
        }
        let plural =
            |n: usize, one: &'static str, many: &'static str| if n > 1 { many } else { one };
        let mut d = Diagnostic::new(
            node.loc,
            format!(
                "node `{}` is not contained in a host, but its {} {} {} on a host agent ({} {} with executor `host_agent`)",
                node.id,
                plural(operations.len(), "operation", "operations"),
                operations.join(", "),
                plural(operations.len(), "runs", "run"),
                plural(plugins.len(), "plugin", "plugins"),
                plugins.join(", "),
            ),
        )
        .with_help(format!(
            "contain `{}` in a cloudify.nodes.Compute node (a `cloudify.relationships.contained_in` relationship), or set `executor: central_deployment_agent` on {}",
            node.id,
            plural(operations.len(), "the operation", "the operations"),
        ));
        for u in mine {
            d = d.with_related(u.loc, format!("`{}` runs on the host agent", u.operation));
        }
        diags.push(d);
    }
}

/// A Compute, or contained (through any number of `contained_in`) in one.
fn has_host(nodes: &[CompiledNode], idx: usize) -> bool {
    let mut current = idx;
    // A containment cycle is reported elsewhere; the walk stops after visiting every node.
    for _ in 0..=nodes.len() {
        let Some(node) = nodes.get(current) else {
            return false;
        };
        if node.is_compute() {
            return true;
        }
        match node.contained_in {
            Some(parent) => current = parent,
            None => return false,
        }
    }
    false
}

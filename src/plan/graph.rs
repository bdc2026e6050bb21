//! The node relationship graph (petgraph): an edge from a node to every node it has a
//! relationship with. Finds dependency cycles, reported with the whole cycle, and gives the
//! install order (targets before sources).

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::diag::{Diagnostic, Diagnostics};
use crate::dsl::Compiled;

pub struct NodeGraph {
    graph: DiGraph<usize, ()>,
}

impl NodeGraph {
    pub fn new(c: &Compiled) -> Self {
        let mut graph = DiGraph::with_capacity(c.nodes.len(), c.nodes.len());
        for i in 0..c.nodes.len() {
            graph.add_node(i);
        }
        for (i, n) in c.nodes.iter().enumerate() {
            for r in &n.relationships {
                graph.update_edge(NodeIndex::new(i), NodeIndex::new(r.target), ());
            }
        }
        NodeGraph { graph }
    }

    /// Report every dependency cycle as `a -> b -> c -> a`. True when there is none.
    pub fn check_cycles(&self, c: &Compiled, diags: &mut Diagnostics) -> bool {
        let mut ok = true;
        for scc in tarjan_scc(&self.graph) {
            if scc.len() < 2 {
                continue;
            }
            ok = false;
            let start = *scc.iter().min().expect("non-empty component");
            let path = self.cycle_through(start, &scc);
            let names: Vec<&str> = path
                .iter()
                .map(|i| c.nodes[i.index()].id.0.as_str())
                .collect();
            let first = &c.nodes[start.index()];
            let loc = first
                .relationships
                .iter()
                .find(|r| r.target == path[1].index())
                .map_or(first.loc, |r| r.loc);
            diags.push(
                Diagnostic::new(
                    loc,
                    format!("circular node dependency: {}", names.join(" -> ")),
                )
                .with_help(
                    "relationships must form a graph without cycles; remove or reverse one of them",
                ),
            );
        }
        ok
    }

    /// A cycle from `start` back to it, staying inside one strongly connected component.
    fn cycle_through(&self, start: NodeIndex, scc: &[NodeIndex]) -> Vec<NodeIndex> {
        // Breadth-first from start's successors back to start gives a shortest cycle.
        let mut prev = crate::maps::HashMap::default();
        let mut queue = std::collections::VecDeque::new();
        let mut succ: Vec<NodeIndex> = self
            .graph
            .edges(start)
            .map(|e| e.target())
            .filter(|t| scc.contains(t))
            .collect();
        succ.sort();
        for s in succ {
            prev.entry(s).or_insert(start);
            queue.push_back(s);
        }
        while let Some(n) = queue.pop_front() {
            if n == start {
                break;
            }
            let mut next: Vec<NodeIndex> = self
                .graph
                .edges(n)
                .map(|e| e.target())
                .filter(|t| scc.contains(t))
                .collect();
            next.sort();
            for t in next {
                if let std::collections::hash_map::Entry::Vacant(e) = prev.entry(t) {
                    e.insert(n);
                    queue.push_back(t);
                }
            }
        }
        let mut path = vec![start];
        let mut cur = prev[&start];
        while cur != start {
            path.push(cur);
            cur = prev[&cur];
        }
        path.push(start);
        let last = path.len() - 1;
        path[1..last].reverse();
        path
    }

    /// Nodes in install order: every node after the nodes it relates to. Ties keep blueprint
    /// order. Only meaningful when there is no cycle.
    pub fn install_order(&self) -> Vec<usize> {
        let n = self.graph.node_count();
        let mut pending: Vec<usize> = (0..n)
            .map(|i| self.graph.edges(NodeIndex::new(i)).count())
            .collect();
        let mut dependants: Vec<Vec<usize>> = vec![Vec::new(); n];
        for e in self.graph.edge_references() {
            dependants[e.target().index()].push(e.source().index());
        }
        let mut ready: std::collections::BTreeSet<usize> =
            (0..n).filter(|i| pending[*i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop_first() {
            order.push(i);
            for &d in &dependants[i] {
                pending[d] -= 1;
                if pending[d] == 0 {
                    ready.insert(d);
                }
            }
        }
        order
    }
}

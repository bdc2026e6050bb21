//! A scale reads only the instances it touches (a partial plan) and writes only the rows that
//! change. These tests scale deployments of many shapes through the engine and compare the
//! stored result with the same modification applied to the whole plan in memory: instances,
//! containment, hosts, scaling-group membership, every relationship instance (in order),
//! counts and counters must be identical. Ids are random, so instances are compared by their
//! creation order.

use std::path::Path;

use windlass::dsl::Compiled;
use windlass::engine::scale::Amount;
use windlass::engine::{self, Options};
use windlass::plan::{Entity, IdMaker, Plan, Slot};
use windlass::store::Store;

/// The plan with ids replaced by creation order, one line per instance and group instance.
fn canonical(c: &Compiled, p: &Plan) -> Vec<String> {
    let name = |s: Option<Slot>| match s {
        Some(Slot::Node(i)) => format!("n{}", p.instances[i as usize].seq),
        Some(Slot::Group(g)) => format!("g{}", p.group_instances[g as usize].seq),
        None => "-".to_string(),
    };
    let node = |i: Option<u32>| name(i.map(Slot::Node));
    let mut out: Vec<(i64, String)> = p
        .instances
        .iter()
        .map(|inst| {
            let rels: Vec<String> = inst
                .relationships
                .iter()
                .map(|r| format!("{}>{}", r.relationship, node(Some(r.target))))
                .collect();
            let groups: Vec<String> = inst
                .scaling_groups
                .iter()
                .map(|g| name(Some(Slot::Group(*g))))
                .collect();
            (
                inst.seq,
                format!(
                    "n{} {} #{} parent={} in={} host={} groups={groups:?} rels={rels:?}",
                    inst.seq,
                    c.nodes[inst.node].id.0,
                    inst.index,
                    name(inst.parent),
                    node(inst.contained_in),
                    node(inst.host)
                ),
            )
        })
        .chain(p.group_instances.iter().map(|g| {
            (
                g.seq,
                format!(
                    "g{} {} parent={}",
                    g.seq,
                    p.tree.groups[g.group].name,
                    name(g.parent)
                ),
            )
        }))
        .collect();
    out.sort();
    let mut lines: Vec<String> = out.into_iter().map(|(_, l)| l).collect();
    lines.push(format!(
        "counts {:?} {:?} next {:?} {}",
        p.node_counts, p.group_counts, p.next_index, p.next_seq
    ));
    lines
}

fn entity(c: &Compiled, p: &Plan, name: &str) -> Entity {
    match c.node_index.get(name) {
        Some(n) => Entity::Node(*n),
        None => Entity::Group(p.tree.groups.iter().position(|g| g.name == name).unwrap()),
    }
}

/// The modification on the whole plan, as the plan module does it without a store.
fn expected(c: &Compiled, mut p: Plan, e: Entity, delta: i64) -> Plan {
    if delta > 0 {
        p.scale_out(c, e, delta as u32, &mut IdMaker::seeded(3));
    } else {
        let per_parent = (-delta) as u32;
        let victims = p
            .pick_for_removal(e, per_parent as usize, &[], &[])
            .unwrap();
        let removal = p.removal(&victims);
        p.remove(&removal, e, per_parent);
    }
    p
}

/// Deploy `text`, then apply each `(target, delta)` through the engine and check the stored
/// plan after each against the whole-plan modification. Returns how many link rows (runs) the
/// store holds at the end.
fn check(label: &str, text: &str, steps: &[(&str, i64)]) -> usize {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("windlass-partial-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let bp = windlass::blueprint::open_str(Path::new("bp.yaml"), text, &Default::default())
        .unwrap_or_else(|e| panic!("{label}: {e:?}"));
    let runs = rt.block_on(async {
        let store = Store::open(dir.join("state.db").to_str().unwrap())
            .await
            .unwrap();
        store
            .create_deployment(
                "d",
                "bp.yaml",
                &serde_json::json!({}),
                &bp.compiled,
                std::future::ready(serde_json::to_string(&bp.compiled).unwrap()),
                &bp.plan,
                &[],
                &[],
            )
            .await
            .unwrap();
        let options = Options::default();
        engine::run(&store, "d", "install", Default::default(), false, &options)
            .await
            .unwrap();
        for (target, delta) in steps {
            let before = store.deployment("d").await.unwrap();
            let c = &before.compiled;
            let e = entity(c, &before.plan, target);
            let want = expected(c, (*before.plan).clone(), e, *delta);
            engine::scale(
                &store,
                "d",
                target,
                Amount::Relative(*delta),
                Default::default(),
                &options,
            )
            .await
            .unwrap_or_else(|err| panic!("{label}: scale {target} {delta}: {err}"));
            let after = store.deployment("d").await.unwrap();
            assert_eq!(
                canonical(c, &after.plan),
                canonical(c, &want),
                "{label}: after scale {target} {delta:+}"
            );
            let states = store.instances("d").await.unwrap();
            assert_eq!(states.len(), after.plan.instances.len(), "{label}");
            assert!(
                states.iter().all(|s| s.state == "started"),
                "{label}: every remaining instance is started after scale {target} {delta:+}"
            );
        }
        store.links_touching("d", None).await.unwrap().len()
    });
    let _ = std::fs::remove_dir_all(&dir);
    runs
}

const HEAD: &str =
    "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\n";

#[test]
fn contained_chains_and_connections_in_both_directions() {
    let text = format!(
        "{HEAD}node_templates:\n  vm: {{ type: cloudify.nodes.Compute, instances: {{ deploy: 3 }} }}\n  app:\n    type: cloudify.nodes.Root\n    instances: {{ deploy: 2 }}\n    relationships:\n      - {{ type: cloudify.relationships.contained_in, target: vm }}\n      - {{ type: cloudify.relationships.connected_to, target: db }}\n  mod:\n    type: cloudify.nodes.Root\n    relationships: [{{ type: cloudify.relationships.contained_in, target: app }}]\n  db: {{ type: cloudify.nodes.Root, instances: {{ deploy: 2 }} }}\n  lb:\n    type: cloudify.nodes.Root\n    instances: {{ deploy: 2 }}\n    relationships:\n      - {{ type: cloudify.relationships.connected_to, target: app }}\n      - {{ type: cloudify.relationships.connected_to, target: mod }}\n      - {{ type: cloudify.relationships.connected_to, target: db, properties: {{ connection_type: all_to_one }} }}\n"
    );
    let _ = check(
        "chains",
        &text,
        &[
            ("vm", 2),
            ("app", 1),
            ("db", 2),
            ("lb", 1),
            ("vm", -3),
            ("app", -2),
            ("db", -3),
            ("mod", 2),
            ("lb", -2),
            ("vm", 1),
        ],
    );
}

#[test]
fn scaling_groups_nested_and_linked_inside_and_out() {
    let text = format!(
        "{HEAD}node_templates:\n  vm: {{ type: cloudify.nodes.Compute }}\n  disk: {{ type: cloudify.nodes.Root }}\n  app:\n    type: cloudify.nodes.Root\n    relationships:\n      - {{ type: cloudify.relationships.contained_in, target: vm }}\n      - {{ type: cloudify.relationships.connected_to, target: disk }}\n  cache:\n    type: cloudify.nodes.Root\n    relationships:\n      - {{ type: cloudify.relationships.contained_in, target: vm }}\n      - {{ type: cloudify.relationships.connected_to, target: app, properties: {{ connection_type: all_to_one }} }}\n  db: {{ type: cloudify.nodes.Root, instances: {{ deploy: 2 }} }}\n  front:\n    type: cloudify.nodes.Root\n    relationships:\n      - {{ type: cloudify.relationships.connected_to, target: app }}\n      - {{ type: cloudify.relationships.connected_to, target: db }}\n  watcher:\n    type: cloudify.nodes.Root\n    relationships:\n      - {{ type: cloudify.relationships.connected_to, target: cache }}\ngroups:\n  node: {{ members: [vm, disk] }}\n  rack: {{ members: [node] }}\npolicies:\n  node_scaling: {{ type: cloudify.policies.scaling, targets: [node], properties: {{ default_instances: 2 }} }}\n  rack_scaling: {{ type: cloudify.policies.scaling, targets: [rack], properties: {{ default_instances: 2 }} }}\n"
    );
    let _ = check(
        "groups",
        &text,
        &[
            ("node", 1),
            ("rack", 1),
            ("app", 1),
            ("cache", 2),
            ("node", -2),
            ("rack", -1),
            ("app", -1),
            ("db", 1),
            ("front", 1),
            ("rack", 2),
        ],
    );
}

#[test]
fn a_group_of_two_members_on_one_host() {
    let text = format!(
        "{HEAD}node_templates:\n  host: {{ type: cloudify.nodes.Compute, instances: {{ deploy: 2 }} }}\n  a:\n    type: cloudify.nodes.Root\n    relationships:\n      - {{ type: cloudify.relationships.contained_in, target: host }}\n  b:\n    type: cloudify.nodes.Root\n    relationships:\n      - {{ type: cloudify.relationships.contained_in, target: host }}\n      - {{ type: cloudify.relationships.connected_to, target: a }}\n  c:\n    type: cloudify.nodes.Root\n    relationships:\n      - {{ type: cloudify.relationships.connected_to, target: b }}\ngroups:\n  pair: {{ members: [a, b] }}\npolicies:\n  pair_scaling: {{ type: cloudify.policies.scaling, targets: [pair], properties: {{ default_instances: 1 }} }}\n"
    );
    let _ = check(
        "pair",
        &text,
        &[
            ("pair", 2),
            ("host", 1),
            ("pair", -1),
            ("host", -2),
            ("c", 1),
            ("pair", 1),
        ],
    );
}

/// A fan-in stores a row per source and relationship, not per link: scaling the target out
/// gives each source one more row, whatever the number of new targets.
#[test]
fn a_fan_in_scaled_out_stores_a_row_per_source() {
    let text = format!(
        "{HEAD}node_templates:\n  web: {{ type: cloudify.nodes.Root, instances: {{ deploy: 2 }} }}\n  lb:\n    type: cloudify.nodes.Root\n    instances: {{ deploy: 3 }}\n    relationships:\n      - {{ type: cloudify.relationships.connected_to, target: web }}\n"
    );
    // 3 rows (one per lb), then 3 more for the 4 new webs.
    assert_eq!(check("fan-in", &text, &[("web", 4)]), 6);
}

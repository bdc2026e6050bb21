//! Property test: blueprints mutated at random (lines dropped, duplicated or swapped, tokens
//! inserted, bytes cut) never panic the loader, validator or planner; they either plan or report
//! diagnostics that point inside the files that were read.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use windlass::blueprint::{self, Error};

fn seeds() -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/valid");
    let mut out: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    out.sort();
    out
}

const TOKENS: &[&str] = &[
    "{ get_input: x }",
    "{ get_property: [SELF, a] }",
    "{ get_property: [TARGET, b, 0] }",
    "[",
    "]",
    "{",
    "}",
    ": ",
    "- ",
    "&a ",
    "*a",
    "<<: *a",
    "'",
    "\"",
    "-1",
    "UNBOUNDED",
    "null",
    "~",
    "{ concat: [] }",
    "{ merge: [1] }",
    "{ string_split: [a, ''] }",
    "{ get_attribute: [] }",
    "cloudify.relationships.contained_in",
    "target: ",
    "type: ",
    "derived_from: ",
    "\t",
    "\n  ",
    "\u{1F600}",
    "999999999999999999999",
];

#[derive(Debug, Clone)]
enum Mutation {
    DropLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    Insert(usize, usize),
    Cut(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::DropLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(a, t)| Mutation::Insert(a, t)),
        (any::<usize>(), 1usize..20).prop_map(|(a, n)| Mutation::Cut(a, n)),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let n = lines.len().max(1);
    match *m {
        Mutation::DropLine(i) => {
            lines.remove(i % n);
        }
        Mutation::DuplicateLine(i) => {
            let l = lines[i % n].clone();
            lines.insert(i % n, l);
        }
        Mutation::SwapLines(a, b) => lines.swap(a % n, b % n),
        Mutation::Insert(at, t) => {
            let joined = lines.join("\n");
            let mut cut = at % (joined.len() + 1);
            while !joined.is_char_boundary(cut) {
                cut -= 1;
            }
            return format!("{}{}{}", &joined[..cut], TOKENS[t], &joined[cut..]);
        }
        Mutation::Cut(at, len) => {
            let joined = lines.join("\n");
            let mut start = at % (joined.len() + 1);
            while !joined.is_char_boundary(start) {
                start -= 1;
            }
            let mut end = (start + len).min(joined.len());
            while !joined.is_char_boundary(end) {
                end += 1;
            }
            return format!("{}{}", &joined[..start], &joined[end..]);
        }
    }
    lines.join("\n")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_blueprints_never_panic(seed in any::<usize>(), mutations in prop::collection::vec(mutation(), 1..4)) {
        let seeds = seeds();
        let (path, text) = &seeds[seed % seeds.len()];
        let mutated = mutations.iter().fold(text.clone(), |t, m| apply(&t, m));
        match blueprint::open_str(path, &mutated, &Default::default()) {
            Ok(bp) => prop_assert_eq!(bp.plan.by_node.len(), bp.compiled.nodes.len()),
            Err(Error::Invalid(report)) => {
                prop_assert!(!report.diagnostics.is_empty());
                // Rendering must not panic either, whatever the spans.
                let _ = report.rendered().iter().map(|r| format!("{r:?}")).count();
                let _ = report.plain();
            }
            Err(e) => prop_assert!(false, "unexpected error kind: {e}"),
        }
    }
}

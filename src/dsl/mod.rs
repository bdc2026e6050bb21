//! DSL: loaded documents → a validated, resolved blueprint.
//!
//! `read` turns documents into one merged [`model::Model`] (keys, versions, namespaces, merge
//! rules); `compile` resolves types, evaluates intrinsic functions against the inputs and checks
//! everything, producing a [`Compiled`] blueprint. Problems are collected as diagnostics across
//! all stages so one run reports every error of a blueprint. This stage performs no I/O except
//! checking that script files named by operations exist.

pub mod compile;
pub mod compiled;
pub mod constraints;
pub mod data_based;
pub mod functions;
pub mod host_agent;
pub mod inputs;
pub mod model;
pub mod read;
pub mod types;
pub mod values;
pub mod version;

pub use compiled::{Compiled, NodeId};
pub use inputs::GivenInputs;

use crate::diag::Diagnostics;
use crate::load::Loaded;

/// Read and compile loaded documents. Diagnostics go to `diags`; the result is meaningful only
/// when no diagnostic was added.
pub fn compile(loaded: &Loaded, given: &GivenInputs, diags: &mut Diagnostics) -> Option<Compiled> {
    let main = loaded.documents.iter().find(|d| d.is_main)?;
    let version = read::main_version(main, diags);
    let mut reader = read::Reader::new(version, diags);
    for doc in &loaded.documents {
        let builtin = loaded.sources.get(doc.file).name.starts_with("<builtin>");
        reader.read(doc, builtin);
    }
    let model = reader.finish();
    let inputs_loc = main
        .root
        .as_map()
        .and_then(|m| m.iter().find(|(k, _)| k.name == "inputs"))
        .map_or(main.root.loc, |(k, _)| k.loc);
    Some(compile::compile(
        &model,
        given,
        &loaded.root_dir,
        inputs_loc,
        diags,
    ))
}

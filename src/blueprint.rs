//! The front door: a blueprint path and inputs → a validated [`Compiled`] blueprint and its
//! [`Plan`], or a [`Report`] of every problem found on the way.

use std::path::Path;

use crate::diag::{Diagnostics, Report};
use crate::dsl::inputs::InputError;
use crate::dsl::{self, Compiled, GivenInputs};
use crate::load::{self, LoadError};
use crate::plan::{self, Plan};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Inputs(#[from] InputError),
    #[error("{} error{} in the blueprint", .0.diagnostics.len(), if .0.diagnostics.len() == 1 { "" } else { "s" })]
    Invalid(Box<Report>),
}

/// A compiled blueprint with its plan.
#[derive(Debug, Clone)]
pub struct Blueprint {
    pub compiled: Compiled,
    pub plan: Plan,
    /// What Cloudify accepts but the user should hear about (a duplicate key replaced), as
    /// `file:line:col: message` lines.
    pub warnings: Vec<String>,
}

/// Load, validate and plan the blueprint at `path` with the given inputs.
pub fn open(path: &Path, given: &GivenInputs) -> Result<Blueprint, Error> {
    let (loaded, diags) = load::load_file(path)?;
    finish(loaded, diags, given)
}

/// Same as [`open`], for a blueprint already in memory (`path` anchors relative imports).
pub fn open_str(path: &Path, text: &str, given: &GivenInputs) -> Result<Blueprint, Error> {
    let (loaded, diags) = load::load_str(path, text);
    finish(loaded, diags, given)
}

/// [`open`], handing the result to `ready` before the parsed YAML (the largest thing opening
/// builds) is freed: a caller waiting on another thread has it that much sooner.
pub fn open_then(path: &Path, given: &GivenInputs, ready: impl FnOnce(Result<Blueprint, Error>)) {
    match load::load_file(path) {
        Ok((loaded, diags)) => {
            let (result, documents) = finish_keeping(loaded, diags, given);
            ready(result);
            drop(documents);
        }
        Err(e) => ready(Err(e.into())),
    }
}

fn finish(
    loaded: load::Loaded,
    diags: Diagnostics,
    given: &GivenInputs,
) -> Result<Blueprint, Error> {
    finish_keeping(loaded, diags, given).0
}

/// [`finish`], returning the parsed documents along with the result instead of freeing them.
fn finish_keeping(
    loaded: load::Loaded,
    mut diags: Diagnostics,
    given: &GivenInputs,
) -> (Result<Blueprint, Error>, Vec<load::Document>) {
    let compiled = dsl::compile(&loaded, given, &mut diags);
    if let Some(c) = &compiled {
        // Descriptor files are part of what the blueprint says: `validate` checks them too.
        crate::plugins::kubernetes::descriptors::check(c, &loaded.root_dir, &mut diags);
    }
    // Planning checks structure (cycles, groups) even when compiling found errors, so the
    // user sees those too; it generates instances only for a clean blueprint.
    let plan = compiled.as_ref().and_then(|c| plan::build(c, &mut diags));
    let warnings = diags
        .take_warnings()
        .iter()
        .map(|w| format!("{}: {}", loaded.sources.describe(w.loc), w.message))
        .collect();
    let result = match (compiled, plan) {
        (Some(compiled), Some(plan)) if diags.is_empty() => Ok(Blueprint {
            compiled,
            plan,
            warnings,
        }),
        _ => Err(Error::Invalid(Box::new(Report::new(loaded.sources, diags)))),
    };
    (result, loaded.documents)
}

//! Diagnostics: what is wrong with a blueprint, where, and what would be right.
//!
//! Every stage (load, dsl, plan) collects [`Diagnostic`]s instead of stopping at the first
//! problem, so a user sees every error of a file at once. A diagnostic is plain data (a `Loc`,
//! a message, an optional "did you mean" help and related locations); it is turned into text with
//! a source snippet only at the CLI edge, by [`Report`], which owns the `Sources` the locations
//! point into.

use std::fmt;

use miette::{LabeledSpan, NamedSource, SourceSpan};

use crate::load::source::{Loc, Sources};

/// One problem in a blueprint.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub loc: Loc,
    pub message: String,
    pub help: Option<String>,
    /// Other places that explain the problem (the first definition of a duplicate, …).
    pub related: Vec<(Loc, String)>,
}

impl Diagnostic {
    pub fn new(loc: Loc, message: impl Into<String>) -> Self {
        Diagnostic {
            loc,
            message: message.into(),
            help: None,
            related: Vec::new(),
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_help_opt(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    pub fn with_related(mut self, loc: Loc, what: impl Into<String>) -> Self {
        self.related.push((loc, what.into()));
        self
    }
}

/// Collects diagnostics during one stage.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
    /// What Cloudify accepts but a user should know (a duplicate key, …); never fails a stage.
    warnings: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        if !self.items.contains(&d) {
            self.items.push(d);
        }
    }

    pub fn error(&mut self, loc: Loc, message: impl Into<String>) {
        self.push(Diagnostic::new(loc, message));
    }

    pub fn warn(&mut self, d: Diagnostic) {
        if !self.warnings.contains(&d) {
            self.warnings.push(d);
        }
    }

    /// The warnings collected so far, sorted by position; errors stay.
    pub fn take_warnings(&mut self) -> Vec<Diagnostic> {
        let mut w = std::mem::take(&mut self.warnings);
        w.sort_by_key(|d| (d.loc.file, d.loc.line, d.loc.col));
        w
    }

    /// True when no error was collected (warnings do not count).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn extend(&mut self, other: Diagnostics) {
        for d in other.items {
            self.push(d);
        }
        for d in other.warnings {
            self.warn(d);
        }
    }

    /// Sorted by file and position, as users read them.
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.items
            .sort_by_key(|d| (d.loc.file, d.loc.line, d.loc.col));
        self.items
    }
}

/// Every diagnostic of a failed load/validate/plan, together with the sources they point into.
#[derive(Debug, Clone)]
pub struct Report {
    pub sources: Sources,
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    pub fn new(sources: Sources, diagnostics: Diagnostics) -> Self {
        Report {
            sources,
            diagnostics: diagnostics.into_sorted(),
        }
    }

    /// `file:line:col: message` lines, one per diagnostic, with help on the next line.
    pub fn plain(&self) -> String {
        let mut out = String::new();
        for d in &self.diagnostics {
            out.push_str(&format!(
                "{}: error: {}\n",
                self.sources.describe(d.loc),
                d.message
            ));
            if let Some(help) = &d.help {
                out.push_str(&format!("  help: {help}\n"));
            }
            for (loc, what) in &d.related {
                out.push_str(&format!(
                    "  note: {}: {what}\n",
                    self.sources.describe(*loc)
                ));
            }
        }
        out
    }

    /// One miette diagnostic per problem, each with its source snippet.
    pub fn rendered(&self) -> Vec<miette::Report> {
        self.diagnostics
            .iter()
            .map(|d| {
                let file = self.sources.get(d.loc.file);
                let mut labels = Vec::new();
                if !d.loc.is_unknown() {
                    labels.push(LabeledSpan::at(span(d.loc, &file.text), "here"));
                }
                for (loc, what) in &d.related {
                    if loc.file == d.loc.file && !loc.is_unknown() {
                        labels.push(LabeledSpan::at(span(*loc, &file.text), what.clone()));
                    }
                }
                let diag = Rendered {
                    message: format!("{}: {}", self.sources.describe(d.loc), d.message),
                    help: d.help.clone(),
                    labels,
                    related_notes: d
                        .related
                        .iter()
                        .filter(|(l, _)| l.file != d.loc.file)
                        .map(|(l, w)| format!("{}: {w}", self.sources.describe(*l)))
                        .collect(),
                };
                miette::Report::new(diag)
                    .with_source_code(NamedSource::new(file.name.clone(), file.text.to_string()))
            })
            .collect()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.plain().trim_end())
    }
}

fn span(loc: Loc, text: &str) -> SourceSpan {
    let start = (loc.offset as usize).min(text.len());
    let len = (loc.len as usize).min(text.len() - start);
    SourceSpan::new(start.into(), len)
}

#[derive(Debug)]
struct Rendered {
    message: String,
    help: Option<String>,
    labels: Vec<LabeledSpan>,
    related_notes: Vec<String>,
}

impl fmt::Display for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Rendered {}

impl miette::Diagnostic for Rendered {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        let mut parts: Vec<String> = self.help.iter().cloned().collect();
        parts.extend(self.related_notes.iter().map(|n| format!("see {n}")));
        if parts.is_empty() {
            None
        } else {
            Some(Box::new(parts.join("\n")))
        }
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.labels.clone().into_iter()))
    }
}

/// "did you mean `x`?" for the closest candidate within a small edit distance.
pub fn did_you_mean<'a>(
    wrong: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let limit = (wrong.chars().count() / 3).clamp(1, 4);
    candidates
        .into_iter()
        .map(|c| (edit_distance(wrong, c), c))
        .filter(|(d, c)| *d <= limit || (c.len() > 3 && c.ends_with(wrong)))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

/// Optimal string alignment distance: edits plus transpositions (`wbe` is one step from `web`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let c = ["node_templates", "node_types", "relationships"];
        assert_eq!(
            did_you_mean("node_template", c).as_deref(),
            Some("did you mean `node_templates`?")
        );
        assert_eq!(did_you_mean("zzz", c), None);
        assert_eq!(
            did_you_mean("Compute", ["cloudify.nodes.Compute"]).as_deref(),
            Some("did you mean `cloudify.nodes.Compute`?")
        );
    }
}

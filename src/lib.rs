//! windlass: a blueprint orchestrator for Cloudify's TOSCA-style DSL.
//!
//! The pipeline, one module per stage: [`load`] (YAML with spans, imports) → [`dsl`] (types,
//! inheritance, intrinsic functions, validation) → [`plan`] (node instances and their
//! relationship graph). [`diag`] carries problems from every stage to the [`cli`] edge, the only
//! place they are rendered. [`blueprint`] ties the stages together for callers.

pub mod blueprint;
pub mod cli;
pub mod diag;
pub mod dsl;
pub mod engine;
pub mod load;
pub mod maps;
pub mod plan;
pub mod plugins;
pub mod policy;
pub mod procs;
pub mod secrets;
pub mod server;
pub mod store;
pub mod template;
pub mod tuning;

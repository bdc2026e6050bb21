//! Graphite plaintext over TCP: `PATH VALUE TIMESTAMP\n`, the format Diamond and collectd emit.
//!
//! A [`Template`] says which dot-separated parts of PATH are the deployment, the node instance
//! and the metric: the default `deployment.node_instance.metric` reads
//! `d1.web_x1y2z3.cpu.total.user 12.5 1764000000` as deployment `d1`, instance `web_x1y2z3`,
//! metric `cpu.total.user`. `metric` takes every part the other fields leave; `_` skips a part.
//! Collectors keep one connection open for hours, so lines are parsed as they arrive and
//! handed to the runtime whenever the connection has nothing more buffered: a batch never
//! waits for more input.

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{Counters, excerpt};
use crate::policy::{Sample, Timestamp};
use crate::server::runtime::Handle;

/// Samples handed over at most per batch.
const BATCH: usize = 4096;
/// A line longer than this is malformed (and skipped to its end).
const MAX_LINE: usize = 4096;

/// Which parts of a Graphite path are which. See the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    fields: Vec<Field>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    Deployment,
    Instance,
    Metric,
    Skip,
}

impl Default for Template {
    fn default() -> Self {
        Template {
            fields: vec![Field::Deployment, Field::Instance, Field::Metric],
        }
    }
}

impl std::str::FromStr for Template {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let fields: Vec<Field> = s
            .split('.')
            .map(|p| match p {
                "deployment" => Ok(Field::Deployment),
                "node_instance" | "host" => Ok(Field::Instance),
                "metric" => Ok(Field::Metric),
                "_" => Ok(Field::Skip),
                other => Err(format!(
                    "unknown part `{other}` in the Graphite template `{s}`: use deployment, node_instance (or host), metric and _ (skip), separated by dots"
                )),
            })
            .collect::<Result<_, _>>()?;
        for (f, name) in [
            (Field::Deployment, "deployment"),
            (Field::Instance, "node_instance"),
            (Field::Metric, "metric"),
        ] {
            if fields.iter().filter(|x| **x == f).count() != 1 {
                return Err(format!(
                    "the Graphite template `{s}` must name `{name}` exactly once"
                ));
            }
        }
        Ok(Template { fields })
    }
}

impl Template {
    /// `(deployment, instance, metric)` of a path, or why not.
    fn split<'a>(&self, path: &'a str) -> Result<(&'a str, &'a str, String), String> {
        let parts: Vec<&str> = path.split('.').collect();
        let fixed = self.fields.len() - 1;
        if parts.len() <= fixed || parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "the path `{}` does not fit the template ({} dot-separated parts at least)",
                excerpt(path),
                self.fields.len()
            ));
        }
        let metric_len = parts.len() - fixed;
        let (mut deployment, mut instance, mut metric) = ("", "", String::new());
        let mut i = 0;
        for f in &self.fields {
            match f {
                Field::Deployment => deployment = parts[i],
                Field::Instance => instance = parts[i],
                Field::Skip => {}
                Field::Metric => {
                    metric = parts[i..i + metric_len].join(".");
                    i += metric_len;
                    continue;
                }
            }
            i += 1;
        }
        Ok((deployment, instance, metric))
    }

    /// One line as a sample, or why not.
    pub fn parse(&self, line: &str) -> Result<Sample, String> {
        let mut words = line.split_ascii_whitespace();
        let (Some(path), Some(value), time, None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(format!("`{}` is not `PATH VALUE TIMESTAMP`", excerpt(line)));
        };
        let value: f64 = value
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| format!("the value `{}` is not a number", excerpt(value)))?;
        let at = match time {
            None | Some("-1") => crate::server::runtime::now(),
            Some(t) => Timestamp(
                t.parse()
                    .ok()
                    .filter(|t: &f64| t.is_finite())
                    .ok_or_else(|| format!("the timestamp `{}` is not a number", excerpt(t)))?,
            ),
        };
        let (deployment, instance, metric) = self.split(path)?;
        Ok(Sample {
            deployment: deployment.to_string(),
            node_instance: instance.to_string(),
            name: metric,
            value,
            at,
        })
    }
}

/// Accept connections until shutdown; each is read by a task of its own.
pub async fn serve(
    listener: TcpListener,
    template: Template,
    runtime: Handle,
    counters: Arc<Counters>,
    mut shutdown: watch::Receiver<bool>,
) {
    let template = Arc::new(template);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                tokio::spawn(connection(stream, template.clone(), runtime.clone(), counters.clone()));
            }
            _ = crate::server::until_set(&mut shutdown) => return,
        }
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    template: Arc<Template>,
    runtime: Handle,
    counters: Arc<Counters>,
) {
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut line = Vec::with_capacity(256);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        line.clear();
        let read = match (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(n) => n,
            Err(_) => break,
        };
        if read == 0 {
            break;
        }
        if line.len() > MAX_LINE && line.last() != Some(&b'\n') {
            counters
                .graphite
                .malformed(format!("a line longer than {MAX_LINE} bytes"));
            // Skip the rest of the long line.
            let mut rest = Vec::new();
            if reader.read_until(b'\n', &mut rest).await.is_err() {
                break;
            }
            continue;
        }
        match std::str::from_utf8(&line) {
            Ok(text) if text.trim().is_empty() => {}
            Ok(text) => match template.parse(text.trim_end()) {
                Ok(s) => batch.push(s),
                Err(why) => counters.graphite.malformed(why),
            },
            Err(_) => counters
                .graphite
                .malformed("a line that is not UTF-8".into()),
        }
        if batch.len() >= BATCH || (reader.buffer().is_empty() && !batch.is_empty()) {
            counters.graphite.accept(batch.len() as u64);
            if !runtime
                .submit(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))
                .await
            {
                return;
            }
        }
    }
    counters.graphite.accept(batch.len() as u64);
    runtime.submit(batch).await;
}

use tokio::io::AsyncReadExt as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_template_reads_deployment_instance_and_the_rest() {
        let t = Template::default();
        let s = t
            .parse("d1.web_x1y2z3.cpu.total.user 12.5 1764000000")
            .unwrap();
        assert_eq!(s.deployment, "d1");
        assert_eq!(s.node_instance, "web_x1y2z3");
        assert_eq!(s.name, "cpu.total.user");
        assert_eq!(s.value, 12.5);
        assert_eq!(s.at, Timestamp(1764000000.0));
    }

    #[test]
    fn other_layouts_by_template() {
        let t: Template = "_.deployment.host.metric".parse().unwrap();
        let s = t.parse("servers.d1.vm_abc123.loadavg.01 0.5 10").unwrap();
        assert_eq!(
            (
                s.deployment.as_str(),
                s.node_instance.as_str(),
                s.name.as_str()
            ),
            ("d1", "vm_abc123", "loadavg.01")
        );
        let t: Template = "metric.deployment.node_instance".parse().unwrap();
        let s = t.parse("a.b.d.i 1 2").unwrap();
        assert_eq!(
            (
                s.deployment.as_str(),
                s.node_instance.as_str(),
                s.name.as_str()
            ),
            ("d", "i", "a.b")
        );
        assert!(
            "deployment.metric"
                .parse::<Template>()
                .unwrap_err()
                .contains("node_instance")
        );
        assert!(
            "deployment.node.metric"
                .parse::<Template>()
                .unwrap_err()
                .contains("unknown part `node`")
        );
    }

    #[test]
    fn malformed_lines_say_why() {
        let t = Template::default();
        assert!(
            t.parse("d1.i.m abc 10")
                .unwrap_err()
                .contains("not a number")
        );
        assert!(t.parse("d1.i.m 1 soon").unwrap_err().contains("timestamp"));
        assert!(t.parse("d1.i 1 10").unwrap_err().contains("does not fit"));
        assert!(t.parse("d1..m 1 10").unwrap_err().contains("does not fit"));
        assert!(
            t.parse("just-one-word")
                .unwrap_err()
                .contains("PATH VALUE TIMESTAMP")
        );
        assert!(
            t.parse("d1.i.m 1 2 3")
                .unwrap_err()
                .contains("PATH VALUE TIMESTAMP")
        );
        assert!(t.parse("d1.i.m NaN 2").is_err());
    }
}

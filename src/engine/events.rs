//! The recorder: every state change, task record and event goes through it to the store, in
//! batches (group commit), and last the execution's end ([`Write::Ended`]: its status, with a
//! finished install's `installed` mark, committed with what was still queued). Events are
//! shown to the user from here only, after they are committed, so parallel work never
//! interleaves on the terminal.
//!
//! `write` queues; `flush` waits until everything queued so far is committed. The engine
//! flushes after each operation that has side effects, so a killed process loses at most the
//! operations in flight; side-effect-free work (state steps, `noop`) is committed with the next
//! batch.
//!
//! The recorder also holds the execution's secret [`Mask`]: every event message, runtime
//! property and task result passes through it on the way in (`write`), so no secret value
//! reaches the store, the terminal or anything that reads them later (`events`, `instances`,
//! the REST API).

use std::sync::{Arc, RwLock};

use indicatif::ProgressBar;
use tokio::sync::{mpsc, oneshot};

use crate::secrets::Mask;
use crate::store::{EventRecord, Store, Write, now};

/// How events reach the user.
#[derive(Clone)]
pub enum Display {
    /// Nothing (tests, `--quiet`).
    Quiet,
    /// One line per event on stdout.
    Lines,
    /// One JSON object per event on stdout.
    Json,
    /// A progress bar on a terminal; log lines above it.
    Progress(ProgressBar),
}

enum Msg {
    Write(Write),
    Flush(oneshot::Sender<Result<(), String>>),
}

#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Msg>,
    deployment: Arc<str>,
    /// The store the writer commits to, for plugins that keep state of their own in it
    /// (the vSphere plugin's allocations) in transactions of their own.
    store: Store,
    mask: Arc<RwLock<Mask>>,
}

impl Recorder {
    /// Start the writer task for one deployment.
    pub fn spawn(
        store: Store,
        deployment: &str,
        display: Display,
    ) -> (Recorder, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        let handle = store.clone();
        let task = tokio::spawn(async move {
            let mut failed: Option<String> = None;
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < 20_000 {
                    match rx.try_recv() {
                        Ok(m) => batch.push(m),
                        Err(_) => break,
                    }
                }
                let mut writes = Vec::with_capacity(batch.len());
                let mut acks = Vec::new();
                for m in batch {
                    match m {
                        Msg::Write(w) => writes.push(w),
                        Msg::Flush(ack) => acks.push(ack),
                    }
                }
                if failed.is_none()
                    && let Err(e) = store.apply(&writes).await
                {
                    failed = Some(e.to_string());
                }
                if failed.is_none() {
                    for w in &writes {
                        if let Write::Event { event, .. } = w {
                            show(&display, event);
                        }
                    }
                }
                for ack in acks {
                    let _ = ack.send(failed.clone().map_or(Ok(()), Err));
                }
            }
        });
        (
            Recorder {
                tx,
                deployment: deployment.into(),
                store: handle,
                mask: Arc::default(),
            },
            task,
        )
    }

    pub fn write(&self, mut w: Write) {
        if let Ok(mask) = self.mask.read()
            && !mask.is_empty()
        {
            match &mut w {
                Write::Event { event, .. } => event.message = mask.apply(&event.message),
                Write::Instance { record, .. } => {
                    record.runtime_properties = mask.apply_map(&record.runtime_properties);
                }
                Write::Task { result, .. } => *result = result.as_ref().map(|r| mask.apply_json(r)),
                Write::Ended { error, .. } => *error = error.as_deref().map(|e| mask.apply(e)),
                Write::Process(_) => {}
            }
        }
        let _ = self.tx.send(Msg::Write(w));
    }

    /// Hide what `mask` hides in everything written from now on.
    pub fn hide(&self, mask: &Mask) {
        if let Ok(mut m) = self.mask.write() {
            m.extend(mask);
        }
    }

    /// `text` as it may be shown: with every secret this recorder hides masked.
    pub fn masked(&self, text: &str) -> String {
        match self.mask.read() {
            Ok(m) => m.apply(text),
            // A poisoned lock hides everything rather than risk a value.
            Err(_) => crate::secrets::HIDDEN.to_string(),
        }
    }

    /// [`Recorder::masked`] for JSON.
    pub fn masked_json(&self, value: &serde_json::Value) -> serde_json::Value {
        match self.mask.read() {
            Ok(m) => m.apply_json(value),
            Err(_) => serde_json::Value::String(crate::secrets::HIDDEN.to_string()),
        }
    }

    pub fn deployment(&self) -> &str {
        &self.deployment
    }

    /// The store this recorder writes to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn event(
        &self,
        execution: &str,
        event_type: &str,
        instance: Option<&str>,
        operation: Option<&str>,
        message: impl Into<String>,
    ) {
        self.write(Write::Event {
            deployment: self.deployment.to_string(),
            event: EventRecord {
                seq: 0,
                timestamp: now(),
                execution_id: execution.to_string(),
                event_type: event_type.to_string(),
                node_instance_id: instance.map(str::to_string),
                operation: operation.map(str::to_string),
                message: message.into(),
            },
        });
    }

    /// Wait until everything written so far is committed.
    pub async fn flush(&self) -> Result<(), String> {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Flush(ack)).is_err() {
            return Err("the state writer stopped".to_string());
        }
        done.await
            .unwrap_or_else(|_| Err("the state writer stopped".to_string()))
    }
}

/// `timestamp [instance] operation: message`, as `windlass events` prints it too.
pub fn format_event(e: &EventRecord) -> String {
    let mut line = format!("{} {}", &e.timestamp, e.event_type);
    if let Some(i) = &e.node_instance_id {
        line.push_str(&format!(" [{i}]"));
    }
    if let Some(op) = &e.operation {
        line.push_str(&format!(" {op}"));
    }
    line.push_str(": ");
    line.push_str(&e.message);
    line
}

fn show(display: &Display, e: &EventRecord) {
    match display {
        Display::Quiet => {}
        Display::Lines => println!("{}", format_event(e)),
        Display::Json => println!("{}", serde_json::to_string(e).unwrap_or_default()),
        Display::Progress(bar) => {
            if e.event_type != "task_succeeded" && e.event_type != "task_started" {
                bar.println(format_event(e));
            }
            if let Some(op) = &e.operation {
                bar.set_message(format!(
                    "{} {op}",
                    e.node_instance_id.as_deref().unwrap_or("")
                ));
            }
        }
    }
}

//! The manager's metric intake and decision latency, with the real binary over loopback
//! (`cargo bench --bench intake`; release build). Not criterion: what is measured is a rate
//! sustained by a separate process and a latency distribution, not one function's time.
//!
//! 1. HTTP: `CLIENTS` threads post batches of `BATCH` points (`POST /api/v1/metrics`, one
//!    connection per batch, a bearer token on each) for `SECONDS`; the rate is the points the
//!    policy runtime has taken in (`/api/v1/status`, `policies.samples`) divided by the time
//!    from the first request until it has taken them all. The points go to a deployment with a
//!    threshold policy that never fires, so every point is matched and windowed.
//! 2. Graphite: `CLIENTS` connections write prebuilt plaintext lines as fast as the server reads
//!    them, measured the same way.
//! 3. Decision latency: one point that crosses a threshold policy's threshold (interval 0) is
//!    posted; the latency is from just before the request is written to the `created_at` of
//!    the execution its trigger starts (the server's clock, the same machine), `ROUNDS` times,
//!    each after the previous execution finished. Prints p50, p99 and max.
//!
//! The load generators share the machine's cores with the manager: the figures are a floor.

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value as Json, json};

#[allow(dead_code)] // the tests' client; this bench uses part of it
#[path = "../tests/common/http.rs"]
mod http;

const CLIENTS: usize = 2;
const BATCH: usize = 5_000;
const SECONDS: f64 = 3.0;
const ROUNDS: usize = 100;

const BLUEPRINT: &str = r#"tosca_definitions_version: cloudify_dsl_1_3
imports: [cloudify/types/types.yaml]
node_templates:
  web:
    type: cloudify.nodes.Root
    capabilities: {scalable: {properties: {default_instances: 4}}}
groups:
  web_group:
    members: [web]
    policies:
      watch:
        type: cloudify.policies.types.threshold
        properties: {service: 'connections', threshold: THRESHOLD, upper_bound: true, stability_time: 0, interval_between_workflows: 0}
        triggers:
          touch:
            type: cloudify.policies.triggers.execute_workflow
            parameters:
              workflow: execute_operation
              workflow_parameters: {operation: cloudify.interfaces.lifecycle.configure}
"#;

struct Manager {
    child: Child,
    http: String,
    graphite: String,
    token: String,
}

impl Drop for Manager {
    fn drop(&mut self) {
        // SAFETY: signalling the child this bench started.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

fn windlass(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_windlass"))
        .args(args)
        .current_dir(dir)
        .env("WINDLASS_STATE", dir.join("state.db"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn deploy(dir: &Path, id: &str, threshold: f64) {
    let bp = dir.join(id);
    std::fs::create_dir_all(&bp).unwrap();
    std::fs::write(
        bp.join("blueprint.yaml"),
        BLUEPRINT.replace("THRESHOLD", &threshold.to_string()),
    )
    .unwrap();
    windlass(
        dir,
        &["-q", "deploy", &format!("{id}/blueprint.yaml"), "-d", id],
    );
}

fn instances(dir: &Path, id: &str) -> Vec<String> {
    let list: Json = serde_json::from_str(&windlass(dir, &["instances", id, "--json"])).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

fn start(dir: &Path) -> Manager {
    use std::io::BufRead;
    let token = windlass(dir, &["tokens", "create", "bench"])
        .trim()
        .to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_windlass"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--graphite",
            "127.0.0.1:0",
        ])
        .current_dir(dir)
        .env("WINDLASS_STATE", dir.join("state.db"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut http, mut graphite) = (String::new(), String::new());
    while http.is_empty() {
        let line = lines.next().unwrap().unwrap();
        if let Some(a) = line.split("listening on http://").nth(1) {
            http = a.trim().to_string();
        }
        if let Some(a) = line.split("graphite intake on ").nth(1) {
            graphite = a.trim().to_string();
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Manager {
        child,
        http,
        graphite,
        token,
    }
}

impl Manager {
    fn get(&self, path: &str) -> Json {
        http::request(&self.http, "GET", path, Some(&self.token), None, b"").json()
    }

    fn samples(&self) -> u64 {
        self.get("/api/v1/status")["policies"]["samples"]
            .as_u64()
            .unwrap()
    }

    fn live(&self) -> u64 {
        self.get("/api/v1/status")["policies"]["live_deployments"]
            .as_u64()
            .unwrap()
    }

    /// Wait until the runtime has taken in `total` samples; returns when it had.
    fn drained(&self, total: u64) -> Instant {
        while self.samples() < total {
            std::thread::sleep(Duration::from_millis(2));
        }
        Instant::now()
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Milliseconds since the epoch of an RFC 3339 UTC timestamp with milliseconds.
fn epoch_ms(t: &str) -> f64 {
    let n = |r: std::ops::Range<usize>| t[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let (y, m) = if m <= 2 { (y - 1, m + 12) } else { (y, m) };
    let days = 365 * y + y / 4 - y / 100 + y / 400 + (153 * (m - 3) + 2) / 5 + d - 719_469;
    let secs = days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19);
    secs as f64 * 1000.0 + t[20..23].parse::<f64>().unwrap()
}

/// Points/s the runtime takes in while `CLIENTS` threads send batches of `BATCH` points for
/// `SECONDS`: each thread makes its sender with `sender()` and calls it once per batch.
fn sustained<S: FnMut()>(m: &Manager, sender: impl Fn() -> S + Sync) -> f64 {
    let before = m.samples();
    let start = Instant::now();
    let sent: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..CLIENTS)
            .map(|_| {
                s.spawn(|| {
                    let mut send = sender();
                    let mut n = 0u64;
                    while start.elapsed().as_secs_f64() < SECONDS {
                        send();
                        n += BATCH as u64;
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    let done = m.drained(before + sent);
    sent as f64 / done.duration_since(start).as_secs_f64()
}

/// `POST /api/v1/metrics` with the manager's token; it must be accepted.
fn post(m: &Manager, body: &[u8]) {
    let r = http::request(
        &m.http,
        "POST",
        "/api/v1/metrics",
        Some(&m.token),
        Some("application/json"),
        body,
    );
    assert_eq!(r.status, 202);
}

fn http_rate(m: &Manager, instances: &[String]) -> f64 {
    let at = now_secs();
    let batch: Vec<Json> = (0..BATCH)
        .map(|i| json!({"deployment": "load", "node_instance": instances[i % instances.len()], "name": "connections", "value": (i % 7) as f64, "timestamp": at}))
        .collect();
    let body = serde_json::to_vec(&batch).unwrap();
    sustained(m, || || post(m, &body))
}

fn graphite_rate(m: &Manager, instances: &[String]) -> f64 {
    let at = now_secs() as u64;
    let mut chunk = Vec::new();
    for i in 0..BATCH {
        writeln!(
            chunk,
            "load.{}.connections {} {at}",
            instances[i % instances.len()],
            i % 7
        )
        .unwrap();
    }
    sustained(m, || {
        let mut conn = TcpStream::connect(&m.graphite).unwrap();
        let chunk = &chunk;
        move || conn.write_all(chunk).unwrap()
    })
}

fn executions(m: &Manager) -> Vec<Json> {
    m.get("/api/v1/deployments/fire/executions")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn latencies(m: &Manager, instance: &str) -> Vec<f64> {
    let mut out = Vec::new();
    for _ in 0..ROUNDS {
        let seen = executions(m).len();
        let body = serde_json::to_vec(&json!([{"deployment": "fire", "node_instance": instance, "name": "connections", "value": 100.0}])).unwrap();
        let sent_ms = now_secs() * 1000.0;
        post(m, &body);
        let execution = loop {
            let list = executions(m);
            if list.len() > seen
                && list
                    .iter()
                    .all(|e| e["status"] != "started" && e["status"] != "pending")
            {
                break list
                    .into_iter()
                    .max_by_key(|e| e["created_at"].as_str().unwrap().to_string())
                    .unwrap();
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(execution["status"], "terminated", "{execution}");
        out.push(epoch_ms(execution["created_at"].as_str().unwrap()) - sent_ms);
    }
    out.sort_by(f64::total_cmp);
    out
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (e.g. `cargo test --benches`) only checks
    // that this builds.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("windlass-bench-intake-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    deploy(&dir, "load", 1e12);
    deploy(&dir, "fire", 10.0);
    let load = instances(&dir, "load");
    let fire = instances(&dir, "fire");
    let m = start(&dir);
    while m.live() < 2 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let h = http_rate(&m, &load);
    println!(
        "http intake:     {:>9.0} points/s ({CLIENTS} clients, batches of {BATCH})",
        h
    );
    let g = graphite_rate(&m, &load);
    println!(
        "graphite intake: {:>9.0} points/s ({CLIENTS} connections)",
        g
    );
    let l = latencies(&m, &fire[0]);
    let q = |p: f64| l[((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1];
    println!(
        "decision latency (metric posted → execution started), {ROUNDS} rounds: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        q(0.50),
        q(0.99),
        l[l.len() - 1]
    );
    drop(m);
    let _ = std::fs::remove_dir_all(&dir);
}

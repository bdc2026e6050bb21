//! `windlass serve` run by a test: started on a free port with a bearer token made by the CLI,
//! driven over HTTP/1.1, stopped with SIGTERM when dropped; and what tests ask the CLI about
//! the executions and events the manager's policies cause.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::{Value as Json, json};

use super::Sandbox;

/// A running `windlass serve`, stopped with SIGTERM on drop.
pub struct Manager {
    child: Child,
    pub http: String,
    pub graphite: Option<String>,
    pub token: Option<String>,
}

impl Manager {
    pub fn start(sb: &Sandbox, extra: &[&str]) -> Manager {
        let token = create_token(sb);
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut child = sb
            .command(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The manager says where it listens; port 0 lets the kernel pick a free one.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (mut http, mut graphite) = (None, None);
        while http.is_none() {
            let line = lines.next().expect("serve ended before listening").unwrap();
            if let Some(a) = line.split("listening on http://").nth(1) {
                http = Some(a.trim().to_string());
            }
            if let Some(a) = line.split("graphite intake on ").nth(1) {
                graphite = Some(a.trim().to_string());
            }
        }
        // Keep draining stderr so the manager never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Manager {
            child,
            http: http.unwrap(),
            graphite,
            token,
        }
    }

    /// `(status, body)` of one HTTP/1.1 request.
    pub fn request(&self, method: &str, path: &str, body: Option<&Json>) -> (u16, Json) {
        let mut stream = TcpStream::connect(&self.http).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.http,
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status: u16 = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap();
        let body = response.split("\r\n\r\n").nth(1).unwrap_or("");
        (status, serde_json::from_str(body).unwrap_or(Json::Null))
    }

    pub fn post_metric(&self, deployment: &str, instance: &str, name: &str, value: f64) {
        let (status, body) = self.request(
            "POST",
            "/api/v1/metrics",
            Some(&json!([{"deployment": deployment, "node_instance": instance, "name": name, "value": value}])),
        );
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["accepted"], 1, "{body}");
    }

    pub fn status(&self) -> Json {
        let (code, body) = self.request("GET", "/api/v1/status", None);
        assert_eq!(code, 200, "{body}");
        body
    }

    /// Wait until the runtime holds this many deployments with live policies.
    pub fn wait_live(&self, sb: &Sandbox, n: u64) {
        sb.wait_for(|| self.status()["policies"]["live_deployments"] == n);
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, 15);
        }
        let _ = self.child.wait();
    }
}

/// A bearer token for the manager's API, when this version has tokens.
pub fn create_token(sb: &Sandbox) -> Option<String> {
    let out = sb.run(&["tokens", "create", "tests"]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn web_instances(sb: &Sandbox, id: &str) -> Vec<String> {
    sb.instances(id)
        .iter()
        .filter(|i| i["state"] == "started")
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

pub fn executions(sb: &Sandbox, id: &str, workflow: &str) -> Vec<Json> {
    sb.json(&["executions", id, "--json"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["workflow"] == workflow)
        .cloned()
        .collect()
}

pub fn finished(sb: &Sandbox, id: &str, workflow: &str, n: usize) -> bool {
    let e = executions(sb, id, workflow);
    e.len() == n
        && e.iter()
            .all(|e| e["status"] != "started" && e["status"] != "pending")
}

pub fn events(sb: &Sandbox, id: &str, event_type: &str) -> Vec<Json> {
    sb.ok(&["events", id, "--json"])
        .lines()
        .map(|l| serde_json::from_str::<Json>(l).unwrap())
        .filter(|e| e["event_type"] == event_type)
        .collect()
}

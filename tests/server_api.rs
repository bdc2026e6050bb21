//! The manager's REST API with the real binary: `windlass serve` on a free loopback port over a
//! scratch store, driven by a raw HTTP/1.1 client, stopped by SIGTERM. Bearer tokens (made,
//! listed and revoked with the CLI while the manager runs), every route's refusal without a
//! valid token, a deployment's life through the API (archive upload, install, instances,
//! outputs, paged events, a workflow, cancel, delete), the error codes, and refusing new
//! executions once shutdown began.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

mod common;

use common::Sandbox;
use common::http::{self, Response};

/// `windlass serve` on a free port of a sandbox's store, stopped by SIGTERM when dropped.
struct Manager {
    child: Child,
    addr: String,
    stderr: Option<BufReader<std::process::ChildStderr>>,
}

impl Manager {
    fn start(sb: &Sandbox) -> Manager {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut child = sb
            .command(&["serve", "--listen", &addr])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().map(BufReader::new);
        let start = Instant::now();
        loop {
            if let Ok(mut s) = TcpStream::connect(&addr) {
                s.write_all(&http::raw_request("GET", "/healthz", None, None, b""))
                    .unwrap();
                if http::read_response(&mut s).status == 200 {
                    break;
                }
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "windlass serve exited before it answered"
            );
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "serve never answered /healthz"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Manager {
            child,
            addr,
            stderr,
        }
    }

    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Json>) -> Response {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let content_type = (!bytes.is_empty()).then_some("application/json");
        http::request(&self.addr, method, path, token, content_type, &bytes)
    }

    fn get(&self, path: &str, token: &str) -> Response {
        self.call("GET", path, Some(token), None)
    }

    /// Wait until an execution is no longer running; returns it.
    fn wait_execution(&self, id: &str, token: &str) -> Json {
        let start = Instant::now();
        loop {
            let r = self.get(&format!("/api/v1/executions/{id}"), token);
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            let e = r.json();
            if !["started", "cancelling", "pending"].contains(&e["status"].as_str().unwrap()) {
                return e;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "execution {id} never ended: {e}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn sigterm(&self) {
        // SAFETY: signals the child process this test started, by its pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
    }

    /// Read the manager's log until a line contains `what`.
    fn wait_log(&mut self, what: &str) {
        let stderr = self.stderr.as_mut().unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "serve's log ended before {what:?}"
            );
            if line.contains(what) {
                return;
            }
        }
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        // Only a child not yet reaped: a reaped one's pid may be another process's by now.
        if self.child.try_wait().ok().flatten().is_none() {
            self.sigterm();
        }
        let start = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() {
            if start.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.wait();
    }
}

/// A blueprint in `bp/`: two `vm` instances whose create and delete run `scripts/op.sh`, which
/// logs, sleeps `SLEEP` seconds first when that file exists, fails when `FAIL` exists, and
/// sets a runtime property; an output from an input.
fn sandbox(name: &str) -> Sandbox {
    let sb = Sandbox::new(name);
    std::fs::create_dir_all(sb.dir.join("bp/scripts")).unwrap();
    sb.file(
        "bp/scripts/op.sh",
        &format!(
            "#!/bin/bash\nset -e\n[ -f '{dir}/FAIL' ] && exit 1\n[ -f '{dir}/SLEEP' ] && sleep \"$(cat '{dir}/SLEEP')\"\nctx instance runtime-properties done_by \"$(ctx operation name)\"\necho \"$(ctx instance id) $(ctx operation name)\" >> '{dir}/ops.log'\n",
            dir = sb.dir.display()
        ),
    );
    sb.file(
        "bp/blueprint.yaml",
        "tosca_definitions_version: cloudify_dsl_1_3\nimports: [cloudify/types/types.yaml]\ninputs:\n  greeting: { type: string, default: hi }\nnode_templates:\n  vm:\n    type: cloudify.nodes.Compute\n    capabilities: { scalable: { properties: { default_instances: 2 } } }\n    interfaces:\n      cloudify.interfaces.lifecycle:\n        create: scripts/op.sh\n        delete: scripts/op.sh\noutputs:\n  greeting: { value: { get_input: greeting } }\n",
    );
    sb
}

fn token(sb: &Sandbox, name: &str) -> String {
    let out = sb.ok(&["tokens", "create", name]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "the token alone on stdout: {out:?}");
    lines[0].to_string()
}

/// Every documented route (which is every route: the unit test holds the router to the
/// document) refuses a request without a token, with an unknown one and with a revoked one;
/// `/healthz` needs none. Tokens are made, listed and revoked with the CLI while the manager
/// runs, never stored in clear.
#[test]
fn every_route_needs_a_valid_token() {
    let sb = sandbox("api-auth");
    let mut manager = Manager::start(&sb);
    let good = token(&sb, "ci");
    assert!(good.starts_with("wlt_") && good.len() == 68, "{good}");
    assert!(
        sb.err(&["tokens", "create", "ci"])
            .contains("already exists")
    );
    sb.refused(&["tokens", "create", "bad name"]);
    let doomed = token(&sb, "doomed");
    assert_ne!(good, doomed);

    let doc = manager.get("/openapi.json", &good);
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    // Used once while valid, then revoked while the manager runs.
    assert_eq!(manager.get("/api/v1/deployments", &doomed).status, 200);
    sb.ok(&["tokens", "revoke", "doomed"]);
    assert!(sb.err(&["tokens", "revoke", "doomed"]).contains("no token"));

    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path.replace("{id}", "x");
            let m = method.to_uppercase();
            if path == "/healthz" {
                assert_eq!(manager.call(&m, &concrete, None, None).status, 200);
                continue;
            }
            for presented in [None, Some("wlt_0000"), Some(doomed.as_str())] {
                let r = manager.call(&m, &concrete, presented, None);
                assert_eq!(r.status, 401, "{m} {path} with {presented:?}");
                assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{m} {path}");
                assert_eq!(r.code(), "unauthorized", "{m} {path}");
                if let Some(p) = presented {
                    assert!(
                        !String::from_utf8_lossy(&r.body).contains(p),
                        "never echoed"
                    );
                }
            }
            // The route exists: with the token it is not refused as unauthorized.
            assert_ne!(
                manager.call(&m, &concrete, Some(&good), None).status,
                401,
                "{m} {path}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 20, "every API route was tried");
    // A scheme other than Bearer is no token.
    let basic = {
        let mut s = TcpStream::connect(&manager.addr).unwrap();
        s.write_all(b"GET /api/v1/deployments HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic Zm9vOmJhcg==\r\n\r\n")
            .unwrap();
        http::read_response(&mut s)
    };
    assert_eq!(basic.status, 401);

    let list = sb.json(&["tokens", "list", "--json"]);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ci"]);
    assert!(list[0]["created_at"].is_string());
    assert!(
        list[0]["last_used_at"].is_string(),
        "a used token says when: {list}"
    );
    assert!(
        !list.to_string().contains(&good[4..]),
        "tokens list never shows a token"
    );

    // Stop the manager so SQLite folds its log into the file, then look for the token in it.
    manager.sigterm();
    manager.wait_log("shutting down");
    let _ = manager.child.wait();
    let mut stored = Vec::new();
    for suffix in ["", "-wal"] {
        stored.extend(std::fs::read(sb.dir.join(format!("state.db{suffix}"))).unwrap_or_default());
    }
    assert!(!stored.is_empty());
    assert!(
        !stored.windows(64).any(|w| w == &good.as_bytes()[4..]),
        "the token is stored hashed only"
    );
}

/// A deployment's life through the API: a tar.gz upload installs it in the background,
/// instances and outputs read as the CLI prints them, events page, a workflow runs and
/// another is cancelled, errors carry their codes, and delete undeploys.
#[test]
fn a_deployment_through_the_api() {
    let sb = sandbox("api-life");
    let manager = Manager::start(&sb);
    let t = token(&sb, "ops");
    let archive = sb.dir.join("bp.tar.gz");
    let tar = std::process::Command::new("tar")
        .args(["czf", archive.to_str().unwrap(), "bp"])
        .current_dir(&sb.dir)
        .status()
        .unwrap();
    assert!(tar.success());
    let body = std::fs::read(&archive).unwrap();
    let put = |id: &str, query: &str, body: &[u8]| {
        http::request(
            &manager.addr,
            "PUT",
            &format!("/api/v1/deployments/{id}{query}"),
            Some(&t),
            Some("application/gzip"),
            body,
        )
    };

    // Cloudify packs a blueprint in one top-level directory: `bp/blueprint.yaml` is found.
    let created = put("web", "?inputs=%7B%22greeting%22%3A%22hello%22%7D", &body);
    assert_eq!(
        created.status,
        202,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let execution = created.json();
    assert_eq!(execution["workflow"], "install");
    assert_eq!(execution["deployment_id"], "web");
    let id = execution["id"].as_str().unwrap().to_string();
    let ended = manager.wait_execution(&id, &t);
    assert_eq!(ended["status"], "terminated", "{ended}");
    assert_eq!(sb.log().len(), 2, "both instances created once");

    assert_eq!(put("web", "", &body).code(), "conflict");
    assert_eq!(put("bad", "", b"this is no archive").code(), "bad_request");
    let missing = put("other", "?application_file_name=main.yaml", &body);
    assert_eq!(missing.code(), "bad_request");
    assert!(
        missing.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("main.yaml")
    );

    // Reads match the CLI's JSON.
    let instances = manager.get("/api/v1/deployments/web/instances", &t);
    assert_eq!(instances.status, 200);
    assert_eq!(instances.json(), sb.json(&["instances", "web", "--json"]));
    assert_eq!(
        instances.json()[0]["runtime_properties"]["done_by"],
        "cloudify.interfaces.lifecycle.create"
    );
    assert_eq!(
        manager.get("/api/v1/deployments/web/outputs", &t).json(),
        json!({"greeting": "hello"})
    );
    assert_eq!(
        manager.get("/api/v1/deployments/web/policies", &t).json(),
        sb.json(&["policies", "web", "--json"])
    );
    let dep = manager.get("/api/v1/deployments/web", &t).json();
    assert_eq!(dep["installed"], true);
    assert_eq!(dep["instances"], json!({"started": 2}));
    assert_eq!(dep["last_execution"]["id"], id.as_str());
    let list = manager.get("/api/v1/deployments", &t).json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], "web");
    assert_eq!(list[0]["blueprint"], "upload:bp/blueprint.yaml");

    // Events page by `after`, two at a time, and the pages add up to the whole log.
    let all_cli: Vec<Json> = sb
        .ok(&["events", "web", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = manager
            .get(
                &format!("/api/v1/deployments/web/events?after={after}&limit=2"),
                &t,
            )
            .json();
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= 2);
        paged.extend(events.iter().cloned());
        after = page["next_after"].as_i64().unwrap();
        if page["more"] == false {
            break;
        }
    }
    assert!(all_cli.len() > 2, "several pages");
    assert_eq!(paged.len(), all_cli.len());
    for (api, cli) in paged.iter().zip(&all_cli) {
        let mut api = api.clone();
        api.as_object_mut().unwrap().remove("seq");
        assert_eq!(&api, cli);
    }
    let succeeded = manager
        .get(
            &format!(
                "/api/v1/deployments/web/events?event_type=workflow_succeeded&execution_id={id}"
            ),
            &t,
        )
        .json();
    assert_eq!(succeeded["events"].as_array().unwrap().len(), 1);
    assert_eq!(
        manager
            .get("/api/v1/deployments/web/events?execution_id=nope", &t)
            .json()["events"],
        json!([])
    );
    assert_eq!(
        manager
            .get("/api/v1/deployments/web/events?limit=0", &t)
            .code(),
        "bad_request"
    );
    assert_eq!(
        manager
            .get("/api/v1/deployments/web/events?after=x", &t)
            .code(),
        "bad_request"
    );

    // A workflow with parameters runs; bad requests say why.
    let run = |body: Json| {
        manager.call(
            "POST",
            "/api/v1/deployments/web/executions",
            Some(&t),
            Some(body),
        )
    };
    let op = json!({"workflow": "execute_operation", "parameters": {"operation": "cloudify.interfaces.lifecycle.create", "node_ids": ["vm"]}});
    let started = run(op.clone());
    assert_eq!(
        started.status,
        202,
        "{}",
        String::from_utf8_lossy(&started.body)
    );
    let ran = manager.wait_execution(started.json()["id"].as_str().unwrap(), &t);
    assert_eq!(ran["status"], "terminated", "{ran}");
    assert_eq!(
        ran["parameters"]["operation"],
        "cloudify.interfaces.lifecycle.create"
    );
    assert_eq!(sb.log().len(), 4);
    assert_eq!(run(json!({"workflow": "nope"})).code(), "bad_request");
    assert_eq!(
        run(json!({"workflow": "install", "parameters": {"x": 1}})).code(),
        "bad_request"
    );
    assert_eq!(run(json!({"parameters": {}})).code(), "bad_request");
    let custom = run(
        json!({"workflow": "execute_operation", "parameters": {"operation": "cloudify.interfaces.lifecycle.create", "node_ids": ["none"], "extra": 1}, "allow_custom_parameters": true}),
    );
    assert_eq!(
        custom.status,
        202,
        "{}",
        String::from_utf8_lossy(&custom.body)
    );
    manager.wait_execution(custom.json()["id"].as_str().unwrap(), &t);
    assert_eq!(
        manager
            .call(
                "POST",
                "/api/v1/deployments/ghost/executions",
                Some(&t),
                Some(json!({"workflow": "install"}))
            )
            .code(),
        "not_found"
    );
    let bad_json = http::request(
        &manager.addr,
        "POST",
        "/api/v1/deployments/web/executions",
        Some(&t),
        Some("application/json"),
        b"{oops",
    );
    assert_eq!(bad_json.status, 400);
    assert_eq!(bad_json.code(), "bad_request");

    // A slow workflow: another is refused while it runs, then it is cancelled.
    sb.file("SLEEP", "30");
    let slow = run(op.clone());
    assert_eq!(slow.status, 202);
    let slow_id = slow.json()["id"].as_str().unwrap().to_string();
    let busy = run(op.clone());
    assert_eq!((busy.status, busy.code().as_str()), (409, "busy"));
    let cancel = manager.call(
        "POST",
        &format!("/api/v1/executions/{slow_id}/cancel"),
        Some(&t),
        None,
    );
    assert_eq!(
        cancel.status,
        202,
        "{}",
        String::from_utf8_lossy(&cancel.body)
    );
    assert!(["cancelling", "cancelled"].contains(&cancel.json()["status"].as_str().unwrap()));
    assert_eq!(manager.wait_execution(&slow_id, &t)["status"], "cancelled");
    std::fs::remove_file(sb.dir.join("SLEEP")).unwrap();
    let again = manager.call(
        "POST",
        &format!("/api/v1/executions/{slow_id}/cancel"),
        Some(&t),
        None,
    );
    assert_eq!((again.status, again.code().as_str()), (409, "conflict"));
    assert_eq!(
        manager
            .call("POST", "/api/v1/executions/nope/cancel", Some(&t), None)
            .code(),
        "not_found"
    );
    assert_eq!(
        manager.get("/api/v1/executions/nope", &t).code(),
        "not_found"
    );
    let executions = manager.get("/api/v1/deployments/web/executions", &t).json();
    let statuses: Vec<&str> = executions
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["terminated", "terminated", "terminated", "cancelled"]
    );

    // The JSON form: a blueprint on the manager's filesystem, whose install fails; then only
    // install and uninstall may run on it.
    sb.file("FAIL", "");
    let path = sb.dir.join("bp/blueprint.yaml");
    let failing = manager.call(
        "PUT",
        "/api/v1/deployments/broken",
        Some(&t),
        Some(json!({"blueprint_path": path, "inputs": {}})),
    );
    assert_eq!(
        failing.status,
        202,
        "{}",
        String::from_utf8_lossy(&failing.body)
    );
    let failed = manager.wait_execution(failing.json()["id"].as_str().unwrap(), &t);
    assert_eq!(failed["status"], "failed");
    let refused = manager.call(
        "POST",
        "/api/v1/deployments/broken/executions",
        Some(&t),
        Some(op.clone()),
    );
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (409, "not_installed")
    );
    std::fs::remove_file(sb.dir.join("FAIL")).unwrap();
    let relative = manager.call(
        "PUT",
        "/api/v1/deployments/rel",
        Some(&t),
        Some(json!({"blueprint_path": "bp/blueprint.yaml"})),
    );
    assert_eq!(relative.code(), "bad_request");
    let invalid = manager.call(
        "PUT",
        "/api/v1/deployments/inv",
        Some(&t),
        Some(json!({"blueprint_path": path, "inputs": {"nope": 1}})),
    );
    assert_eq!(invalid.code(), "bad_request");
    assert!(
        invalid.json()["error"]["details"]
            .as_str()
            .unwrap()
            .contains("nope"),
        "{}",
        invalid.json()
    );

    // Delete undeploys in the background: the deployment goes once its uninstall ends.
    let deleted = manager.call("DELETE", "/api/v1/deployments/web", Some(&t), None);
    assert_eq!(
        deleted.status,
        202,
        "{}",
        String::from_utf8_lossy(&deleted.body)
    );
    assert_eq!(deleted.json()["workflow"], "uninstall");
    let start = Instant::now();
    while manager.get("/api/v1/deployments/web", &t).status != 404 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "web was never deleted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        manager.get("/api/v1/deployments/web", &t).code(),
        "not_found"
    );
    assert_eq!(
        sb.log().iter().filter(|l| l.ends_with(".delete")).count(),
        2
    );
    assert_eq!(
        manager
            .call("DELETE", "/api/v1/deployments/web", Some(&t), None)
            .code(),
        "not_found"
    );
}

/// Once SIGTERM arrived, a request still being read on an open connection that would start
/// an execution is refused with 503 `shutting_down`, and the manager exits 0.
#[test]
fn no_new_executions_once_shutting_down() {
    let sb = sandbox("api-stop");
    let mut manager = Manager::start(&sb);
    let t = token(&sb, "ops");
    let body = json!({"blueprint_path": sb.dir.join("bp/blueprint.yaml")}).to_string();
    let request = http::raw_request(
        "PUT",
        "/api/v1/deployments/late",
        Some(&t),
        Some("application/json"),
        body.as_bytes(),
    );
    let mut stream = TcpStream::connect(&manager.addr).unwrap();
    // Half the request before the signal: the server is reading it when it begins to stop.
    let half = request.len() / 2;
    stream.write_all(&request[..half]).unwrap();
    // Connections are accepted in order: once a later one is answered, this one has been
    // accepted (a connection still in the listen backlog at shutdown would just be reset).
    let health = http::request(&manager.addr, "GET", "/healthz", None, None, b"");
    assert_eq!(health.status, 200);
    manager.sigterm();
    manager.wait_log("shutting down");
    stream.write_all(&request[half..]).unwrap();
    let r = http::read_response(&mut stream);
    assert_eq!((r.status, r.code().as_str()), (503, "shutting_down"));
    let status = manager.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(
        sb.json(&["list", "--json"]),
        json!([]),
        "nothing was created"
    );
}

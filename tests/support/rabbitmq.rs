//! A real RabbitMQ broker for tests: Debian's `rabbitmq-server`, run directly (not through the
//! service wrapper) as a node of its own — its own node name, AMQP, distribution and epmd ports
//! (free ones), data and log directories and Erlang cookie in a temporary directory — in a
//! process group of its own, killed by that group when dropped (its epmd too).
//!
//! Use it from a test file with `#[path = "support/rabbitmq.rs"] mod rabbitmq;`. `.ci/run`
//! installs `rabbitmq-server`. The broker takes a few seconds to start.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

pub struct RabbitMq {
    pub dir: PathBuf,
    pub port: u16,
    epmd_port: u16,
    child: Child,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RabbitMq {
    pub fn start(name: &str) -> RabbitMq {
        assert!(
            std::path::Path::new(SERVER).exists(),
            "{SERVER} is missing: install Debian's rabbitmq-server (.ci/run does)"
        );
        let dir =
            std::env::temp_dir().join(format!("windlass-rabbitmq-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(dir.join("env.conf"), "").unwrap();
        let (port, dist, epmd_port) = (free_port(), free_port(), free_port());
        let log = std::fs::File::create(dir.join("broker.log")).unwrap();
        let child = Command::new(SERVER)
            .env("HOME", &dir)
            .env(
                "RABBITMQ_NODENAME",
                format!("windlass{}{port}@localhost", std::process::id()),
            )
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("ERL_EPMD_PORT", epmd_port.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config"))
            .env("RABBITMQ_CONF_ENV_FILE", dir.join("env.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        let broker = RabbitMq {
            dir,
            port,
            epmd_port,
            child,
        };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "RabbitMQ did not listen within 90 s: {}",
                std::fs::read_to_string(broker.dir.join("broker.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        broker
    }

    /// The URL of the broker's default vhost, with RabbitMQ's default user (allowed from
    /// loopback only).
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        // SAFETY: signalling the process group this handle started.
        unsafe {
            libc::kill(-(self.child.id() as i32), 9);
        }
        let _ = self.child.wait();
        // The Erlang port mapper this node started (a daemon, outside the group) goes too; it
        // refuses while it still lists the node, which it drops once the node's socket closes.
        for _ in 0..50 {
            let killed = Command::new("epmd")
                .arg("-kill")
                .env("ERL_EPMD_PORT", self.epmd_port.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if killed || TcpStream::connect(("127.0.0.1", self.epmd_port)).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

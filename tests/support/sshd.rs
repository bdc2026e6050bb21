//! A real OpenSSH server for tests: Debian's `/usr/sbin/sshd` on 127.0.0.1, on a free port, with
//! a host key, a config and an authorized_keys file of its own in a temporary directory, letting
//! in the user running the tests with the client keys made here (ed25519, RSA, ECDSA). It runs
//! in the foreground (`-D -e`, its log in `sshd.log`) and is killed by PID when dropped.
//!
//! Use it from a test file with `#[path = "support/sshd.rs"] mod sshd;`. `.ci/run` installs
//! `openssh-server`.
#![allow(dead_code)] // each test file uses a different part

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SSHD: &str = "/usr/sbin/sshd";

pub struct Sshd {
    pub dir: PathBuf,
    pub port: u16,
    pub user: String,
    child: Child,
}

/// A key pair made with ssh-keygen: `path` is the private key, `path.pub` the public one.
pub struct KeyPair {
    pub path: PathBuf,
}

impl KeyPair {
    pub fn private_text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap()
    }

    pub fn public_line(&self) -> String {
        std::fs::read_to_string(self.path.with_extension("pub"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(self.path.with_extension("pub"))
            .output()
            .unwrap();
        assert!(out.status.success(), "ssh-keygen -l failed");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    }
}

/// Make a key pair of `kind` (`ed25519`, `rsa`, `ecdsa`) at `path`.
pub fn keygen(kind: &str, path: &Path) -> KeyPair {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("pub"));
    let mut c = Command::new("ssh-keygen");
    c.args(["-q", "-t", kind, "-N", "", "-C", "windlass-test", "-f"])
        .arg(path);
    if kind == "rsa" {
        c.args(["-b", "2048"]);
    }
    let status = c.stdout(Stdio::null()).status().unwrap();
    assert!(status.success(), "ssh-keygen -t {kind} failed");
    KeyPair {
        path: path.to_path_buf(),
    }
}

impl Sshd {
    /// Start a server in `dir` (created; must be new or disposable).
    pub fn start(dir: &Path) -> Sshd {
        Sshd::start_with(dir, "")
    }

    /// [`Sshd::start`] with more `sshd_config` lines (e.g. `SetEnv NAME=value` for the
    /// commands it runs).
    pub fn start_with(dir: &Path, extra_config: &str) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: install openssh-server (.ci/run does)"
        );
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        // sshd refuses to start as root without its privilege-separation directory, which only
        // the service's unit creates.
        let _ = std::fs::create_dir_all("/run/sshd");
        let host = keygen("ed25519", &dir.join("host_ed25519"));
        let mut authorized = String::new();
        for kind in ["ed25519", "rsa", "ecdsa"] {
            let k = keygen(kind, &dir.join(format!("client_{kind}")));
            authorized.push_str(&k.public_line());
            authorized.push('\n');
        }
        std::fs::write(dir.join("authorized_keys"), authorized).unwrap();
        let user = current_user();
        let port = free_port();
        let config = format!(
            "ListenAddress 127.0.0.1\n\
             Port {port}\n\
             HostKey {host}\n\
             PidFile none\n\
             UsePAM no\n\
             StrictModes no\n\
             AuthorizedKeysFile {authorized}\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\n\
             AllowUsers {user}\n\
             LogLevel VERBOSE\n\
             {extra_config}\n",
            host = host.path.display(),
            authorized = dir.join("authorized_keys").display(),
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        let log = std::fs::File::create(dir.join("sshd.log")).unwrap();
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(dir.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut sshd = Sshd {
            dir: dir.to_path_buf(),
            port,
            user,
            child,
        };
        sshd.wait_ready();
        sshd
    }

    /// Until the server greets with its SSH banner (bounded; a server that exits fails the test
    /// with its log).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sshd exited ({status}) at start:\n{}", self.log());
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut banner = [0u8; 8];
                if s.read_exact(&mut banner).is_ok() && banner.starts_with(b"SSH-2.0") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not come up on port {}:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// The server's host key.
    pub fn host_key(&self) -> KeyPair {
        KeyPair {
            path: self.dir.join("host_ed25519"),
        }
    }

    /// A client key the server lets in: `ed25519`, `rsa` or `ecdsa`.
    pub fn client_key(&self, kind: &str) -> KeyPair {
        KeyPair {
            path: self.dir.join(format!("client_{kind}")),
        }
    }

    /// A known_hosts line for this server with `key`'s public key.
    pub fn known_hosts_line(&self, key: &KeyPair) -> String {
        let public = key.public_line();
        let mut parts = public.split_whitespace();
        let (alg, blob) = (parts.next().unwrap(), parts.next().unwrap());
        format!("[127.0.0.1]:{} {alg} {blob}\n", self.port)
    }

    /// A known_hosts file (in the server's directory) that knows this server.
    pub fn known_hosts(&self) -> PathBuf {
        let path = self.dir.join("known_hosts");
        std::fs::write(&path, self.known_hosts_line(&self.host_key())).unwrap();
        path
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // SIGKILL to the listener's PID only: connection processes end with their connections.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    // Bound and released: another process could take it before sshd does, which the start-up
    // check would report.
    TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    assert!(out.status.success(), "id -un failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

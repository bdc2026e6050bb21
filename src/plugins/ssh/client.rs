//! The SSH client: one connection to one host, its host key checked against a known_hosts
//! file, authenticated with a private key, running commands over session channels.
//!
//! Flow: [`HostSpec`] (where, as whom, with which key, which known_hosts) → [`Connection::open`]
//! (TCP connect and handshake under the connect timeout; the host key is checked while the
//! handshake runs, before authentication) → [`Connection::run`] (one exec channel per command;
//! stdin written while output is read, so neither side can stall the other; stdout and stderr
//! split into lines, each handed to the caller as it arrives) → [`Output`].
//!
//! Host keys follow OpenSSH's `StrictHostKeyChecking`: a host with no recorded key is refused
//! (or, with `accept_new_host_keys`, recorded and accepted: OpenSSH's `accept-new`); a host whose
//! recorded keys do not include the presented one is always refused. Only the algorithms of the
//! keys already recorded for a host are offered in the handshake, as OpenSSH does, so a server
//! cannot dodge the check by presenting a key of another type.
//!
//! Nothing here logs: secrets (key text, passphrases) never leave this module except into the
//! SSH handshake. Errors name the host, port, fingerprint and file, never key material.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use russh::keys::ssh_key::{HashAlg, PublicKey};
use russh::keys::{Algorithm, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect, client};

/// Default connect timeout (Fabric's `timeout` default).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Last lines of standard error kept in [`Output::stderr_tail`] and exit errors.
pub const STDERR_TAIL: usize = 5;

/// Where a private key comes from.
#[derive(Clone)]
pub enum KeySource {
    /// A key file on the machine running windlass.
    File(PathBuf),
    /// Key text (OpenSSH or PEM), typically a secret.
    Text(String),
}

impl std::fmt::Debug for KeySource {
    // Key text is a secret: a Debug of a spec must never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::File(p) => f.debug_tuple("File").field(p).finish(),
            KeySource::Text(_) => f.write_str("Text(<redacted>)"),
        }
    }
}

/// Where and how to run: host, port, user, key, host-key policy and timeouts.
#[derive(Debug, Clone)]
pub struct HostSpec {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub key: KeySource,
    /// Passphrase of an encrypted private key.
    pub key_passphrase: Option<String>,
    /// The known_hosts file; `None` is `~/.ssh/known_hosts` of the user running windlass.
    pub known_hosts: Option<PathBuf>,
    /// Record and accept the key of a host the file does not know (never a changed key).
    pub accept_new_host_keys: bool,
    pub connect_timeout: Duration,
    /// How long one command may run; `None` is no limit.
    pub command_timeout: Option<Duration>,
}

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// What a finished command left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
    /// The exit status; `None` when the remote command was ended by a signal (see `signal`).
    pub exit_status: Option<u32>,
    pub signal: Option<String>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.exit_status == Some(0)
    }

    /// The last [`STDERR_TAIL`] lines of standard error.
    pub fn stderr_tail(&self) -> &[String] {
        &self.stderr[self.stderr.len().saturating_sub(STDERR_TAIL)..]
    }

    /// `Ok(self)` when the command exited 0, else [`SshError::Exit`] for `command` on `spec`.
    pub fn checked(self, spec: &HostSpec, command: &str) -> Result<Output, SshError> {
        if self.success() {
            return Ok(self);
        }
        Err(SshError::Exit {
            host: spec.host.clone(),
            command: command.to_string(),
            status: match (&self.exit_status, &self.signal) {
                (Some(code), _) => format!("status {code}"),
                (None, Some(sig)) => format!("signal {sig}"),
                (None, None) => "no exit status".to_string(),
            },
            stderr_tail: self.stderr_tail().join(" | "),
        })
    }
}

/// Why connecting or running failed.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot read the private key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("the private key ({origin}) cannot be used: {reason}")]
    Key { origin: String, reason: String },
    #[error("no known_hosts file to check {host}:{port} against: {reason}")]
    NoKnownHosts {
        host: String,
        port: u16,
        reason: String,
    },
    #[error("cannot use the known_hosts file {file}: {reason}")]
    KnownHosts { file: PathBuf, reason: String },
    #[error("cannot connect to {host}:{port}: {reason}")]
    Connect {
        host: String,
        port: u16,
        reason: String,
    },
    #[error("connecting to {host}:{port} timed out after {after:?}")]
    ConnectTimeout {
        host: String,
        port: u16,
        after: Duration,
    },
    #[error(
        "host {host}:{port} is not in {file} (its {algorithm} key is {fingerprint}); check the fingerprint and add it (e.g. `ssh-keyscan -p {port} {host} >> {file}`), or set `accept_new_host_keys: true`"
    )]
    UnknownHostKey {
        host: String,
        port: u16,
        algorithm: String,
        fingerprint: String,
        file: PathBuf,
    },
    #[error(
        "HOST KEY CHANGED for {host}:{port}: it presented the {algorithm} key {fingerprint}, which {file} does not have for it; refusing to connect (someone may be intercepting the connection, or the host was reinstalled: then remove its old entry from {file})"
    )]
    ChangedHostKey {
        host: String,
        port: u16,
        algorithm: String,
        fingerprint: String,
        file: PathBuf,
    },
    #[error(
        "HOST KEY CHANGED for {host}:{port}: {file} records keys of type {recorded} for it, and it presents only {presented}; refusing to connect (if the host was reinstalled, remove its old entry from {file})"
    )]
    HostKeyTypeChanged {
        host: String,
        port: u16,
        recorded: String,
        presented: String,
        file: PathBuf,
    },
    #[error(
        "the {algorithm} key {fingerprint} presented by {host}:{port} is marked @revoked in {file}; refusing to connect"
    )]
    RevokedHostKey {
        host: String,
        port: u16,
        algorithm: String,
        fingerprint: String,
        file: PathBuf,
    },
    #[error("cannot record the key of {host}:{port} in {file}: {reason}")]
    LearnHostKey {
        host: String,
        port: u16,
        file: PathBuf,
        reason: String,
    },
    #[error("{user}@{host}:{port} refused the private key ({key})")]
    Auth {
        user: String,
        host: String,
        port: u16,
        key: String,
    },
    #[error("SSH with {host}:{port} failed: {reason}")]
    Protocol {
        host: String,
        port: u16,
        reason: String,
    },
    #[error("`{command}` on {host} timed out after {after:?}")]
    CommandTimeout {
        host: String,
        command: String,
        after: Duration,
    },
    #[error("`{command}` on {host} exited with {status}{}", tail_suffix(.stderr_tail))]
    Exit {
        host: String,
        command: String,
        status: String,
        stderr_tail: String,
    },
}

fn tail_suffix(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!(": {tail}")
    }
}

/// Connect to `spec`, run `command` (with `stdin`, if given) under its command timeout and
/// disconnect. The output comes back whatever the exit status: [`Output::checked`] turns a
/// non-zero one into an error.
pub async fn run_on(
    spec: &HostSpec,
    command: &str,
    stdin: Option<&[u8]>,
) -> Result<Output, SshError> {
    let conn = Connection::open(spec).await?;
    let out = conn.run(command, stdin, &mut |_, _| {}).await;
    conn.close().await;
    out
}

/// An authenticated connection.
pub struct Connection {
    handle: client::Handle<HostKeyCheck>,
    spec: HostSpec,
}

impl Connection {
    /// Connect, check the host key, authenticate; all of it within the connect timeout.
    pub async fn open(spec: &HostSpec) -> Result<Connection, SshError> {
        let key = Arc::new(load_key(spec)?);
        let known_hosts = known_hosts_file(spec)?;
        let recorded = recorded_keys(spec, &known_hosts)?;
        let mut config = client::Config::default();
        if !recorded.is_empty() {
            config.preferred.key = offered_algorithms(&recorded).into();
        }
        let handler = HostKeyCheck {
            host: spec.host.clone(),
            port: spec.port,
            revoked: revoked_keys(&known_hosts),
            file: known_hosts.clone(),
            recorded,
            accept_new: spec.accept_new_host_keys,
        };
        let file = known_hosts;
        let handshake = async {
            let mut handle =
                client::connect(Arc::new(config), (spec.host.as_str(), spec.port), handler)
                    .await
                    .map_err(|e| e.into_error(spec, &file))?;
            let hash = if key.algorithm().is_rsa() {
                handle
                    .best_supported_rsa_hash()
                    .await
                    .map_err(|e| protocol(spec, e))?
                    .flatten()
            } else {
                None
            };
            let auth = handle
                .authenticate_publickey(spec.user.clone(), PrivateKeyWithHashAlg::new(key, hash))
                .await
                .map_err(|e| protocol(spec, e))?;
            if !auth.success() {
                return Err(SshError::Auth {
                    user: spec.user.clone(),
                    host: spec.host.clone(),
                    port: spec.port,
                    key: key_origin(&spec.key),
                });
            }
            Ok(handle)
        };
        let handle = tokio::time::timeout(spec.connect_timeout, handshake)
            .await
            .map_err(|_| SshError::ConnectTimeout {
                host: spec.host.clone(),
                port: spec.port,
                after: spec.connect_timeout,
            })??;
        Ok(Connection {
            handle,
            spec: spec.clone(),
        })
    }

    /// Run one command; `on_line` gets every stdout and stderr line as it arrives. Ends when the
    /// remote side closes the channel, or with [`SshError::CommandTimeout`] (the command is sent
    /// SIGKILL and its channel closed).
    pub async fn run(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        on_line: &mut (dyn FnMut(Stream, &str) + Send),
    ) -> Result<Output, SshError> {
        let spec = &self.spec;
        let channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| protocol(spec, e))?;
        channel
            .exec(true, command)
            .await
            .map_err(|e| protocol(spec, e))?;
        let (mut reader, writer) = channel.split();
        let feed = async {
            if let Some(bytes) = stdin {
                writer.data(bytes).await.map_err(|e| protocol(spec, e))?;
            }
            writer.eof().await.map_err(|e| protocol(spec, e))
        };
        let mut out = Output {
            stdout: Vec::new(),
            stderr: Vec::new(),
            exit_status: None,
            signal: None,
        };
        let collect = async {
            let mut stdout = Lines::default();
            let mut stderr = Lines::default();
            while let Some(msg) = reader.wait().await {
                match msg {
                    ChannelMsg::Data { data } => {
                        stdout.push(&data, &mut |l| {
                            on_line(Stream::Stdout, &l);
                            out.stdout.push(l);
                        });
                    }
                    ChannelMsg::ExtendedData { data, ext: 1 } => {
                        stderr.push(&data, &mut |l| {
                            on_line(Stream::Stderr, &l);
                            out.stderr.push(l);
                        });
                    }
                    ChannelMsg::ExitStatus { exit_status } => out.exit_status = Some(exit_status),
                    ChannelMsg::ExitSignal { signal_name, .. } => {
                        out.signal = Some(format!("{signal_name:?}"));
                    }
                    ChannelMsg::Close => break,
                    _ => {}
                }
            }
            if let Some(l) = stdout.finish() {
                on_line(Stream::Stdout, &l);
                out.stdout.push(l);
            }
            if let Some(l) = stderr.finish() {
                on_line(Stream::Stderr, &l);
                out.stderr.push(l);
            }
        };
        let both = async {
            // The reader runs whatever happens to stdin: a command that exits without reading
            // its input still reports its status.
            let (fed, ()) = tokio::join!(feed, collect);
            fed
        };
        match spec.command_timeout {
            Some(limit) => match tokio::time::timeout(limit, both).await {
                Ok(fed) => fed?,
                Err(_) => {
                    // Best effort: OpenSSH delivers signals to non-pty sessions; the channel is
                    // closed either way.
                    let _ = writer.signal(russh::Sig::KILL).await;
                    let _ = writer.close().await;
                    return Err(SshError::CommandTimeout {
                        host: spec.host.clone(),
                        command: command.to_string(),
                        after: limit,
                    });
                }
            },
            None => both.await?,
        }
        Ok(out)
    }

    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
    }
}

/// Splits a byte stream into lines (lossy UTF-8, without `\n` / `\r\n`).
#[derive(Default)]
struct Lines {
    pending: Vec<u8>,
}

impl Lines {
    fn push(&mut self, data: &[u8], emit: &mut dyn FnMut(String)) {
        self.pending.extend_from_slice(data);
        while let Some(at) = self.pending.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.pending.drain(..=at).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            emit(String::from_utf8_lossy(&line).into_owned());
        }
    }

    fn finish(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            return None;
        }
        let line = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        Some(line)
    }
}

fn protocol(spec: &HostSpec, e: russh::Error) -> SshError {
    SshError::Protocol {
        host: spec.host.clone(),
        port: spec.port,
        reason: e.to_string(),
    }
}

fn key_origin(key: &KeySource) -> String {
    match key {
        KeySource::File(p) => p.display().to_string(),
        KeySource::Text(_) => "key text".to_string(),
    }
}

fn load_key(spec: &HostSpec) -> Result<PrivateKey, SshError> {
    let text = match &spec.key {
        KeySource::File(path) => std::fs::read_to_string(path).map_err(|e| SshError::KeyFile {
            path: path.clone(),
            reason: e.to_string(),
        })?,
        KeySource::Text(t) => t.clone(),
    };
    // Key text pasted into YAML often loses its final newline or gains indentation.
    let text: String = text
        .trim()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    russh::keys::decode_secret_key(&text, spec.key_passphrase.as_deref()).map_err(|e| {
        SshError::Key {
            origin: key_origin(&spec.key),
            reason: e.to_string(),
        }
    })
}

fn known_hosts_file(spec: &HostSpec) -> Result<PathBuf, SshError> {
    if let Some(f) = &spec.known_hosts {
        return Ok(f.clone());
    }
    std::env::home_dir()
        .filter(|h| !h.as_os_str().is_empty())
        .map(|h| h.join(".ssh").join("known_hosts"))
        .ok_or_else(|| SshError::NoKnownHosts {
            host: spec.host.clone(),
            port: spec.port,
            reason: "no known_hosts_file was given and the home directory is unknown".to_string(),
        })
}

/// The keys `file` records for the host (a missing file records none).
fn recorded_keys(spec: &HostSpec, file: &Path) -> Result<Vec<PublicKey>, SshError> {
    russh::keys::known_hosts::known_host_keys_path(&spec.host, spec.port, file)
        .map(|keys| keys.into_iter().map(|(_, k)| k).collect())
        .map_err(|e| SshError::KnownHosts {
            file: file.to_path_buf(),
            reason: e.to_string(),
        })
}

/// Keys marked `@revoked` in `file`, whatever host pattern they name (stricter than OpenSSH,
/// which matches the pattern: a revoked key is never worth trusting). russh's reader skips
/// marker lines, so without this a revoked key would look merely unknown.
fn revoked_keys(file: &Path) -> Vec<PublicKey> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            (fields.next() == Some("@revoked")).then_some(())?;
            russh::keys::parse_public_key_base64(fields.nth(2)?).ok()
        })
        .collect()
}

/// Host-key algorithms to offer when keys are recorded: only theirs, best first.
fn offered_algorithms(recorded: &[PublicKey]) -> Vec<Algorithm> {
    let mut out = Vec::new();
    for alg in russh::Preferred::DEFAULT.key.iter() {
        let matches = recorded.iter().any(|k| match (k.algorithm(), alg) {
            (Algorithm::Rsa { .. }, Algorithm::Rsa { .. }) => true,
            (a, b) => a == *b,
        });
        if matches && !out.contains(alg) {
            out.push(alg.clone());
        }
    }
    out
}

/// The handshake's host-key verdict.
struct HostKeyCheck {
    host: String,
    port: u16,
    file: PathBuf,
    recorded: Vec<PublicKey>,
    revoked: Vec<PublicKey>,
    accept_new: bool,
}

impl client::Handler for HostKeyCheck {
    type Error = Handshake;

    async fn check_server_key(
        &mut self,
        presented: &PublicKeyOrCertificate,
    ) -> Result<bool, Handshake> {
        self.check(presented).map_err(Handshake::Refused)
    }
}

impl HostKeyCheck {
    fn check(&self, presented: &PublicKeyOrCertificate) -> Result<bool, SshError> {
        let key = match presented {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            // Never offered (no certificate algorithms are advertised), so never trusted.
            PublicKeyOrCertificate::Certificate(_) => return Ok(false),
        };
        let algorithm = key.algorithm().as_str().to_string();
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        if self.revoked.iter().any(|k| k.key_data() == key.key_data()) {
            return Err(SshError::RevokedHostKey {
                host: self.host.clone(),
                port: self.port,
                algorithm,
                fingerprint,
                file: self.file.clone(),
            });
        }
        if self.recorded.iter().any(|k| k.key_data() == key.key_data()) {
            return Ok(true);
        }
        if !self.recorded.is_empty() {
            return Err(SshError::ChangedHostKey {
                host: self.host.clone(),
                port: self.port,
                algorithm,
                fingerprint,
                file: self.file.clone(),
            });
        }
        if !self.accept_new {
            return Err(SshError::UnknownHostKey {
                host: self.host.clone(),
                port: self.port,
                algorithm,
                fingerprint,
                file: self.file.clone(),
            });
        }
        russh::keys::known_hosts::learn_known_hosts_path(&self.host, self.port, key, &self.file)
            .map_err(|e| SshError::LearnHostKey {
                host: self.host.clone(),
                port: self.port,
                file: self.file.clone(),
                reason: e.to_string(),
            })?;
        Ok(true)
    }
}

/// What can end the handshake: russh's errors, or the host-key verdict.
#[derive(Debug)]
enum Handshake {
    Ssh(russh::Error),
    Refused(SshError),
}

impl From<russh::Error> for Handshake {
    fn from(e: russh::Error) -> Handshake {
        Handshake::Ssh(e)
    }
}

impl Handshake {
    fn into_error(self, spec: &HostSpec, file: &Path) -> SshError {
        match self {
            Handshake::Refused(e) => e,
            Handshake::Ssh(russh::Error::IO(e)) => SshError::Connect {
                host: spec.host.clone(),
                port: spec.port,
                reason: e.to_string(),
            },
            // Only the recorded keys' types were offered (see `offered_algorithms`).
            Handshake::Ssh(russh::Error::NoCommonAlgo {
                kind: russh::AlgorithmKind::Key,
                ours,
                theirs,
            }) => SshError::HostKeyTypeChanged {
                host: spec.host.clone(),
                port: spec.port,
                recorded: ours.join(", "),
                presented: theirs.join(", "),
                file: file.to_path_buf(),
            },
            Handshake::Ssh(e) => protocol(spec, e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks_and_keep_the_last_partial_line() {
        let mut lines = Lines::default();
        let mut got = Vec::new();
        lines.push(b"one\r\ntw", &mut |l| got.push(l));
        lines.push(b"o\nthree", &mut |l| got.push(l));
        assert_eq!(got, ["one", "two"]);
        assert_eq!(lines.finish().as_deref(), Some("three"));
        assert_eq!(lines.finish(), None);
    }

    #[test]
    fn key_text_never_shows_in_debug() {
        let k = KeySource::Text("-----BEGIN OPENSSH PRIVATE KEY-----secret".to_string());
        assert!(!format!("{k:?}").contains("secret"));
    }
}

//! What every in-process contract server (`kube`, `openstack`, `vsphere`) runs on: a listener
//! on `127.0.0.1:0`, and a thread of its own with a single-threaded tokio runtime that accepts
//! connections (TLS with the server's certificate, or plain HTTP), serves HTTP/1.1 on each with
//! the server's `serve` function, and stops when the handle is dropped. Sync and async tests
//! use the servers alike. Also what every server needs alike from a request: the lock that
//! survives a panicked holder, and the decoding of a query string.
//!
//! A server [`listen`]s first (its state and certificate name the address), builds its shared
//! state, then [`Loopback::run`]s; it owns the returned [`Loopback`], which owns nothing of the
//! server's state.

use std::convert::Infallible;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

/// A non-blocking listener on a free loopback port, and its address.
///
/// # Panics
/// When the machine cannot bind a loopback port: the test cannot run then.
pub fn listen() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener
        .set_nonblocking(true)
        .expect("make the listener non-blocking");
    let address = listener.local_addr().expect("the listener's address");
    (listener, address)
}

/// A running accept loop. Dropping it stops accepting and joins the thread.
pub struct Loopback {
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

static SERVERS: AtomicUsize = AtomicUsize::new(0);

impl Loopback {
    /// Serve `listener` on a thread named `KIND-contract-N`: each connection (after the TLS
    /// handshake with `acceptor`, if any) is HTTP/1.1, each request answered by
    /// `serve(shared, request)`. A client that refuses the certificate ends the handshake: no
    /// request of it reaches `serve`.
    ///
    /// # Panics
    /// When the machine cannot start a thread or a tokio runtime.
    pub fn run<S, F, Fut, B>(
        kind: &str,
        listener: TcpListener,
        acceptor: Option<TlsAcceptor>,
        shared: Arc<S>,
        serve: F,
    ) -> Loopback
    where
        S: Send + Sync + 'static,
        F: Fn(Arc<S>, Request<Incoming>) -> Fut + Copy + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (shutdown, stop) = oneshot::channel();
        let serial = SERVERS.fetch_add(1, Ordering::Relaxed);
        let thread = std::thread::Builder::new()
            .name(format!("{kind}-contract-{serial}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a tokio runtime for the contract server");
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    // Until told to stop; each connection served on a task of its own.
                    let mut stop = stop;
                    loop {
                        tokio::select! {
                            _ = &mut stop => return,
                            accepted = listener.accept() => {
                                let Ok((tcp, _)) = accepted else { continue };
                                let acceptor = acceptor.clone();
                                let shared = shared.clone();
                                tokio::spawn(async move {
                                    let service = service_fn(move |r| serve(shared.clone(), r));
                                    let builder = hyper::server::conn::http1::Builder::new();
                                    match acceptor {
                                        Some(acceptor) => {
                                            let Ok(tls) = acceptor.accept(tcp).await else { return };
                                            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                                        }
                                        None => {
                                            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                                        }
                                    }
                                });
                            }
                        }
                    }
                });
            })
            .expect("start the contract server's thread");
        Loopback {
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A lock that survives a panicked holder (the data stays consistent: writes are whole).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A query string's parameters, percent-decoded, in order (`a=1&b` → `[(a, 1), (b, "")]`).
pub fn decode_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// `+` as a space and `%XX` as its byte; a `%` without two hex digits stays as it is.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 3 <= bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

//! What the plugins that speak a REST API over HTTPS (`kubernetes`, `openstack`, `vsphere`)
//! share, so that no plugin reaches into another: the process-wide TLS crypto provider, the
//! percent-encoding of the values they put in URLs, and the text of a transport error with its
//! causes.
//!
//! Everything here is a pure function of its arguments (the provider is installed once per
//! process); none of it logs, and none of it sees a credential unless a caller passes one in:
//! callers mask secrets in what [`error_chain`] returns, as they do in any message.

/// Install aws-lc-rs as rustls's process-wide crypto provider, once (kube's TLS connector and
/// reqwest's rustls build their configuration from the default provider).
pub(crate) fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err only when a provider is installed already, which is as good.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// Percent-encoding of a path segment or query value: everything but RFC 3986's unreserved
/// characters, bytewise (UTF-8).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An error with its causes, `a: b: c`, each cause said once (a TLS failure says why only in a
/// cause; a cause already quoted by its parent is not repeated).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unreserved_characters_stay_as_they_are() {
        assert_eq!(percent_encode("dea pool/1"), "dea%20pool%2F1");
        assert_eq!(percent_encode("vm-12_a.b~c"), "vm-12_a.b~c");
        assert_eq!(percent_encode("é?&="), "%C3%A9%3F%26%3D");
    }

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn causes_are_joined_and_a_quoted_one_is_not_repeated() {
        let inner = Layer("certificate not trusted", None);
        let middle = Layer(
            "tls handshake: certificate not trusted",
            Some(Box::new(inner)),
        );
        let outer = Layer("error sending request", Some(Box::new(middle)));
        assert_eq!(
            error_chain(&outer),
            "error sending request: tls handshake: certificate not trusted"
        );
    }
}

//! TLS for podid's listeners (rustls on aws-lc-rs, the binary's one crypto provider): a
//! certificate chain and key read from PEM files, and read again when either file changes, so
//! that a renewed certificate is served without a restart (checked at most once a second, on
//! handshakes; a file that no longer parses keeps the old certificate, with a warning).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The flags of a TLS listener.
#[derive(Clone, Debug, Default, clap::Args)]
pub(crate) struct TlsArgs {
    /// Serve HTTPS with this certificate chain (PEM: the server's certificate first, then any
    /// intermediates). Read again when it changes: renew it in place, no restart. Needs
    /// --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1). Keep it 0600.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The acceptor, if TLS is asked for.
    pub(crate) fn acceptor(&self) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let resolver = Reloading::new(cert.clone(), key.clone())?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("the TLS provider offers no safe protocol version")?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
    }
}

/// A certificate and key, read again when their files change.
#[derive(Debug)]
struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    current: Arc<CertifiedKey>,
    /// The files' modification times when `current` was read.
    read: (Option<SystemTime>, Option<SystemTime>),
    checked: Instant,
}

/// How often the files' modification times are looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);

impl Reloading {
    fn new(cert: PathBuf, key: PathBuf) -> anyhow::Result<Self> {
        let read = (modified(&cert), modified(&key));
        let current = Arc::new(load(&cert, &key)?);
        Ok(Self {
            cert,
            key,
            state: Mutex::new(State {
                current,
                read,
                checked: Instant::now(),
            }),
        })
    }

    fn current(&self) -> Option<Arc<CertifiedKey>> {
        let mut state = self.state.lock().ok()?;
        if state.checked.elapsed() >= CHECK_EVERY {
            state.checked = Instant::now();
            let now = (modified(&self.cert), modified(&self.key));
            if now != state.read {
                match load(&self.cert, &self.key) {
                    Ok(fresh) => {
                        state.current = Arc::new(fresh);
                        state.read = now;
                        tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                    }
                    // Half-written (the certificate renewed before the key): try again on the
                    // next check, serving the old one meanwhile.
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "the changed TLS certificate or key cannot be used yet; serving the previous one");
                    }
                }
            }
        }
        Some(state.current.clone())
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reads the chain and key, checking that they belong together.
fn load(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read the TLS certificate `{}`", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("`{}` is not a PEM certificate chain", cert.display()))?;
    if chain.is_empty() {
        bail!(
            "`{}` holds no certificate: give the server's certificate (PEM, `-----BEGIN CERTIFICATE-----`), then its intermediates",
            cert.display()
        );
    }
    let der = PrivateKeyDer::from_pem_file(key).with_context(|| {
        format!(
            "`{}` holds no private key: give the certificate's key in PEM (PKCS#8, PKCS#1 or SEC1)",
            key.display()
        )
    })?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(der)
        .with_context(|| format!("the key in `{}` cannot sign TLS handshakes", key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().with_context(|| {
        format!(
            "the key `{}` does not belong to the certificate `{}`",
            key.display(),
            cert.display()
        )
    })?;
    Ok(certified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_files_are_named_with_the_fix() {
        let dir = tempfile::tempdir().ok();
        let dir = dir
            .as_ref()
            .map(|d| d.path().to_owned())
            .unwrap_or_default();
        let missing = dir.join("missing.pem");
        let error = format!(
            "{:#}",
            load(&missing, &missing)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        );
        assert!(error.contains("cannot read the TLS certificate"), "{error}");
        let empty = dir.join("empty.pem");
        let _ = std::fs::write(&empty, "not pem\n");
        let error = load(&empty, &empty)
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(error.contains("holds no certificate"), "{error}");
    }
}

//! TLS to PostgreSQL as libpq's `sslmode` means it, with rustls on aws-lc-rs.
//!
//! | `sslmode` | TLS | certificate checked |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow`, `prefer` (the default) | when the server offers it | as `verify-ca` when a root certificate is given or `~/.postgresql/root.crt` exists, else not |
//! | `require` | always | as `verify-ca` when a root certificate is given or `~/.postgresql/root.crt` exists, else not |
//! | `verify-ca` | always | the chain, against the root certificate |
//! | `verify-full` | always | the chain and the host name |
//!
//! The root certificate is `sslrootcert` (a PEM file, or `system` for the public roots), else
//! `PGSSLROOTCERT`, else `~/.postgresql/root.crt`; the mode is `sslmode`, else `PGSSLMODE`.
//! `sslcert` and `sslkey` (else `PGSSLCERT`, `PGSSLKEY`) give a client certificate.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use podid_store::StoreError;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode as WireMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(StoreError::Unusable(format!(
                    "sslmode `{other}` is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )));
            }
        })
    }

    /// What tokio-postgres asks of the server: `allow` is tried as `prefer` (podid offers TLS
    /// first where libpq would try without it first; both end on the same connection when the
    /// server decides).
    pub(crate) fn wire(self) -> WireMode {
        match self {
            Self::Disable => WireMode::Disable,
            Self::Allow | Self::Prefer => WireMode::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => WireMode::Require,
        }
    }
}

/// The TLS settings of a connection URL, taken out of it (tokio-postgres does not know most of
/// them), and the rest of the URL.
#[derive(Clone, Debug)]
pub(crate) struct TlsSettings {
    pub(crate) mode: SslMode,
    root_cert: Option<String>,
    client_cert: Option<(PathBuf, PathBuf)>,
}

/// The parameters this module reads; any other stays in the URL for tokio-postgres.
const TLS_PARAMS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// Splits `url` (`postgres://…?…` or `key=value key=value`) into its TLS settings (with libpq's
/// environment variables as defaults) and the URL without them.
pub(crate) fn settings(url: &str) -> Result<(TlsSettings, String), StoreError> {
    settings_with(url, |name| std::env::var(name).ok())
}

fn settings_with(
    url: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(TlsSettings, String), StoreError> {
    let mut found: Vec<(String, String)> = Vec::new();
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|pair| {
                        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                        if TLS_PARAMS.contains(&key) {
                            found.push((key.to_owned(), percent_decoded(value)));
                            false
                        } else {
                            true
                        }
                    })
                    .collect();
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        url.split_whitespace()
            .filter(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                if TLS_PARAMS.contains(&key) {
                    found.push((key.to_owned(), value.trim_matches('\'').to_owned()));
                    false
                } else {
                    true
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let get = |name: &str, variable: &str| {
        found
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| env(variable))
    };
    let mode = SslMode::parse(&get("sslmode", "PGSSLMODE").unwrap_or_else(|| "prefer".into()))?;
    let client_cert = match (get("sslcert", "PGSSLCERT"), get("sslkey", "PGSSLKEY")) {
        (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
        (None, None) => None,
        _ => {
            return Err(StoreError::Unusable(
                "a client certificate needs both sslcert and sslkey".into(),
            ));
        }
    };
    Ok((
        TlsSettings {
            mode,
            root_cert: get("sslrootcert", "PGSSLROOTCERT"),
            client_cert,
        },
        rest,
    ))
}

fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes.get(i),
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (Some(b'%'), Some(h), Some(l)) => {
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'%'));
                i += 3;
            }
            (Some(b'+'), _, _) => {
                out.push(b' ');
                i += 1;
            }
            (Some(b), _, _) => {
                out.push(*b);
                i += 1;
            }
            (None, _, _) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl TlsSettings {
    /// The connector for these settings.
    pub(crate) fn connector(&self) -> Result<RustlsConnect, StoreError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let roots = self.roots()?;
        let verifier: Arc<dyn ServerCertVerifier> = match (self.mode, roots) {
            (SslMode::Disable, _) => Arc::new(Unverified(provider.clone())),
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                return Err(StoreError::Unusable(format!(
                    "sslmode={} needs the certificate of the CA that signed the server's: give sslrootcert=FILE (PEM) in the URL, or sslrootcert=system for the public roots; ~/.postgresql/root.crt was not found either",
                    if self.mode == SslMode::VerifyCa {
                        "verify-ca"
                    } else {
                        "verify-full"
                    }
                )));
            }
            (mode, Some(roots)) => {
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| StoreError::Unusable(format!("the root certificates: {e}")))?;
                Arc::new(Verified {
                    webpki,
                    check_name: mode == SslMode::VerifyFull,
                })
            }
            (_, None) => Arc::new(Unverified(provider.clone())),
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Unusable(format!("TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match &self.client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = certificates(cert)?;
                let key = private_key(key)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| StoreError::Unusable(format!("sslcert/sslkey: {e}")))?
            }
        };
        Ok(RustlsConnect(Arc::new(config)))
    }

    /// The root certificates to verify against, if any: `sslrootcert`, else libpq's default
    /// file when it exists.
    fn roots(&self) -> Result<Option<rustls::RootCertStore>, StoreError> {
        let path = match &self.root_cert {
            Some(name) if name == "system" => {
                let mut roots = rustls::RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                return Ok(Some(roots));
            }
            Some(path) => PathBuf::from(path),
            None => match std::env::var_os("HOME") {
                Some(home) if Path::new(&home).join(".postgresql/root.crt").exists() => {
                    Path::new(&home).join(".postgresql/root.crt")
                }
                _ => return Ok(None),
            },
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in certificates(&path)? {
            roots.add(cert).map_err(|e| {
                StoreError::Unusable(format!(
                    "sslrootcert `{}` holds a certificate rustls cannot use: {e}",
                    path.display()
                ))
            })?;
        }
        Ok(Some(roots))
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, StoreError> {
    use rustls::pki_types::pem::PemObject as _;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect)
        .map_err(|e| {
            StoreError::Unusable(format!(
                "cannot read certificates from `{}`: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(StoreError::Unusable(format!(
            "`{}` holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, StoreError> {
    use rustls::pki_types::pem::PemObject as _;
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        StoreError::Unusable(format!(
            "cannot read the private key in `{}`: {e}",
            path.display()
        ))
    })
}

/// Checks the chain against the roots, and the host name for `verify-full`.
#[derive(Debug)]
struct Verified {
    webpki: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for Verified {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a root certificate: encryption without authentication, as
/// libpq does (the handshake's signatures are still checked).
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// tokio-postgres's TLS hook, on tokio-rustls.
#[derive(Clone)]
pub(crate) struct RustlsConnect(Arc<rustls::ClientConfig>);

impl<S> MakeTlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type TlsConnect = RustlsConnectOne;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnectOne, io::Error> {
        let name = ServerName::try_from(domain.to_owned()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{domain}` is not a host name or address TLS can check"),
            )
        })?;
        Ok(RustlsConnectOne {
            config: self.0.clone(),
            name,
        })
    }
}

/// One connection's handshake.
pub(crate) struct RustlsConnectOne {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnectOne
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<TlsStream<S>, io::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.config);
        Box::pin(async move {
            connector
                .connect(self.name, stream)
                .await
                .map(|s| TlsStream(Box::new(s)))
        })
    }
}

/// An established TLS stream.
pub(crate) struct TlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for TlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> (TlsSettings, String) {
        settings_with(url, |_| None).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn tls_parameters_leave_the_url_and_the_rest_stays() {
        let (tls, rest) = parse(
            "postgres://u@db:5432/app?sslmode=verify-full&options=-csearch_path%3Dx&sslrootcert=%2Fetc%2Fca.pem",
        );
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(rest, "postgres://u@db:5432/app?options=-csearch_path%3Dx");
        let (tls, rest) = parse("host=db user=u sslmode=require dbname=app");
        assert_eq!(tls.mode, SslMode::Require);
        assert_eq!(rest, "host=db user=u dbname=app");
        let (tls, rest) = parse("postgres://u@db/app");
        assert_eq!(tls.mode, SslMode::Prefer, "libpq's default");
        assert_eq!(rest, "postgres://u@db/app");
    }

    #[test]
    fn libpq_environment_variables_are_defaults() {
        let env = |name: &str| match name {
            "PGSSLMODE" => Some("verify-ca".to_owned()),
            "PGSSLROOTCERT" => Some("/ca.pem".to_owned()),
            _ => None,
        };
        let (tls, _) = settings_with("postgres://db/app", env).unwrap();
        assert_eq!(tls.mode, SslMode::VerifyCa);
        assert_eq!(tls.root_cert.as_deref(), Some("/ca.pem"));
        let (tls, _) = settings_with("postgres://db/app?sslmode=disable", env).unwrap();
        assert_eq!(tls.mode, SslMode::Disable, "the URL wins");
    }

    #[test]
    fn bad_settings_say_what_to_give() {
        let e = settings_with("postgres://db/app?sslmode=strict", |_| None).unwrap_err();
        assert!(
            e.to_string().contains("sslmode `strict` is not one of"),
            "{e}"
        );
        let e = settings_with("postgres://db/app?sslcert=c.pem", |_| None).unwrap_err();
        assert!(e.to_string().contains("both sslcert and sslkey"), "{e}");
        let (tls, _) = parse("postgres://db/app?sslmode=verify-full&sslrootcert=/nonexistent.pem");
        let e = tls.connector().err().unwrap();
        assert!(e.to_string().contains("/nonexistent.pem"), "{e}");
    }

    #[test]
    fn modes_on_the_wire() {
        assert_eq!(SslMode::Allow.wire(), WireMode::Prefer);
        assert_eq!(SslMode::VerifyCa.wire(), WireMode::Require);
        assert_eq!(SslMode::Disable.wire(), WireMode::Disable);
    }
}

//! [`serve_tls`]: [`serve`](crate::serve) over TLS, with a server certificate
//! signed by a CA generated at start.

use std::io;
use std::sync::Arc;

use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::crypto::ring;
use rustls::pki_types::PrivateKeyDer;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tower_service::Service;

use crate::body::BoxError;
use crate::loopback::{bind_loopback, serve_over, LoopbackServer};

/// The names the server certificate is good for: how a client on this
/// machine may reach a loopback port.
const SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// [`serve`](crate::serve) over TLS: binds `127.0.0.1` on a free port, and
/// each accepted connection does a TLS handshake on its own task before
/// HTTP/1 is served over it. Must be awaited on a Tokio runtime.
///
/// At each call a fresh CA (self-signed, kept in memory only) signs a server
/// certificate for `localhost`, `127.0.0.1` and `::1`. Trust
/// [`LoopbackServer::ca_certificate_pem`] in the client; the server offers
/// ALPN `http/1.1`. A failed handshake (a client that does not trust the CA,
/// one speaking plain HTTP) ends only that connection.
///
/// # Errors
///
/// When the loopback socket cannot be bound, or the certificates cannot be
/// generated.
///
/// # Example
///
/// ```rust
/// use std::convert::Infallible;
/// use std::sync::Arc;
///
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::{BodyExt, Empty, Full};
/// use hyper::body::Incoming;
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
/// use rustls::pki_types::{pem::PemObject, CertificateDer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let hello = tower::service_fn(|_: Request<Incoming>| async {
///     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hello over TLS"))))
/// });
/// let server = ocient_mock::serve_tls(hello).await?;
/// assert_eq!(server.uri().scheme_str(), Some("https"));
///
/// let ca_pem = server.ca_certificate_pem().expect("a TLS server has a CA");
/// let mut roots = rustls::RootCertStore::empty();
/// roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes())?)?;
/// let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
///     rustls::crypto::ring::default_provider(),
/// ))
/// .with_safe_default_protocol_versions()?
/// .with_root_certificates(roots)
/// .with_no_client_auth();
/// let https = hyper_rustls::HttpsConnectorBuilder::new()
///     .with_tls_config(tls)
///     .https_only()
///     .enable_http1()
///     .build();
/// let client = Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(https);
///
/// let answer = client.get(server.uri()).await?;
/// let body = answer.into_body().collect().await?.to_bytes();
/// assert_eq!(body, "hello over TLS");
///
/// server.shutdown();
/// # Ok(())
/// # }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub async fn serve_tls<S, B>(service: S) -> io::Result<LoopbackServer>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let (config, ca_certificate_pem) = server_config()?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    serve_over(
        bind_loopback().await?,
        service,
        move |stream| acceptor.accept(stream),
        Some(ca_certificate_pem),
    )
}

/// A rustls server configuration (ring, ALPN `http/1.1`) for a server
/// certificate signed by a CA generated here, and that CA's PEM.
fn server_config() -> io::Result<(ServerConfig, String)> {
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "ocient-mock test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().map_err(io::Error::other)?;
    let ca_pem = ca.self_signed(&ca_key).map_err(io::Error::other)?.pem();
    let issuer = Issuer::new(ca, ca_key);

    let mut server = CertificateParams::new(SERVER_NAMES.map(String::from).to_vec())
        .map_err(io::Error::other)?;
    server
        .distinguished_name
        .push(DnType::CommonName, SERVER_NAMES[0]);
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.use_authority_key_identifier_extension = true;
    let server_key = KeyPair::generate().map_err(io::Error::other)?;
    let server_certificate = server
        .signed_by(&server_key, &issuer)
        .map_err(io::Error::other)?;

    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(
            vec![server_certificate.der().clone()],
            PrivateKeyDer::from(server_key),
        )
        .map_err(io::Error::other)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((config, ca_pem))
}

#[cfg(test)]
mod tests;

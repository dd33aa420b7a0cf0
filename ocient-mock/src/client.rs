//! [`https_client`]: a client that trusts a server's CA, such as the mock's
//! over TLS.

use std::sync::Arc;

use http_body::Body;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use crate::body::BoxError;

/// hyper-util's legacy `Client` over hyper-rustls, from [`https_client`].
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub type HttpsClient<B> = Client<HttpsConnector<HttpConnector>, B>;

/// A client for `https://` (and `http://`) URIs that verifies servers
/// against `roots` and each CA certificate in `cas` (PEM): pass
/// `RootCertStore::empty()` and a [`MockServer`](crate::MockServer)'s
/// [`ca_certificate_pem`](crate::MockServer::ca_certificate_pem) to trust
/// that server and nothing else, or the operating system's roots to reach
/// real servers too. There is deliberately no way to turn verification off.
///
/// rustls with the ring provider, HTTP/1, the `Client`'s connection pool.
///
/// # Errors
///
/// When a PEM in `cas` holds no valid certificate, or rustls cannot be
/// configured.
///
/// # Example
///
/// ```rust
/// use bytes::Bytes;
/// use http_body_util::Empty;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let server = ocient_mock::MockOcient::new().serve_tls().await?;
/// let ca = server.ca_certificate_pem().expect("a TLS server has a CA");
/// let client = ocient_mock::https_client::<Empty<Bytes>>(rustls::RootCertStore::empty(), &[ca])?;
///
/// let answer = client.get(format!("{}v1/execute/system", server.uri()).parse()?).await?;
/// assert_eq!(answer.status(), 401, "over HTTPS, and no token was sent");
/// # Ok(())
/// # }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub fn https_client<B>(
    mut roots: RootCertStore,
    cas: &[impl AsRef<str>],
) -> Result<HttpsClient<B>, BoxError>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    for pem in cas {
        for certificate in CertificateDer::pem_slice_iter(pem.as_ref().as_bytes()) {
            roots.add(certificate?)?;
        }
    }
    let tls = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

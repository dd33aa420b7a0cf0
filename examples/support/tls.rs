//! The HTTPS client the examples put the token layer on: hyper-util's legacy `Client` over
//! hyper-rustls, with rustls's `ring` provider, trusting the operating system's roots plus
//! any private CA (an on-premises cluster's, or the embedded mock's).
//!
//! The layer itself knows nothing of TLS: the connector is the wrapped client's business,
//! and the layer's own login and refresh requests go through the same connector.

use std::sync::Arc;

use http_body::Body;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A client for `https://` (and loopback `http://`) URIs.
pub type HttpsClient<B> = Client<HttpsConnector<HttpConnector>, B>;

/// A client that verifies servers against the system's roots and each CA certificate in
/// `private_cas` (PEM). There is deliberately no way to turn verification off.
pub fn https_client<B>(private_cas: &[String]) -> Result<HttpsClient<B>, BoxError>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let mut roots = RootCertStore::empty();
    // A machine without a system store still trusts the private CAs it was given.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    for pem in private_cas {
        for certificate in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(certificate?)?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = ClientConfig::builder_with_provider(provider)
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

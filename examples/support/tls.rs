//! The HTTPS client the examples put the token layer on: hyper-util's legacy `Client` over
//! hyper-rustls, with rustls's `ring` provider, trusting the operating system's roots plus
//! any private CA (an on-premises cluster's, or the embedded mock's). The client itself is
//! `ocient_mock::https_client`, which adds those CAs to the roots it is given; a service
//! that does not depend on the mock builds the same with hyper-rustls's
//! `HttpsConnectorBuilder`, as README's "HTTPS" section and `TokenRefreshLayer`'s docs show.
//!
//! The layer itself knows nothing of TLS: the connector is the wrapped client's business,
//! and the layer's own login and refresh requests go through the same connector.

use http_body::Body;
use rustls::RootCertStore;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A client for `https://` (and loopback `http://`) URIs.
pub type HttpsClient<B> = ocient_mock::HttpsClient<B>;

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
    ocient_mock::https_client(roots, private_cas)
}

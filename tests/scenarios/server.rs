//! The mock's side of a row: its faults and a token handed over without the layer. (The
//! inner service, the mock with query latency and a tally of refusals, is
//! `common::tally::TalliedMock`.)

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use ocient_mock::{Fault, MockOcient};
use tower::ServiceExt;

use crate::common::BASE;
use crate::table::F;

pub fn fault(f: F) -> Fault {
    let code = |n: u16| StatusCode::from_u16(n).expect("a valid HTTP status");
    match f {
        F::Status(status) => Fault::Status(code(status)),
        F::Code(status, vendor_code) => Fault::VendorCode {
            http: code(status),
            vendor_code,
            sql_state: match vendor_code {
                -733 => "42502",
                -1204 => "08003",
                -304 | -1208..=-1205 => "08004",
                _ => "XX000",
            },
        },
        F::Body(body) => Fault::Body {
            status: StatusCode::OK,
            content_type: "application/json",
            body: Bytes::from_static(body.as_bytes()),
        },
        F::Huge => Fault::Body {
            status: StatusCode::OK,
            content_type: "application/json",
            body: Bytes::from(vec![b' '; 1024 * 1024 + 1]),
        },
        F::Hang => Fault::Hang,
        F::CutOff => Fault::CutOff,
    }
}

/// Logs in on the mock directly, as whoever hands the layer its initial token would.
pub async fn seed_token(mock: &MockOcient) -> String {
    let login = Request::post(format!("{BASE}/v1/login"))
        .header("content-type", "application/json")
        .body(Full::<Bytes>::from(
            r#"{"username":"jdoe","password":"secret","database":"retail_analytics"}"#,
        ))
        .unwrap();
    let response = mock.clone().oneshot(login).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
}

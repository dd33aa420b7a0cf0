//! The requests `OcientAuth` sends: login, token exchange, device grant, and where they go.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, Uri};

use super::uri::at;
use super::{IdentityToken, OcientAuth};

impl OcientAuth {
    /// `{node}{path}` at the node token requests go to now.
    pub(super) fn endpoint(&self, path: &str) -> Uri {
        at(self.nodes.current(), path)
    }

    pub(super) fn sso_request(&self, token: &IdentityToken) -> Request<Bytes> {
        let mut body = serde_json::Map::new();
        body.insert(token.field().into(), token.expose().into());
        // The document requires `database` here, unlike elsewhere.
        let database = self.database.as_deref().unwrap_or("system");
        body.insert("database".into(), database.into());
        self.json_post("/v1/sso_token", body.into())
    }

    pub(super) fn device_grant_request(&self) -> Request<Bytes> {
        let mut body = serde_json::Map::new();
        self.database_field(&mut body);
        self.json_post("/v1/sso_device_grant", body.into())
    }

    /// A poll for the approval of `user_code`, which the node may hold `server_wait`
    /// seconds (a string, as the document types it).
    pub(super) fn device_verify_request(
        &self,
        user_code: &str,
        server_wait: u64,
    ) -> Request<Bytes> {
        let mut body = serde_json::Map::new();
        body.insert("user_code".into(), user_code.into());
        body.insert("timeout".into(), server_wait.to_string().into());
        self.database_field(&mut body);
        self.json_post("/v1/sso_device_grant_verify", body.into())
    }

    pub(super) fn login_with(&self, username: &str, password: &str) -> Request<Bytes> {
        let mut body = serde_json::Map::new();
        body.insert("username".into(), username.into());
        body.insert("password".into(), password.into());
        self.database_field(&mut body);
        self.json_post("/v1/login", body.into())
    }

    pub(super) fn json_post(&self, path: &str, body: serde_json::Value) -> Request<Bytes> {
        let mut request = Request::new(Bytes::from(body.to_string()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.endpoint(path);
        request
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        request
    }

    pub(super) fn database_field(&self, body: &mut serde_json::Map<String, serde_json::Value>) {
        if let Some(database) = &self.database {
            body.insert("database".into(), database.clone().into());
        }
    }
}

//! The identity provider no one here wrote: `node interop/idp.mjs` (oauth2-mock-server
//! 8.2.3) as a child process, and the client-credentials grant a service would make there.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use tower::BoxError;

use crate::common::https::HttpsClient;

/// The client registered at the identity provider, and the audience its tokens are for.
pub const CLIENT_ID: &str = "tower-token-refresh-interop";
pub const CLIENT_SECRET: &str = "a secret with spaces & symbols=+/";
pub const AUDIENCE: &str = "ocient-interop";

/// How long node may take to listen: starting it and generating an RSA key takes well
/// under a second here.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// What `idp.mjs` prints once it listens.
#[derive(Debug, Clone, Deserialize)]
pub struct Endpoints {
    pub issuer: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
}

/// Why the interop cannot run here: the one line the test prints before it returns.
#[derive(Debug)]
pub struct Skip(pub String);

/// The running `idp.mjs`. Dropping it closes its stdin (the launcher exits on that) and
/// kills it besides, and reaps it: no path out of a test leaves a node process behind.
pub struct Idp {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<String>>,
    pub endpoints: Endpoints,
}

/// The `interop/` folder of the workspace.
fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

impl Idp {
    /// Starts `node interop/idp.mjs` and waits for its line of JSON. `Ok(Err(Skip))` when
    /// node or the installed packages are missing.
    pub async fn start() -> Result<Result<Idp, Skip>, BoxError> {
        let dir = interop_dir();
        if !dir
            .join("node_modules/oauth2-mock-server/package.json")
            .is_file()
        {
            return Ok(Err(Skip(format!(
                "skipped: {} has no node_modules; run npm ci in interop/ to run the \
                 oauth2-mock-server interop",
                dir.display()
            ))));
        }
        let spawned = Command::new("node")
            .arg("idp.mjs")
            .args(["--client-id", CLIENT_ID])
            .args(["--client-secret", CLIENT_SECRET])
            .args(["--audience", AUDIENCE])
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Err(Skip(
                    "skipped: node not found; install Node.js 20.19+ and run npm ci in \
                     interop/ to run the oauth2-mock-server interop"
                        .to_owned(),
                )));
            }
            Err(error) => {
                return Err(format!("could not start node interop/idp.mjs: {error}").into())
            }
        };
        // From here on the guard owns the child: every return below kills it.
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(pipe) = child.stderr.take() {
            drain(pipe, Arc::clone(&stderr));
        }
        let mut idp = Idp {
            child,
            stdin,
            stderr,
            endpoints: Endpoints {
                issuer: String::new(),
                token_endpoint: String::new(),
                jwks_uri: String::new(),
            },
        };
        let stdout = stdout.ok_or("node's stdout was not piped")?;
        let line = first_line(stdout).await;
        let line = match line {
            Ok(Some(line)) => line,
            Ok(None) => {
                return Err(idp.failure("idp.mjs exited before it printed its endpoints"));
            }
            Err(error) => return Err(idp.failure(&error)),
        };
        match serde_json::from_str(&line) {
            Ok(endpoints) => idp.endpoints = endpoints,
            Err(error) => return Err(idp.failure(&format!("idp.mjs printed {line:?}: {error}"))),
        }
        Ok(Ok(idp))
    }

    /// `what`, with what node said on stderr and whether it is still running.
    fn failure(&mut self, what: &str) -> BoxError {
        let status = match self.child.try_wait() {
            Ok(Some(status)) => format!("exited ({status})"),
            Ok(None) => "still running".to_owned(),
            Err(error) => format!("unknown ({error})"),
        };
        let stderr = self.stderr();
        format!("{what}; node {status}; its stderr: {stderr:?}").into()
    }

    /// What node wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Closes node's stdin, as a test that ends or dies does, and waits (on the condition,
    /// within `timeout`) for it to exit by itself.
    pub async fn close_stdin_and_wait(
        &mut self,
        timeout: Duration,
    ) -> Result<ExitStatus, BoxError> {
        drop(self.stdin.take());
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self.failure(&format!(
                    "idp.mjs did not exit within {timeout:?} of its stdin closing"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Copies `pipe` into `into` on a thread of its own, until node closes it.
fn drain(mut pipe: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut chunk = [0_u8; 4096];
        while let Ok(n @ 1..) = pipe.read(&mut chunk) {
            if let Ok(mut text) = into.lock() {
                text.push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        }
    });
}

/// The first line of `stdout`, read on a thread of its own (node's stdout is a blocking
/// pipe), within [`START_TIMEOUT`]; `None` when node closed stdout first.
async fn first_line(stdout: impl Read + Send + 'static) -> Result<Option<String>, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(read.map(|n| (n > 0).then_some(line)));
    });
    match tokio::time::timeout(START_TIMEOUT, rx).await {
        Ok(Ok(Ok(line))) => Ok(line),
        Ok(Ok(Err(error))) => Err(format!("reading idp.mjs's stdout: {error}")),
        Ok(Err(_)) => Err("the thread reading idp.mjs's stdout is gone".to_owned()),
        Err(_) => Err(format!("idp.mjs printed nothing within {START_TIMEOUT:?}")),
    }
}

/// `GET uri`, for a body that must come with 200.
pub async fn get(client: &HttpsClient<Full<Bytes>>, uri: &str) -> Result<Bytes, BoxError> {
    let request = Request::get(uri.parse::<Uri>()?)
        .header(ACCEPT, "application/json")
        .body(Full::default())?;
    let response = client.request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if status != StatusCode::OK {
        return Err(format!("GET {uri}: {status} {}", String::from_utf8_lossy(&body)).into());
    }
    Ok(body)
}

/// A token endpoint's answer (RFC 6749 5.1).
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    token_type: String,
}

/// A client-credentials grant (RFC 6749 4.4) at `token_endpoint`: the client authenticates
/// with its id and secret in the form (`client_secret_post`) and asks for a token for
/// [`AUDIENCE`] (oauth2-mock-server reads the audience from `aud`). Gives the access token.
pub async fn client_credentials(
    client: &HttpsClient<Full<Bytes>>,
    token_endpoint: &str,
) -> Result<String, BoxError> {
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", CLIENT_ID)
        .append_pair("client_secret", CLIENT_SECRET)
        .append_pair("aud", AUDIENCE)
        .finish();
    let request = Request::post(token_endpoint.parse::<Uri>()?)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json")
        .body(Full::from(form))?;
    let response = client.request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if status != StatusCode::OK {
        // The answer to a failed grant holds no token: safe to show.
        let body = String::from_utf8_lossy(&body);
        return Err(format!("client-credentials grant answered {status}: {body}").into());
    }
    let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|error| {
        format!("client-credentials grant answered 200 without a token: {error}")
    })?;
    if !answer.token_type.eq_ignore_ascii_case("bearer") {
        return Err(format!("token_type {:?}, not Bearer", answer.token_type).into());
    }
    Ok(answer.access_token)
}
